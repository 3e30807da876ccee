"""The dashboard in-process (an ASGI client, no browser): sessions and their cookie, the
login's CSRF, sign-out, a revoked token or an expired session ends the sign-in, what a
stranger can send (the login field, filters, ids in paths, oversized forms), escaping, the
live stream's bounds, the secure-cookie setting, and the admin address without a dashboard."""

from __future__ import annotations

import asyncio
import hashlib
import time
from contextlib import aclosing
from pathlib import Path

import httpx
import pytest

from ghapplets.admin.auth import SESSION_COOKIE
from ghapplets.config.models import AdminSsoConfig, DashboardConfig, SecureCookie
from ghapplets.dashboard.app import Dashboard
from ghapplets.dashboard.forms import LOGIN_COOKIE
from ghapplets.dashboard.sessions import session_id
from ghapplets.dashboard.site import AdminSite
from ghapplets.gateway.forwarded import TrustedProxies
from ghapplets.store.records import Role
from tests.admin.harness import build_project, delivery, job_of, running_admin
from tests.conftest import WEBHOOK_SECRET, ProjectBuilder
from tests.dashboard.conftest import Site, csrf_of

PAGES = ("/", "/deliveries", "/dead-letters", "/runs", "/jobs/x", "/runs/x", "/deliveries/a/b")


async def login_form(client: httpx.AsyncClient) -> str:
    return csrf_of((await client.get("/login")).text)


async def test_a_signed_out_client_is_sent_to_the_login(site: Site) -> None:
    async with site.client() as client:
        for path in PAGES:
            answer = await client.get(path)
            assert answer.status_code == 303 and answer.headers["location"] == "/login", path
        for path in ("/jobs/x/replay", "/dead-letters/replay", "/runs/x/cancel", "/logout"):
            answer = await client.post(path, data={"csrf": "x"})
            assert answer.status_code == 303 and answer.headers["location"] == "/login", path
        assert (await client.get("/api/v1/deliveries")).status_code == 401
        assert (await client.get("/events?topic=deliveries")).status_code == 401
        assert (await client.get("/static/dashboard.css")).status_code == 200
        assert (await client.get("/login")).status_code == 200


