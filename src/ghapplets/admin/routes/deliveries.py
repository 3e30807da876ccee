"""``/deliveries``: the webhooks received, one with its headers, payload and jobs, and replay."""

from __future__ import annotations

from typing import Any

import orjson

from ghapplets.admin import schemas as s
from ghapplets.admin.access import Access
from ghapplets.admin.audit import AuditAction, audited
from ghapplets.admin.endpoint import Call, Endpoint
from ghapplets.admin.params import DeliveryQuery
from ghapplets.admin.routes import views
from ghapplets.admin.routes.paging import page
from ghapplets.dispatch.replay import replay_delivery
from ghapplets.store.records import DeliveryRecord, JobRecord, Role

JOBS_SHOWN = 1000  # jobs listed with one delivery at most
REDACTED = "this source's payloads are shown to operators and admins only (redact_payload)"


def _key(d: DeliveryRecord) -> tuple[float, str, str]:
    return (d.received_at, d.source, d.id)


async def list_deliveries(call: Call) -> s.DeliveryPage:
    q = call.query_as(DeliveryQuery)
    store, f = call.ctx.store, q.filter()
    found, cursor = await page(
        "deliveries",
        (float, str, str),
        q.cursor,
        q.limit,
        lambda after, n: store.page_deliveries(f, after, n),
        _key,
    )
    return s.DeliveryPage(
        items=[views.delivery(d) for d in found], next_cursor=cursor, limit=q.limit
    )


def payload_of(body: bytes) -> Any:
    """The stored body as JSON when it is JSON, else as text."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


async def get_delivery(call: Call) -> s.DeliveryDetail:
    source, delivery_id = call.path["source"], call.path["id"]
    d = await call.ctx.store.get_delivery(delivery_id, source)
    jobs = await call.ctx.store.delivery_jobs(d.source, d.id, JOBS_SHOWN)
    hidden = call.ctx.hidden_headers(d.source)
    redacted = call.ctx.redacts_payload(d.source) and call.who.role == Role.VIEWER
    return s.DeliveryDetail(
        **views.delivery(d).model_dump(),
        attributes=d.attributes,
        headers={k: v for k, v in d.headers.items() if k.lower() not in hidden},
        payload=None if redacted else payload_of(d.body),
        payload_redacted=redacted,
        payload_note=REDACTED if redacted else None,
        jobs=[views.job(j) for j in jobs],
    )


async def replay_delivery_now(call: Call) -> s.Replayed:
    ctx, source, delivery_id = call.ctx, call.path["source"], call.path["id"]

    async def change() -> list[JobRecord]:
        matcher = await ctx.matcher()
        return await replay_delivery(ctx.store, ctx.broker, matcher, delivery_id, source)

    queued = await audited(
        ctx.store,
        call.who.name,
        AuditAction.DELIVERY_REPLAY,
        f"{source}/{delivery_id}",
        change,
        detail=lambda jobs: {"jobs": [j.id for j in jobs]},
    )
    return s.Replayed(jobs=[views.job(j) for j in queued])


ENDPOINTS = (
    Endpoint(
        "GET",
        "/deliveries",
        Access.READ,
        list_deliveries,
        "List deliveries, newest first",
        s.DeliveryPage,
        "deliveries",
        query=DeliveryQuery,
    ),
    Endpoint(
        "GET",
        "/deliveries/{source}/{id:path}",
        Access.READ,
        get_delivery,
        "One delivery: its verified headers, payload and jobs",
        s.DeliveryDetail,
        "deliveries",
        errors=(404,),
    ),
    Endpoint(
        "POST",
        "/deliveries/{source}/{id:path}/replay",
        Access.OPERATE,
        replay_delivery_now,
        "Run the applets that match the delivery now again",
        s.Replayed,
        "deliveries",
        status=202,
        errors=(404, 503),
    ),
)
