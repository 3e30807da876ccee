"""``/jobs`` and ``/dead-letters``: applet runs with their attempts, and replay, one by one or
the dead letters a filter selects."""

from __future__ import annotations

from ghapplets.admin import schemas as s
from ghapplets.admin.access import Access
from ghapplets.admin.audit import AuditAction, audited
from ghapplets.admin.endpoint import Call, Endpoint
from ghapplets.admin.params import AppletTimesQuery, DeadLetterQuery, DeadLetterReplay, JobQuery
from ghapplets.admin.routes import views
from ghapplets.admin.routes.paging import page
from ghapplets.dispatch.replay import replay_job
from ghapplets.exceptions import GhappletsError
from ghapplets.store.records import DeadLetterRecord, JobRecord, JobStatus


async def list_jobs(call: Call) -> s.JobPage:
    q = call.query_as(JobQuery)
    store, f = call.ctx.store, q.filter()
    found, cursor = await page(
        "jobs",
        (float, str),
        q.cursor,
        q.limit,
        lambda after, n: store.page_jobs(f, after, n),
        lambda j: (j.created_at, j.id),
    )
    return s.JobPage(items=[views.job(j) for j in found], next_cursor=cursor, limit=q.limit)


async def get_job(call: Call) -> s.JobDetail:
    store = call.ctx.store
    job = await store.get_job(call.path["id"])
    attempts = await store.list_attempts(job.id)
    letter = await store.dead_letter(job.id) if job.status == JobStatus.DEAD else None
    return s.JobDetail(
        **views.job(job).model_dump(),
        result=job.result,
        attempt_log=[views.attempt(a) for a in attempts],
        dead_letter=views.dead_letter(letter) if letter else None,
    )


async def replay_job_now(call: Call) -> s.Replayed:
    ctx, job_id = call.ctx, call.path["id"]

    async def change() -> JobRecord:
        return await replay_job(ctx.store, ctx.broker, job_id)

    job = await audited(ctx.store, call.who.name, AuditAction.JOB_REPLAY, job_id, change)
    return s.Replayed(jobs=[views.job(job)])


async def list_dead_letters(call: Call) -> s.DeadLetterPage:
    q = call.query_as(DeadLetterQuery)
    store, f = call.ctx.store, q.filter()
    found, cursor = await page(
        "dead-letters",
        (float, str),
        q.cursor,
        q.limit,
        lambda after, n: store.page_dead_letters(f, after, n),
        lambda d: (d.dead_at, d.job_id),
    )
    items = [views.dead_letter(d) for d in found]
    return s.DeadLetterPage(items=items, next_cursor=cursor, limit=q.limit)


async def replay_dead_letters(call: Call) -> s.BulkReplayed:
    """The dead letters the filter selects, newest first, ``limit`` of them at most: each is
    queued again (and leaves the dead letters), so asking again goes on with the rest."""
    ctx, body = call.ctx, call.body_as(DeadLetterReplay)
    f = body.filter()

    async def change() -> s.BulkReplayed:
        found: list[DeadLetterRecord] = await ctx.store.page_dead_letters(f, None, body.limit + 1)
        replayed: list[str] = []
        failed: list[s.BulkFailure] = []
        for letter in found[: body.limit]:
            try:
                await replay_job(ctx.store, ctx.broker, letter.job_id)
            except GhappletsError as exc:
                failed.append(s.BulkFailure(job_id=letter.job_id, error=str(exc)))
            else:
                replayed.append(letter.job_id)
        return s.BulkReplayed(replayed=replayed, failed=failed, more=len(found) > body.limit)

    target = body.model_dump_json(exclude_none=True)
    return await audited(
        ctx.store,
        call.who.name,
        AuditAction.DEAD_LETTERS_REPLAY,
        target,
        change,
        detail=lambda r: {
            "replayed": len(r.replayed),
            "failed": len(r.failed),
            "jobs": r.replayed,
        },
    )


async def applet_times(call: Call) -> s.AppletTimes:
    q = call.query_as(AppletTimesQuery)
    found = await call.ctx.store.attempt_times(q.since, q.limit + 1)
    items = [
        s.AppletTime(applet=t.applet, finished_at=t.finished_at, seconds=t.seconds) for t in found
    ]
    return s.AppletTimes(items=items[: q.limit], capped=len(found) > q.limit)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/jobs",
        Access.READ,
        list_jobs,
        "List jobs, newest first",
        s.JobPage,
        "jobs",
        query=JobQuery,
    ),
    Endpoint(
        "GET",
        "/applet-times",
        Access.READ,
        applet_times,
        "How long each applet's attempts that finished since a time ran, newest first",
        s.AppletTimes,
        "jobs",
        query=AppletTimesQuery,
    ),
    Endpoint(
        "GET",
        "/jobs/{id:path}",
        Access.READ,
        get_job,
        "One job with every attempt (errors and logs)",
        s.JobDetail,
        "jobs",
        errors=(404,),
    ),
    Endpoint(
        "POST",
        "/jobs/{id:path}/replay",
        Access.OPERATE,
        replay_job_now,
        "Run a job again (a dead one leaves the dead letters)",
        s.Replayed,
        "jobs",
        status=202,
        errors=(404, 503),
    ),
    Endpoint(
        "GET",
        "/dead-letters",
        Access.READ,
        list_dead_letters,
        "List dead letters, newest first",
        s.DeadLetterPage,
        "jobs",
        query=DeadLetterQuery,
    ),
    Endpoint(
        "POST",
        "/dead-letters/replay",
        Access.OPERATE,
        replay_dead_letters,
        "Replay the dead letters a filter selects (at most limit, newest first)",
        s.BulkReplayed,
        "jobs",
        body=DeadLetterReplay,
        status=202,
        errors=(503,),
    ),
)