async def test_sign_in_sets_a_strict_http_only_cookie_and_keeps_only_its_hash(
    site: Site,
) -> None:
    async with site.client() as client:
        nonce = await login_form(client)
        login_cookie = client.cookies[LOGIN_COOKIE]
        assert login_cookie == nonce
        assert csrf_of((await client.get("/login")).text) == nonce  # kept while held
        done = await client.post(
            "/login", data={"csrf": nonce, "token": site.admin.tokens[Role.OPERATOR]}
        )
        assert done.status_code == 303
        header = done.headers.get_list("set-cookie")
        session = next(h for h in header if h.startswith(f"{SESSION_COOKIE}="))
        parts = {p.strip().lower() for p in session.split(";")}
        assert {"httponly", "samesite=strict", "path=/"} <= parts
        assert "secure" not in parts  # plain HTTP, secure_cookie: auto
        secret = client.cookies[SESSION_COOKIE]
        stored = await site.admin.store.get_session(session_id(secret), 0)
        assert stored is not None and stored.name == "t-operator" and stored.role == Role.OPERATOR
        assert stored.id == hashlib.sha256(secret.encode()).hexdigest() != secret
        page = await client.get("/")
        assert page.status_code == 200 and "t-operator" in page.text
        # the API takes the cookie too: reads, and changes with X-Requested-With
        assert (await client.get("/api/v1/deliveries")).status_code == 200
        # signed in already: the login page sends you home
        assert (await client.get("/login")).headers["location"] == "/"
        # sign out: the session is gone from the store, the cookie is cleared
        csrf = csrf_of(page.text)
        assert (await client.post("/logout", data={"csrf": "nope"})).status_code == 403
        out = await client.post("/logout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert await site.admin.store.get_session(session_id(secret), 0) is None
        client.cookies.set(SESSION_COOKIE, secret)  # a copy kept by someone: no use
        assert (await client.get("/")).status_code == 303
        assert (await client.get("/api/v1/deliveries")).status_code == 401


@pytest.mark.parametrize(
    "token",
    ["", "nope", "gha_0123456789abcdef_" + "x" * 43, "x" * 100_000, "<script>", "gha_\x00"],
)
async def test_a_bad_token_is_refused_without_saying_why(site: Site, token: str) -> None:
    async with site.client() as client:
        nonce = await login_form(client)
        answer = await client.post("/login", data={"csrf": nonce, "token": token})
        assert answer.status_code in (401, 413)
        if answer.status_code == 401:
            assert "That token was not accepted." in answer.text
        assert "<script>" not in answer.text
        assert SESSION_COOKIE not in client.cookies


async def test_the_login_needs_its_double_submit_token(site: Site) -> None:
    token = site.admin.tokens[Role.ADMIN]
    async with site.client() as client:
        nonce = await login_form(client)
        for form in ({"token": token}, {"token": token, "csrf": "x" * 43}):
            answer = await client.post("/login", data=form)
            assert answer.status_code == 403 and SESSION_COOKIE not in client.cookies
        client.cookies.delete(LOGIN_COOKIE)
        answer = await client.post("/login", data={"token": token, "csrf": nonce})
        assert answer.status_code == 403 and SESSION_COOKIE not in client.cookies
        answer = await client.post(
            "/login", content=b'{"token": 1}', headers={"content-type": "application/json"}
        )
        assert answer.status_code == 415


async def test_forms_need_the_session_csrf_token_and_the_role(site: Site) -> None:
    await site.admin.gateway.send("github", "issues.opened")
    jobs: list[dict[str, str]] = []
    for _ in range(200):  # the dispatcher makes the jobs a moment after the 202
        jobs = (await site.admin.ok("/api/v1/jobs"))["items"]
        if jobs:
            break
        await asyncio.sleep(0.05)
    job = jobs[0]["id"]
    operator, csrf = await site.signed_in(Role.OPERATOR)
    viewer, viewer_csrf = await site.signed_in(Role.VIEWER)
    async with aclosing(operator), aclosing(viewer):
        for form in ({}, {"csrf": ""}, {"csrf": viewer_csrf}, {"csrf": csrf + "x"}):
            answer = await operator.post(f"/jobs/{job}/replay", data=form)
            assert answer.status_code == 403, form
        refused = await viewer.post(f"/jobs/{job}/replay", data={"csrf": viewer_csrf})
        assert refused.status_code == 403 and "viewer" in refused.text
        bulk = await viewer.post("/dead-letters/replay", data={"csrf": viewer_csrf})
        assert bulk.status_code == 403
        done = await operator.post(f"/jobs/{job}/replay", data={"csrf": csrf})
        assert done.status_code == 303 and done.headers["location"] == f"/jobs/{job}"
        htmx = await operator.post(
            f"/jobs/{job}/replay", data={"csrf": csrf}, headers={"HX-Request": "true"}
        )
        assert htmx.status_code == 200 and "Queued again." in htmx.text
        # through the API with the cookie: X-Requested-With is needed
        api = f"/api/v1/jobs/{job}/replay"
        assert (await operator.post(api)).status_code == 403
        assert (await operator.post(api, headers={"X-Requested-With": "x"})).status_code == 202
        unknown = await operator.post("/runs/nope/explode", data={"csrf": csrf})
        assert unknown.status_code == 404
    audit = (await site.admin.ok("/api/v1/audit"))["items"]
    assert {a["actor"] for a in audit} == {"t-operator"}


async def test_what_strangers_send_is_escaped_or_refused(site: Site) -> None:
    evil = "<script>alert(1)</script>"
    record = delivery(1, subject=evil)
    record.headers = {"x-note": evil}
    record.body = b'{"k": "<img src=x onerror=alert(1)>"}'
    await site.admin.store.record_dispatch([record], [])
    client, _ = await site.signed_in(Role.VIEWER)
    async with aclosing(client):
        listed = await client.get("/deliveries", params={"q": evil})
        assert listed.status_code == 200
        assert evil not in listed.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in listed.text
        shown = await client.get(f"/deliveries/github/{record.id}")
        assert shown.status_code == 200
        assert evil not in shown.text and "<img src=x" not in shown.text
        for params in (
            {"status": "bogus"},
            {"since": "yesterday"},
            {"q": "x" * 600},
            {"cursor": "not-a-cursor"},
        ):
            answer = await client.get("/deliveries", params=params)
            assert answer.status_code == 400, params
            assert evil not in answer.text
        for params in ({"color": "red"}, {"type": "\x00"}):  # ignored; matches nothing
            assert (await client.get("/deliveries", params=params)).status_code == 200
        for path in ("/jobs/nope", "/runs/%3Cscript%3E", "/deliveries/x/" + "y" * 5000):
            answer = await client.get(path)
            assert answer.status_code == 404, path
            assert "<script>" not in answer.text.split("</head>")[1]
        huge = await client.post("/jobs/x/replay", content=b"csrf=" + b"x" * 100_000)
        assert huge.status_code == 413


async def test_the_deliveries_page_filters_by_applet(site: Site) -> None:
    first, second = delivery(1, subject="first one"), delivery(2, subject="second one")
    now = time.time()
    await site.admin.store.record_dispatch(
        [first, second], [job_of(first, "labeler", now), job_of(second, "notifier", now)]
    )
    client, _ = await site.signed_in(Role.VIEWER)
    async with aclosing(client):
        page = await client.get("/deliveries", params={"applet": "notifier"})
        assert page.status_code == 200
        assert "second one" in page.text and "first one" not in page.text
        assert 'name="applet" value="notifier"' in page.text  # the form keeps the filter


async def test_live_streams_are_bounded(site: Site) -> None:
    client, _ = await site.signed_in(Role.VIEWER)
    api = site.site.api
    dashboard = site.site.dashboard
    assert dashboard is not None
    full = Dashboard(
        api, dashboard.sessions, DashboardConfig(live_connections=0), TrustedProxies([])
    )
    async with aclosing(client):
        assert (await client.get("/events?topic=nope")).status_code == 400
        assert (await client.get("/events?topic=job")).status_code == 400
        assert (await client.get("/events?topic=job&id=" + "x" * 2000)).status_code == 400
        transport = httpx.ASGITransport(app=AdminSite(api, full))  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=transport, base_url="http://admin", cookies=client.cookies
        ) as other:
            refused = await other.get("/events?topic=deliveries")
            assert refused.status_code == 503 and refused.headers["retry-after"] == "10"
        # a stream of a job that is not there ends at once
        dashboard.live.lifetime = 5
        ended = await client.get("/events?topic=job&id=nope")
        assert ended.status_code == 200 and "event: ended" in ended.text
        assert dashboard.live.open == 0


