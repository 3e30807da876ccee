"""Who may call what: every route of the application, for no credentials and for each role
(the route list is read from the application, so a route without an access rule fails here);
wrong, malformed and revoked tokens; SSO headers from trusted and untrusted peers; the session
hook and its CSRF check; tokens never in the log nor in a listing."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from ghapplets.admin.access import Access, AuthMethod, Principal
from ghapplets.admin.auth import CSRF_HEADER, SESSION_COOKIE, Authenticator
from ghapplets.admin.tokens import TokenStore
from ghapplets.gateway.forwarded import TrustedProxies
from ghapplets.store.records import Role
from tests.admin.harness import Admin, build_project, running_admin
from tests.conftest import ProjectBuilder

ROLES: list[Role | None] = [None, Role.VIEWER, Role.OPERATOR, Role.ADMIN]
LEAST = {Access.READ: Role.VIEWER, Access.OPERATE: Role.OPERATOR, Access.MANAGE: Role.ADMIN}


def routes(admin: Admin) -> list[tuple[str, str, str]]:
    """Every (method, path, route name) the admin application serves."""
    found = []
    for mount in admin.api.app.routes:
        assert isinstance(mount, Mount)
        for route in mount.routes:
            assert isinstance(route, Route)
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append((method, mount.path + route.path, route.name))
    return found


def concrete(path: str) -> str:
    """A path template with every parameter filled in (with ids that match nothing)."""
    return re.sub(r"{\w+(:\w+)?}", "nothing-here", path)


def expected(access: Access, role: Role | None) -> set[int] | None:
    """The statuses a refusal would have, or None when the role may call it."""
    if access == Access.PUBLIC:
        return None
    if role is None:
        return {401}
    return None if role.rank >= LEAST[access].rank else {403}


async def test_every_route_has_an_access_rule_enforced_for_every_role(
    embedded_admin: Admin,
) -> None:
    admin = embedded_admin
    served = routes(admin)
    assert len(served) >= 20
    for method, path, name in served:
        access = admin.api.access_of(name)  # KeyError: a route nobody declared a rule for
        for role in ROLES:
            answer = await admin.call(method, concrete(path), role, json={})
            refused = expected(access, role)
            what = f"{method} {path} as {role}: {answer.status_code} {answer.text[:200]}"
            if refused is None:
                assert answer.status_code not in (401, 403), what
            else:
                assert answer.status_code in refused, what
                assert answer.headers["content-type"] == "application/problem+json", what
                if answer.status_code == 401:
                    assert answer.headers["www-authenticate"].startswith("Bearer"), what


async def test_the_openapi_document_is_the_only_public_route(embedded_admin: Admin) -> None:
    public = [
        (m, p)
        for m, p, name in routes(embedded_admin)
        if embedded_admin.api.access_of(name) == Access.PUBLIC
    ]
    assert public == [("GET", "/api/v1/openapi.json")]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer gha_0123456789abcdef_" + "A" * 43,  # well formed, unknown
        "Bearer not-a-token",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "Token abc",
    ],
)
async def test_wrong_credentials_are_401(embedded_admin: Admin, header: str) -> None:
    answer = await embedded_admin.call(
        "GET", "/api/v1/deliveries", None, headers={"Authorization": header}
    )
    assert answer.status_code == 401
    assert answer.json()["type"] == "urn:ghapplets:problem:unauthorized"
    assert answer.headers["www-authenticate"] == 'Bearer realm="ghapplets"'


async def test_a_token_with_one_character_changed_is_refused(embedded_admin: Admin) -> None:
    token = embedded_admin.tokens[Role.ADMIN]
    last = "B" if token[-1] != "B" else "C"
    answer = await embedded_admin.call(
        "GET", "/api/v1/health", None, headers={"Authorization": f"Bearer {token[:-1]}{last}"}
    )
    assert answer.status_code == 401


async def test_a_revoked_token_is_refused_at_once(embedded_admin: Admin) -> None:
    admin = embedded_admin
    assert (await admin.get("/api/v1/deliveries", Role.OPERATOR)).status_code == 200
    revoked = await admin.call("POST", "/api/v1/tokens/t-operator/revoke", Role.ADMIN)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    answer = await admin.get("/api/v1/deliveries", Role.OPERATOR)
    assert answer.status_code == 401
    (line,) = (await admin.ok("/api/v1/audit", action="token.revoke"))["items"]
    assert (line["actor"], line["target"], line["outcome"]) == ("t-admin", "t-operator", "ok")


async def test_tokens_made_through_the_api_work_and_are_shown_once(
    embedded_admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    admin = embedded_admin
    caplog.set_level(logging.DEBUG)
    made = await admin.call("POST", "/api/v1/tokens", json={"name": "ci", "role": "viewer"})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert token.startswith("gha_")
    again = await admin.call("POST", "/api/v1/tokens", json={"name": "ci", "role": "admin"})
    assert again.status_code == 409
    used = await admin.call(
        "GET", "/api/v1/jobs", None, headers={"Authorization": f"Bearer {token}"}
    )
    assert used.status_code == 200
    refused = await admin.call(
        "GET", "/api/v1/tokens", None, headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 403
    listed = await admin.ok("/api/v1/tokens")
    assert token not in str(listed)
    (ci,) = [t for t in listed["items"] if t["name"] == "ci"]
    assert ci["role"] == "viewer" and ci["last_used_at"] is not None
    assert token not in caplog.text and all(t not in caplog.text for t in admin.tokens.values())
    # only the hash is stored
    stored = await admin.store.api_tokens()
    assert all(token not in (t.id, t.name, t.hash) and len(t.hash) == 64 for t in stored)


async def test_bad_token_requests_name_their_fields(embedded_admin: Admin) -> None:
    bad = await embedded_admin.call("POST", "/api/v1/tokens", json={"name": "x y", "role": "boss"})
    assert bad.status_code == 400
    names = {e["parameter"] for e in bad.json()["errors"]}
    assert names == {"name", "role"}


# -- SSO through an authenticating proxy --------------------------------------------------------
SSO = """
server:
  trusted_proxies: [127.0.0.1/32]
  admin_sso:
    groups: {{platform-admins: admin, sre: operator}}
    default_role: {default}
