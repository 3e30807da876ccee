"""What a request may carry: each bad parameter is a 400 problem naming it, ``limit`` is
clamped, bodies are bounded and must be JSON, unknown routes and methods are problems too; a
delivery shows its verified headers without credentials, and its payload to viewers only where
its source allows it (``redact_payload``)."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from ghapplets.admin.params import MAX_LIMIT
from ghapplets.store.records import Role
from tests.admin.harness import Admin, build_project, delivery, running_admin
from tests.conftest import ProjectBuilder

OTHER_LIST = base64.urlsafe_b64encode(orjson.dumps(["jobs", [1.0, "x"]])).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/api/v1/deliveries", {"limit": "0"}, "limit"),
        ("/api/v1/deliveries", {"limit": "-3"}, "limit"),
        ("/api/v1/deliveries", {"limit": "ten"}, "limit"),
        ("/api/v1/deliveries", {"cursor": "%%%"}, "cursor"),
        ("/api/v1/deliveries", {"cursor": "bm90IGpzb24"}, "cursor"),
        ("/api/v1/deliveries", {"cursor": OTHER_LIST}, "cursor"),
        ("/api/v1/deliveries", {"status": "lost"}, "status"),
        ("/api/v1/deliveries", {"since": "yesterday"}, "since"),
        ("/api/v1/deliveries", {"until": "nan"}, "until"),
        ("/api/v1/deliveries", {"q": "x" * 513}, "q"),
        ("/api/v1/deliveries", {"q": ""}, "q"),
        ("/api/v1/deliveries", {"sort": "asc"}, "sort"),
        ("/api/v1/jobs", {"status": "done"}, "status"),
        ("/api/v1/jobs", {"delivery_id": "x"}, "delivery_id"),
        ("/api/v1/dead-letters", {"since": "-5"}, "since"),
        ("/api/v1/runs", {"status": "sleeping"}, "status"),
        ("/api/v1/audit", {"limit": "1.5"}, "limit"),
        ("/api/v1/health", {"verbose": "1"}, "verbose"),
    ],
)
async def test_each_bad_parameter_is_a_400_naming_it(
    embedded_admin: Admin, path: str, params: dict[str, str], named: str
) -> None:
    answer = await embedded_admin.get(path, Role.ADMIN, **params)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    doc = answer.json()
    assert doc["parameter"] == named and doc["status"] == 400
    assert doc["type"] == "urn:ghapplets:problem:bad-parameter"
    assert named in doc["detail"]


async def test_a_repeated_parameter_and_a_huge_query_are_refused(embedded_admin: Admin) -> None:
    twice = await embedded_admin.call("GET", "/api/v1/deliveries?source=a&source=b", Role.VIEWER)
    assert twice.status_code == 400 and twice.json()["parameter"] == "source"
    huge = await embedded_admin.call(
        "GET", "/api/v1/deliveries?" + "&".join(f"q{i}=x" for i in range(1500)), Role.VIEWER
    )
    assert huge.status_code == 400


async def test_limit_is_clamped(embedded_admin: Admin) -> None:
    store = embedded_admin.store
    await store.record_dispatch([delivery(i) for i in range(MAX_LIMIT + 5)], [])
    doc = await embedded_admin.ok("/api/v1/deliveries", Role.VIEWER, limit=100_000)
    assert doc["limit"] == MAX_LIMIT and len(doc["items"]) == MAX_LIMIT
    assert doc["next_cursor"]
    rest = await embedded_admin.ok(
        "/api/v1/deliveries", Role.VIEWER, limit=MAX_LIMIT, cursor=doc["next_cursor"]
    )
    assert len(rest["items"]) == 5 and rest["next_cursor"] is None


async def test_bodies_are_bounded_and_json(embedded_admin: Admin) -> None:
    admin = embedded_admin
    path = "/api/v1/dead-letters/replay"
    big = await admin.call(
        "POST",
        path,
        headers={"content-type": "application/json"},
        content=b'{"source": "' + b"x" * 70_000 + b'"}',
    )
    assert big.status_code == 413 and big.json()["status"] == 413
    text = await admin.call(
        "POST", path, content=b"source=x", headers={"content-type": "text/plain"}
    )
    assert text.status_code == 415
    broken = await admin.call(
        "POST", path, content=b"{nope", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["parameter"] == "body"
    listed = await admin.call("POST", path, json=[1, 2])
    assert listed.status_code == 400
    unknown = await admin.call("POST", path, json={"limit": 5000, "colour": "red"})
    assert unknown.status_code == 400
    assert {e["parameter"] for e in unknown.json()["errors"]} == {"limit", "colour"}


async def test_unknown_routes_and_methods_are_problems(embedded_admin: Admin) -> None:
    missing = await embedded_admin.get("/api/v1/nothing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    outside = await embedded_admin.get("/hooks/github")
    assert outside.status_code == 404
    wrong = await embedded_admin.call("DELETE", "/api/v1/deliveries")
    assert wrong.status_code == 405 and wrong.json()["status"] == 405


async def test_answers_are_not_cached(embedded_admin: Admin) -> None:
    answer = await embedded_admin.get("/api/v1/deliveries")
    assert answer.headers["cache-control"] == "no-store"


HIDDEN = """
kind: generic
secret: hidden-source-secret
redact_payload: true
"""


async def test_headers_without_credentials_and_payloads_redacted_for_viewers(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    root = build_project(project, tmp_path / "marker", extra_sources=HIDDEN)
    async with running_admin(root, tmp_path / "data") as admin:
        sent = await admin.gateway.send("github", "issues.opened", delivery_id="shown")
        assert sent.status_code == 202
        await admin.gateway.wait_for_jobs("shown", count=2)
        answer = await admin.call("GET", "/api/v1/deliveries/github/shown", Role.VIEWER)
        doc = answer.json()
        assert doc["headers"]["x-github-event"] == "issues"
        assert not {"x-hub-signature-256", "x-hub-signature", "authorization"} & set(doc["headers"])
        assert "sha256=" not in answer.text and "test-webhook-secret" not in answer.text
        assert doc["payload"]["action"] == "opened" and doc["payload_redacted"] is False
        # a source that redacts its payloads: viewers get a note, operators the payload
        d = delivery(1, source="hidden", type="com.example.thing")
        await admin.store.record_dispatch([d], [])
        as_viewer = await admin.ok(f"/api/v1/deliveries/hidden/{d.id}", Role.VIEWER)
        assert as_viewer["payload"] is None and as_viewer["payload_redacted"] is True
        assert "redact_payload" in as_viewer["payload_note"]
        as_operator = await admin.ok(f"/api/v1/deliveries/hidden/{d.id}", Role.OPERATOR)
        assert as_operator["payload"] == {"n": 1} and not as_operator["payload_redacted"]
        sources = await admin.ok("/api/v1/sources", Role.VIEWER)
        assert {s["name"]: s["redact_payload"] for s in sources["items"]} == {
            "github": False,
            "hidden": True,
        }
        assert "hidden-source-secret" not in str(sources)


async def test_retention_prunes_the_audit_log(embedded_admin: Admin) -> None:
    import time

    from ghapplets.store.records import AuditOutcome, AuditRecord

    store, days = embedded_admin.store, embedded_admin.platform.config.storage.audit_retention_days
    for i, age in enumerate((days + 1, days - 1)):
        await store.record_audit(
            AuditRecord(
                id=f"old-{i}",
                at=time.time() - age * 86400,
                actor="ops",
                action="job.replay",
                target="x",
                outcome=AuditOutcome.OK,
            )
        )
    await embedded_admin.platform.retention()
    left = await embedded_admin.ok("/api/v1/audit")
    assert [a["id"] for a in left["items"]] == ["old-1"]
