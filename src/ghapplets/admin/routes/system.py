"""``/health``, ``/secrets``, ``/audit``, ``/tokens``: the platform's state, the names of the
secrets (never values), the audit log, and the API's own tokens."""

from __future__ import annotations

import asyncio

from ghapplets import __version__
from ghapplets.admin import schemas as s
from ghapplets.admin.access import Access
from ghapplets.admin.audit import AuditAction, audited
from ghapplets.admin.endpoint import Call, Endpoint
from ghapplets.admin.params import AuditQuery, TokenRequest
from ghapplets.admin.routes.paging import page
from ghapplets.admin.tokens import NewToken
from ghapplets.dispatch import messages as m
from ghapplets.logging import get_logger
from ghapplets.store.records import ApiTokenRecord

log = get_logger("ghapplets.admin")
PROBE_TIMEOUT = 2.0  # seconds for one queue depth or count


async def health(call: Call) -> s.Health:
    ctx = call.ctx
    checks = await ctx.ready()
    queues: dict[str, int | None] = {}
    for stream in (m.EVENTS, m.JOBS):
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                queues[stream] = await ctx.broker.depth(stream)
        except Exception as exc:  # a health page must answer when the broker does not
            log.warning("queue depth unavailable", stream=stream, error=str(exc))
            queues[stream] = None
    dead: int | None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            dead = await ctx.store.dead_letter_count()
    except Exception as exc:
        log.warning("dead letter count unavailable", error=str(exc))
        dead = None
    ok = all(v == "ok" for v in checks.values())
    return s.Health(
        status="ok" if ok else "unavailable",
        checks=checks,
        queues=queues,
        dead_letters=dead,
        version=__version__,
    )


async def list_secrets(call: Call) -> s.SecretNameList:
    backend = call.ctx.backends.secret_backend
    found = await backend.list()
    items = [
        s.SecretName(name=i.name, scope=i.scope, created_at=i.created_at, updated_at=i.updated_at)
        for i in found
    ]
    return s.SecretNameList(backend=str(backend.kind), items=items)


async def list_audit(call: Call) -> s.AuditPage:
    q = call.query_as(AuditQuery)
    store, f = call.ctx.store, q.filter()
    found, cursor = await page(
        "audit",
        (float, str),
        q.cursor,
        q.limit,
        lambda after, n: store.page_audit(f, after, n),
        lambda a: (a.at, a.id),
    )
    items = [s.AuditEntry(**a.to_dict()) for a in found]
    return s.AuditPage(items=items, next_cursor=cursor, limit=q.limit)


def token_view(t: ApiTokenRecord) -> s.Token:
    return s.Token(
        id=t.id,
        name=t.name,
        role=t.role,
        created_at=t.created_at,
        last_used_at=t.last_used_at,
        revoked_at=t.revoked_at,
    )


async def list_tokens(call: Call) -> s.TokenList:
    return s.TokenList(items=[token_view(t) for t in await call.ctx.tokens.list()])


async def create_token(call: Call) -> s.TokenCreated:
    ctx, body = call.ctx, call.body_as(TokenRequest)

    async def change() -> NewToken:
        return await ctx.tokens.create(body.name, body.role)

    new = await audited(
        ctx.store,
        call.who.name,
        AuditAction.TOKEN_CREATE,
        body.name,
        change,
        detail=lambda made: {"role": made.record.role.value, "id": made.record.id},
    )
    return s.TokenCreated(**token_view(new.record).model_dump(), token=new.token)


async def revoke_token(call: Call) -> s.Token:
    ctx, name = call.ctx, call.path["name"]

    async def change() -> ApiTokenRecord:
        return await ctx.tokens.revoke(name)

    revoked = await audited(ctx.store, call.who.name, AuditAction.TOKEN_REVOKE, name, change)
    return token_view(revoked)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/health",
        Access.READ,
        health,
        "Can the broker and the store serve; queue depths; dead letters",
        s.Health,
        "system",
    ),
    Endpoint(
        "GET",
        "/secrets",
        Access.MANAGE,
        list_secrets,
        "The names and scopes of the stored secrets (never values)",
        s.SecretNameList,
        "system",
        errors=(503,),
    ),
    Endpoint(
        "GET",
        "/audit",
        Access.MANAGE,
        list_audit,
        "The audit log of changes made through the API, newest first",
        s.AuditPage,
        "system",
        query=AuditQuery,
    ),
    Endpoint(
        "GET",
        "/tokens",
        Access.MANAGE,
        list_tokens,
        "The API's tokens (never a token itself)",
        s.TokenList,
        "tokens",
    ),
    Endpoint(
        "POST",
        "/tokens",
        Access.MANAGE,
        create_token,
        "Make a token; the answer shows it this once",
        s.TokenCreated,
        "tokens",
        body=TokenRequest,
        status=201,
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/tokens/{name}/revoke",
        Access.MANAGE,
        revoke_token,
        "Revoke a token: refused from now on",
        s.Token,
        "tokens",
        errors=(404,),
    ),
)