"""


@pytest.mark.parametrize("default", ["viewer", "null"])
async def test_sso_headers_count_from_a_trusted_proxy_only(
    project: ProjectBuilder, tmp_path: Path, default: str
) -> None:
    project.extra += SSO.format(default=default)
    root = build_project(project, tmp_path / "marker")
    async with running_admin(root, tmp_path / "data") as admin:
        as_sre = {
            "X-Forwarded-User": "ana",
            "X-Forwarded-Email": "ana@example.com",
            "X-Forwarded-Groups": "dev, sre",
        }
        # from an address that is not a trusted proxy, the headers are a client's claim
        untrusted = await admin.call(
            "GET", "/api/v1/deliveries", None, headers=as_sre, address="192.0.2.10"
        )
        assert untrusted.status_code == 401
        trusted = await admin.call("GET", "/api/v1/deliveries", None, headers=as_sre)
        assert trusted.status_code == 200
        # the group's role: an operator may replay (a job that does not exist: 404, not 403)
        replay = await admin.call("POST", "/api/v1/jobs/none/replay", None, headers=as_sre)
        assert replay.status_code == 404
        (line,) = (await admin.ok("/api/v1/audit"))["items"]
        assert (line["actor"], line["action"], line["outcome"]) == (
            "sso:ana",
            "job.replay",
            "not_found",
        )
        tokens = await admin.call("GET", "/api/v1/tokens", None, headers=as_sre)
        assert tokens.status_code == 403
        boss = {"X-Forwarded-User": "bo", "X-Forwarded-Groups": "platform-admins"}
        assert (await admin.call("GET", "/api/v1/tokens", None, headers=boss)).status_code == 200
        nobody = await admin.call(
            "GET", "/api/v1/deliveries", None, headers={"X-Forwarded-User": "eve"}
        )
        assert nobody.status_code == (200 if default == "viewer" else 403)
        # a bearer token still works from the proxy
        assert (await admin.get("/api/v1/deliveries", Role.VIEWER)).status_code == 200


def test_sso_needs_trusted_proxies(project: ProjectBuilder, tmp_path: Path) -> None:
    from ghapplets.config.loader import load_config
    from ghapplets.exceptions import ConfigError

    project.extra += "server:\n  admin_sso: {default_role: viewer}\n"
    root = build_project(project, tmp_path / "marker")
    with pytest.raises(ConfigError, match="admin_sso needs trusted_proxies"):
        load_config(root)


# -- the session hook the dashboard will use ----------------------------------------------------
async def test_a_session_cookie_resolves_through_the_hook_with_csrf_on_changes(
    embedded_admin: Admin,
) -> None:
    admin = embedded_admin
    sessions = {"s3cr3t-session": Principal("dana", Role.OPERATOR, AuthMethod.SESSION)}

    async def resolve(value: str) -> Principal | None:
        return sessions.get(value)

    admin.api.auth = Authenticator(
        TokenStore(admin.store), proxies=TrustedProxies([]), sso=None, sessions=resolve
    )
    cookie = {"Cookie": f"{SESSION_COOKIE}=s3cr3t-session"}
    assert (await admin.call("GET", "/api/v1/jobs", None, headers=cookie)).status_code == 200
    gone = {"Cookie": f"{SESSION_COOKIE}=expired"}
    assert (await admin.call("GET", "/api/v1/jobs", None, headers=gone)).status_code == 401
    no_csrf = await admin.call("POST", "/api/v1/jobs/none/replay", None, headers=cookie)
    assert no_csrf.status_code == 403 and CSRF_HEADER in no_csrf.json()["detail"]
    with_csrf = await admin.call(
        "POST", "/api/v1/jobs/none/replay", None, headers={**cookie, CSRF_HEADER: "ghapplets"}
    )
    assert with_csrf.status_code == 404
    (line,) = (await admin.ok("/api/v1/audit"))["items"]
    assert line["actor"] == "dana"
