"""ServiceNow auth modes, Splunk token and IP allow-list, generic modes; their fixtures."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from ghapplets.exceptions import VerificationError
from ghapplets.sources.fixtures import Fixture, iter_fixtures, load
from tests.sources._helpers import PREVIOUS, SECRET, STALE, body_hash, make, request, send

BODY = b'{"table":"incident","operation":"insert","number":"INC0010023"}'


def rejects(source: Any, req: Any) -> str:
    with pytest.raises(VerificationError) as info:
        source.verify(req)
    return str(info.value.reason)


def basic(user: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode()


def mac(secret: bytes, body: bytes, algo: str = "sha256") -> bytes:
    return hmac.new(secret, body, getattr(hashlib, algo)).digest()


# -- ServiceNow -----------------------------------------------------------------------------------
def test_servicenow_bearer() -> None:
    source = make("servicenow")  # bearer is the default
    for secret in (SECRET, PREVIOUS):
        source.verify(request(BODY, {"Authorization": f"Bearer {secret.decode()}"}))
    source.verify(request(BODY, {"Authorization": f"bearer  {SECRET.decode()}"}))
    assert rejects(source, request(BODY)) == "missing_credentials"
    assert rejects(source, request(BODY, {"Authorization": "Bearer x"})) == "bad_credentials"
    assert rejects(source, request(BODY, {"Authorization": basic("u", SECRET)})) == (
        "bad_credentials"
    )
    assert rejects(source, request(BODY, {"Authorization": "Bearer"})) == "bad_credentials"


def test_servicenow_basic() -> None:
    source = make("servicenow", auth="basic", username="svc.ghapplets")
    source.verify(request(BODY, {"Authorization": basic("svc.ghapplets", SECRET)}))
    source.verify(request(BODY, {"Authorization": basic("svc.ghapplets", PREVIOUS)}))
    for header in (
        basic("someone.else", SECRET),
        basic("svc.ghapplets", STALE),
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"svc.ghapplets").decode(),
        f"Bearer {SECRET.decode()}",
    ):
        assert rejects(source, request(BODY, {"Authorization": header})) == "bad_credentials"
    with pytest.raises(ValidationError, match="username"):
        make("servicenow", auth="basic")


@pytest.mark.parametrize(
    ("settings", "header", "value"),
    [
        ({}, "X-ServiceNow-Signature", mac(SECRET, BODY).hex()),
        (
            {"encoding": "base64"},
            "X-ServiceNow-Signature",
            base64.b64encode(mac(SECRET, BODY)).decode(),
        ),
        ({"header": "X-Sig", "prefix": "v1="}, "X-Sig", "v1=" + mac(PREVIOUS, BODY).hex()),
    ],
)
def test_servicenow_hmac(settings: dict[str, Any], header: str, value: str) -> None:
    source = make("servicenow", auth="hmac", **settings)
    source.verify(request(BODY, {header: value}))
    assert rejects(source, request(BODY)) == "missing_signature"
    assert rejects(source, request(BODY + b" ", {header: value})) == "bad_signature"
    signed = source.sign("incident.created", orjson.loads(BODY), "r-1")
    assert signed.headers[header].startswith(settings.get("prefix", ""))
    source.verify(request(signed.body, signed.headers))


@pytest.mark.parametrize("fx", list(iter_fixtures("servicenow")), ids=lambda f: f.event)
@pytest.mark.parametrize("auth", ["bearer", "basic", "hmac"])
def test_servicenow_fixture_round_trips(fx: Fixture, auth: str) -> None:
    settings: dict[str, Any] = {"username": "svc"} if auth == "basic" else {}
    event, _ = send(make("servicenow", auth=auth, **settings), fx)
    ops = {"insert": "created", "update": "updated", "delete": "deleted"}
    table, op = fx.payload["table"], fx.payload["operation"]
    assert fx.expected_type == f"com.servicenow.{table}.{ops.get(op, op)}"
    assert event.type == fx.expected_type
    if fx.delivery_id:
        assert event.id == fx.delivery_id
    else:
        assert event.id == f"{fx.payload['sys_id']}:{fx.payload['sys_updated_on']}"
    assert event.subject == fx.payload["number"]


def test_servicenow_examples_and_type_fields() -> None:
    source = make("servicenow", instance="acme.service-now.com")
    change, _ = send(source, load("servicenow", "change_request.updated"))
    assert (change.type, change.subject) == ("com.servicenow.change_request.updated", "CHG0030001")
    assert change.extensions == {"servicenowinstance": "acme.service-now.com"}
    fx = load(
        "servicenow",
        "incident.created",
        table=None,
        sys_class_name="Incident",
        operation="Resolved",
        number=None,
    )
    event, _ = send(source, fx)
    assert (event.type, event.subject) == ("com.servicenow.incident.resolved", fx.payload["sys_id"])
    event, body = send(source, load("servicenow", "incident.created", table=None, sys_id=None))
    assert (event.type, event.id) == ("com.servicenow.event", body_hash(body))
    custom = make("servicenow", table_field="record.class", operation_field="record.op")
    fx = load("servicenow", "incident.created", record={"class": "problem", "op": "delete"})
    assert send(custom, fx)[0].type == "com.servicenow.problem.deleted"
    assert send(source, load("servicenow", "incident.created", operation=None))[0].type == (
        "com.servicenow.incident"
    )


# -- Splunk ---------------------------------------------------------------------------------
def test_splunk_token() -> None:
    source = make("splunk")
    for token in (SECRET, PREVIOUS):
        source.verify(request(b"{}", query={"token": token.decode()}))
    assert rejects(source, request(b"{}")) == "missing_token"
    assert rejects(source, request(b"{}", query={"token": ""})) == "missing_token"
    assert rejects(source, request(b"{}", query={"token": STALE.decode()})) == "bad_token"
    # a token in a header is not the configured scheme
    assert rejects(source, request(b"{}", {"token": SECRET.decode()})) == "missing_token"
    named = make("splunk", token_param="key")
    named.verify(request(b"{}", query={"key": SECRET.decode()}))
    assert named.sign("alert", {}, "").query == {"key": SECRET.decode()}


@pytest.mark.parametrize(
    ("client_ip", "allowed"),
    [
        ("10.1.2.3", True),
        ("10.255.255.255", True),
        ("192.168.0.10", True),
        ("192.168.0.11", False),
        ("11.0.0.1", False),
        ("2001:db8::42", True),
        ("2001:db9::1", False),
        ("::ffff:10.1.2.3", True),
        ("::1", False),
        ("not-an-ip", False),
        ("10.1.2.3/8", False),
        ("", False),
        (None, False),
    ],
)
def test_splunk_ip_allow_list(client_ip: str | None, allowed: bool) -> None:
    source = make("splunk", allowed_ips=["10.0.0.0/8", "192.168.0.10/32", "2001:db8::/32"])
    req = request(b"{}", query={"token": SECRET.decode()}, client_ip=client_ip)
    if allowed:
        source.verify(req)
    else:
        assert rejects(source, req) == "ip_not_allowed"


def test_splunk_ip_check_runs_before_the_token_and_cidrs_are_validated() -> None:
    source = make("splunk", allowed_ips=["10.0.0.0/8"])
    assert rejects(source, request(b"{}", client_ip="8.8.8.8")) == "ip_not_allowed"
    with pytest.raises(ValidationError):
        make("splunk", allowed_ips=["10.0.0.0/33"])


def test_splunk_fixture_round_trips() -> None:
    for fx in iter_fixtures("splunk"):
        event, _ = send(make("splunk", allowed_ips=["127.0.0.0/8"]), fx, client_ip="127.0.0.1")
        assert fx.expected_type == "com.splunk.alert" == event.type
        assert event.id == fx.payload["sid"]
        assert event.subject == fx.payload["search_name"] == "Failed logins spike"
        assert dict(event.extensions) == {
            "splunkapp": "search",
            "splunkowner": "admin",
            "splunkhost": "splunk.example.com",
        }


def test_splunk_id_fallback_and_per_result_ids() -> None:
    event, body = send(make("splunk"), load("splunk", "alert", sid=None))
    assert event.id == body_hash(body)
    per = make("splunk", per_result_ids=True)
    first, _ = send(per, load("splunk", "alert"))
    second, _ = send(per, load("splunk", "alert", result={"host": "web-02"}))
    assert first.id.startswith(load("splunk", "alert").payload["sid"] + ":")
    assert first.id != second.id
    assert send(per, load("splunk", "alert"))[0].id == first.id


# -- generic --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "header", "value"),
    [
        ({}, "X-Signature", "sha256=" + mac(SECRET, BODY).hex()),
        (
            {"encoding": "base64", "prefix": ""},
            "X-Signature",
            base64.b64encode(mac(SECRET, BODY)).decode(),
        ),
        ({"algorithm": "sha1"}, "X-Signature", "sha1=" + mac(SECRET, BODY, "sha1").hex()),
        (
            {"algorithm": "sha512", "header": "X-Hook-Sig", "prefix": "v0:"},
            "X-Hook-Sig",
            "v0:" + mac(SECRET, BODY, "sha512").hex(),
        ),
        ({"prefix": ""}, "X-Signature", mac(SECRET, BODY).hex()),
    ],
)
def test_generic_hmac(settings: dict[str, Any], header: str, value: str) -> None:
    source = make("generic", **settings)
    source.verify(request(BODY, {header: value}))
    assert rejects(source, request(BODY)) == "missing_signature"
    assert rejects(source, request(b"tampered", {header: value})) == "bad_signature"
    stale = make("generic", secrets=[STALE], **settings).sign("x", BODY, "")
    assert rejects(source, request(stale.body, stale.headers)) == "bad_signature"
    signed = source.sign("x", BODY, "")
    assert signed.headers[header] == value
    previous = make("generic", secrets=[PREVIOUS], **settings).sign("x", BODY, "")
    source.verify(request(previous.body, previous.headers))


def test_generic_bearer_basic_and_none() -> None:
    bearer = make("generic", mode="bearer")
    bearer.verify(request(BODY, {"Authorization": f"Bearer {PREVIOUS.decode()}"}))
    assert rejects(bearer, request(BODY, {"Authorization": "Bearer nope"})) == "bad_credentials"
    assert rejects(bearer, request(BODY)) == "missing_credentials"
    creds = make("generic", mode="basic", username="hook")
    creds.verify(request(BODY, {"Authorization": basic("hook", SECRET)}))
    assert rejects(creds, request(BODY, {"Authorization": basic("hook", STALE)})) == (
        "bad_credentials"
    )
    with pytest.raises(ValidationError):
        make("generic", mode="basic")
    open_ = make("generic", mode="none", secrets=[])
    open_.verify(request(BODY))
    assert open_.ingest(request(b"[1, 2]")).data == [1, 2]
    # "none" is never the default: no mode and no secret means nothing verifies
    assert rejects(make("generic", secrets=[]), request(BODY)) == "no_secret"


def test_generic_type_id_and_subject() -> None:
    plain = make("generic")
    signed = plain.sign("ignored", {"a": 1}, "")
    event = plain.ingest(request(signed.body, signed.headers))
    assert (event.type, event.id, event.subject) == (
        "dev.ghapplets.generic",
        body_hash(signed.body),
        None,
    )
    custom = make(
        "generic",
        type="com.acme.deploy",
        type_header="X-Event",
        id_header="X-Delivery",
        subject_header="X-Service",
    )
    signed = custom.sign("Finished", {"ok": True}, "dl-9", {"X-Service": "checkout"})
    event = custom.ingest(request(signed.body, signed.headers))
    assert (event.type, event.id, event.subject) == ("com.acme.deploy.finished", "dl-9", "checkout")
    with pytest.raises(ValidationError):
        make("generic", type="not a type")
