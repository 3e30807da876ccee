"""``/runs``: blueprint runs, one with its steps and what it listens for, and the controls:
cancel, suspend, resume, rerun from a task (:mod:`ghapplets.dispatch.runs`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ghapplets.admin import schemas as s
from ghapplets.admin.access import Access
from ghapplets.admin.audit import AuditAction, audited
from ghapplets.admin.endpoint import Call, Endpoint
from ghapplets.admin.params import Rerun, RunQuery
from ghapplets.admin.problems import conflict
from ghapplets.admin.routes import views
from ghapplets.admin.routes.paging import page
from ghapplets.dispatch.runs import cancel_run, rerun, resume_run, suspend_run
from ghapplets.store.base import Store
from ghapplets.store.records import ListenerRecord


async def list_runs(call: Call) -> s.RunPage:
    q = call.query_as(RunQuery)
    store, f = call.ctx.store, q.filter()
    found, cursor = await page(
        "runs",
        (float, str),
        q.cursor,
        q.limit,
        lambda after, n: store.page_runs(f, after, n),
        lambda r: (r.started_at, r.id),
    )
    return s.RunPage(items=[views.run(r) for r in found], next_cursor=cursor, limit=q.limit)


def listeners(rows: list[ListenerRecord], until: float | None) -> list[s.Listener]:
    """A run's listener rows, one listener per step key."""
    by_key: dict[str, list[ListenerRecord]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    return [
        s.Listener(
            key=key,
            event_types=sorted({r.event_type for r in group if r.event_type is not None}),
            any_type=any(r.event_type is None for r in group),
            filters=group[0].filters,
            since=min(r.created_at for r in group),
            until=until,
        )
        for key, group in by_key.items()
    ]


async def get_run(call: Call) -> s.RunDetail:
    store = call.ctx.store
    run = await store.get_run(call.path["id"])
    steps = await store.steps(run.id)
    rows = await store.run_listeners(run.id)
    return s.RunDetail(
        **views.run(run).model_dump(),
        input=run.input,
        output=run.output,
        steps=steps,
        listeners=listeners(rows, run.wake_at),
    )


Control = Callable[[Store, str], Awaitable[bool]]


async def _control(
    call: Call, action: AuditAction, control: Control, refusal: str
) -> s.RunControlled:
    store, run_id = call.ctx.store, call.path["id"]

    async def change() -> bool:
        return await control(store, run_id)

    done = await audited(store, call.who.name, action, run_id, change, refused=lambda ok: not ok)
    if not done:
        raise conflict(refusal)
    return s.RunControlled(id=run_id, status=(await store.get_run(run_id)).status)


async def cancel(call: Call) -> s.RunControlled:
    return await _control(call, AuditAction.RUN_CANCEL, cancel_run, "the run has ended")


async def suspend(call: Call) -> s.RunControlled:
    return await _control(
        call,
        AuditAction.RUN_SUSPEND,
        suspend_run,
        "only a pending, running or waiting run can be suspended",
    )


async def resume(call: Call) -> s.RunControlled:
    broker = call.ctx.broker

    async def go(store: Store, run_id: str) -> bool:
        return await resume_run(store, broker, run_id)

    return await _control(call, AuditAction.RUN_RESUME, go, "only a suspended run can be resumed")


async def rerun_run(call: Call) -> s.RunStarted:
    ctx, run_id, task = call.ctx, call.path["id"], call.body_as(Rerun).from_

    async def change() -> str:
        return await rerun(ctx.store, ctx.broker, run_id, task)

    new = await audited(
        ctx.store,
        call.who.name,
        AuditAction.RUN_RERUN,
        run_id,
        change,
        detail=lambda new_id: {"from": task, "run": new_id},
    )
    return s.RunStarted.model_validate({"id": new, "rerun_of": run_id, "from": task})


def _control_endpoint(
    verb: str, handler: Callable[[Call], Awaitable[s.RunControlled]], what: str
) -> Endpoint:
    return Endpoint(
        "POST",
        f"/runs/{{id:path}}/{verb}",
        Access.OPERATE,
        handler,
        what,
        s.RunControlled,
        "runs",
        errors=(404, 409),
    )


ENDPOINTS = (
    Endpoint(
        "GET",
        "/runs",
        Access.READ,
        list_runs,
        "List blueprint runs, newest first",
        s.RunPage,
        "runs",
        query=RunQuery,
    ),
    Endpoint(
        "GET",
        "/runs/{id:path}",
        Access.READ,
        get_run,
        "One run: its steps, and what it listens for until when",
        s.RunDetail,
        "runs",
        errors=(404,),
    ),
    _control_endpoint("cancel", cancel, "Cancel a run that has not ended"),
    _control_endpoint("suspend", suspend, "Hold a run where it is until it is resumed"),
    _control_endpoint("resume", resume, "Let a suspended run go on"),
    Endpoint(
        "POST",
        "/runs/{id:path}/rerun",
        Access.OPERATE,
        rerun_run,
        "Run a run again from one of its tasks (a new run)",
        s.RunStarted,
        "runs",
        body=Rerun,
        status=202,
        errors=(404,),
    ),
)