@pytest.mark.parametrize(
    ("mode", "peer", "proto", "secure"),
    [
        (SecureCookie.AUTO, "127.0.0.1", None, False),
        (SecureCookie.AUTO, "10.0.0.1", "https", True),  # a trusted proxy says HTTPS
        (SecureCookie.AUTO, "192.0.2.9", "https", False),  # anyone else may not
        (SecureCookie.ALWAYS, "127.0.0.1", None, True),
        (SecureCookie.NEVER, "10.0.0.1", "https", False),
    ],
)
async def test_the_session_cookie_is_secure_as_configured(
    site: Site, mode: SecureCookie, peer: str, proto: str | None, secure: bool
) -> None:
    base = site.site.dashboard
    assert base is not None
    dashboard = Dashboard(
        site.site.api,
        base.sessions,
        DashboardConfig(secure_cookie=mode),
        TrustedProxies(["10.0.0.0/8"]),
    )
    transport = httpx.ASGITransport(app=AdminSite(site.site.api, dashboard), client=(peer, 5000))  # type: ignore[arg-type]
    headers = {"x-forwarded-proto": proto} if proto else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        form = await client.get("/login", headers=headers)
        nonce = csrf_of(form.text)
        client.cookies.set(LOGIN_COOKIE, nonce)
        done = await client.post(
            "/login",
            data={"csrf": nonce, "token": site.admin.tokens[Role.VIEWER]},
            headers=headers,
        )
    assert done.status_code == 303
    cookie = next(
        h for h in done.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=")
    )
    assert ("secure" in cookie.lower().split("; ")) is secure


