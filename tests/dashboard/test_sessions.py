"""Sessions: they end when their token is revoked or they expire, and a cookie that cannot be
one finds none; CSRF tokens compare exactly. (Sign-in and sign-out through the pages:
test_app.py.)"""

from __future__ import annotations

from contextlib import aclosing

from ghapplets.dashboard.sessions import Sessions, same
from ghapplets.store.records import Role
from tests.dashboard.conftest import Site


def test_csrf_tokens_compare_exactly() -> None:
    assert same("abc", "abc")
    assert not same("abc", "abd")
    assert not same("abc", None)
    assert not same("abc", "")
    assert not same("", "")  # a session without a token never matches


async def test_a_revoked_token_or_an_expired_session_ends_the_sign_in(site: Site) -> None:
    client, _ = await site.signed_in(Role.OPERATOR)
    async with aclosing(client):
        assert (await client.get("/")).status_code == 200
        await site.admin.platform.backends.store.revoke_api_token("t-operator", 1.0)
        assert (await client.get("/")).status_code == 303
        assert (await client.get("/api/v1/deliveries")).status_code == 401
    now = [1000.0]
    sessions = Sessions(site.admin.store, hours=1, clock=lambda: now[0])
    started = await sessions.sign_in(site.admin.tokens[Role.VIEWER])
    assert started is not None
    secret, record = started
    assert record.expires_at == 1000.0 + 3600
    assert await sessions.find(secret) is not None
    now[0] += 3600
    assert await sessions.find(secret) is None
    assert await sessions.find("x" * 1000) is None and await sessions.find(None) is None