async def test_without_the_dashboard_the_admin_address_serves_the_api_alone(
    site: Site, tmp_path: Path
) -> None:
    platform = site.admin.platform
    platform.config.server.dashboard.enabled = False
    alone = platform.admin_site()
    assert alone.dashboard is None
    transport = httpx.ASGITransport(app=alone)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        assert (await client.get("/login")).status_code == 404
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/api/v1/openapi.json")).status_code == 200
        token = {"Authorization": f"Bearer {site.admin.tokens[Role.VIEWER]}"}
        assert (await client.get("/api/v1/deliveries", headers=token)).status_code == 200


async def test_a_user_an_authenticating_proxy_vouches_for_is_signed_in(site: Site) -> None:
    server = site.admin.platform.config.server
    server.trusted_proxies = ["10.0.0.0/8"]
    server.admin_sso = AdminSsoConfig(groups={"ops": Role.OPERATOR})
    behind = site.admin.platform.admin_site()

    def client(peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=behind, client=(peer, 5000))  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url="http://admin")

    ana = {"X-Forwarded-User": "ana", "X-Forwarded-Groups": "dev, ops"}
    async with client("10.1.2.3") as proxied:
        signed = await proxied.get("/login", headers=ana)
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        page = await proxied.get("/", headers=ana)
        assert page.status_code == 200 and "sso:ana" in page.text and "(operator)" in page.text
        job = "nope"
        replay = await proxied.post(
            f"/jobs/{job}/replay", data={"csrf": csrf_of(page.text)}, headers=ana
        )
        assert replay.status_code == 404  # past the CSRF check and the role: no such job
        proxied.cookies.delete(SESSION_COOKIE)
        nobody = await proxied.get("/login", headers={"X-Forwarded-User": "eve"})
        assert nobody.status_code == 403 and "eve" in nobody.text
    async with client("192.0.2.7") as direct:  # not a trusted proxy: the headers mean nothing
        answer = await direct.get("/login", headers=ana)
        assert answer.status_code == 200 and 'name="token"' in answer.text
        assert SESSION_COOKIE not in direct.cookies


async def test_the_settings_reach_the_sessions_and_the_streams(site: Site) -> None:
    settings = site.admin.platform.config.server.dashboard
    settings.session_hours = 2
    settings.live_seconds = 42
    settings.live_connections = 7
    made = site.admin.platform.admin_site()
    assert made.dashboard is not None
    assert made.dashboard.sessions.lifetime == 7200
    assert (made.dashboard.live.lifetime, made.dashboard.live.limit) == (42, 7)
    transport = httpx.ASGITransport(app=made)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        nonce = await login_form(client)
        done = await client.post(
            "/login", data={"csrf": nonce, "token": site.admin.tokens[Role.VIEWER]}
        )
    cookie = next(
        h for h in done.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=")
    )
    assert "max-age=7200" in cookie.lower()
    stored = await site.admin.store.get_session(session_id(client.cookies[SESSION_COOKIE]), 0)
    assert stored is not None and stored.expires_at - stored.created_at == 7200


async def test_a_viewer_sees_no_payload_of_a_redacting_source(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    hidden = f"kind: github\nsecret: {WEBHOOK_SECRET}\nredact_payload: true"
    root = build_project(project, tmp_path / "marker", extra_sources=hidden)
    async with running_admin(root, tmp_path / "data") as admin:
        here = Site(admin, admin.platform.admin_site())
        record = delivery(7, source="hidden")
        record.body = b'{"secret_plan": "take over the world"}'
        await admin.store.record_dispatch([record], [])
        path = f"/deliveries/hidden/{record.id}"
        for role, shown in ((Role.VIEWER, False), (Role.OPERATOR, True)):
            client, _ = await here.signed_in(role)
            async with aclosing(client):
                page = await client.get(path)
            assert page.status_code == 200
            assert ("take over the world" in page.text) is shown, role
            assert ("redact_payload" in page.text) is not shown, role


async def test_a_bug_is_a_page_that_says_so_not_a_trace(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail of a bug")

    dashboard = site.site.dashboard
    assert dashboard is not None
    monkeypatch.setattr(dashboard.calls, "call", broken)
    client, csrf = await site.signed_in(Role.OPERATOR)
    async with aclosing(client):
        page = await client.get("/runs")
        post = await client.post("/jobs/x/replay", data={"csrf": csrf})
    for answer in (page, post):
        assert answer.status_code == 500
        assert "log says why" in answer.text
        assert "secret detail" not in answer.text and "Traceback" not in answer.text
