"""Named crash points on every durable path, for fault-injection tests.

Each step at which a process may die and the platform must still keep its promise (every
webhook answered 2xx is processed at least once, and a job recorded as finished does not run
again) is a :class:`CrashPoint`. The code calls :func:`reached` at that step. With
``GHAPPLETS_CRASH_AT=<point>[:<n>]`` in its environment a process kills itself with SIGKILL (no
cleanup, no flush: as ``kill -9`` or a power cut of the process would) the n-th time it reaches
the point (default: the first). Unset, :func:`reached` is one comparison.

``ghapplets debug crash-points --json`` lists the points with the roles that reach them and what
is already durable there; docs/architecture.md tabulates the same registry. Later features add
their steps here.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from enum import StrEnum

from ghapplets.exceptions import ConfigError

CRASH_ENV = "GHAPPLETS_CRASH_AT"


class Role(StrEnum):
    """The commands whose processes reach a point (``serve`` runs gateways and a worker)."""

    SERVE = "serve"
    GATEWAY = "gateway"
    WORKER = "worker"
    CLI = "cli"


class CrashPoint(StrEnum):
    GATEWAY_VERIFIED = "gateway.verified"
    GATEWAY_STORED = "gateway.stored"
    GATEWAY_PUBLISHED = "gateway.published"
    GATEWAY_ANSWERED = "gateway.answered"
    DISPATCH_FETCHED = "dispatch.fetched"
    DISPATCH_RECORDED = "dispatch.recorded"
    DISPATCH_QUEUED = "dispatch.queued"
    DISPATCH_ACKNOWLEDGED = "dispatch.acknowledged"
    WORKER_FETCHED = "worker.fetched"
    WORKER_CLAIMED = "worker.claimed"
    WORKER_APPLET_RETURNED = "worker.applet_returned"
    WORKER_RESULT_RECORDED = "worker.result_recorded"
    WORKER_ACKNOWLEDGED = "worker.acknowledged"
    RETRY_SCHEDULED = "retry.scheduled"
    DEAD_LETTERED = "dead_lettered"
    REPLAY_QUEUED = "replay.queued"
    RETENTION_BATCH = "retention.batch"
    MIGRATION_STEP = "migration.step"
    RESTORE_LOADED = "restore.loaded"
    RUN_TAKEN = "run.taken"
    RUN_STEP_RETURNED = "run.step_returned"
    RUN_STEP_RECORDED = "run.step_recorded"
    RUN_WAITING = "run.waiting"
    RUN_ENDED = "run.ended"


@dataclass(frozen=True, slots=True)
class PointInfo:
    point: CrashPoint
    roles: tuple[Role, ...]
    durable: str


_GATEWAY = (Role.SERVE, Role.GATEWAY)
_WORKER = (Role.SERVE, Role.WORKER)
_ANY = (Role.SERVE, Role.GATEWAY, Role.WORKER, Role.CLI)

POINTS: tuple[PointInfo, ...] = (
    PointInfo(
        CrashPoint.GATEWAY_VERIFIED,
        _GATEWAY,
        "nothing: the signature is checked, nothing is stored and the sender gets no answer, "
        "so it retries (or the event is lost to the sender's retry policy, never acknowledged)",
    ),
    PointInfo(
        CrashPoint.GATEWAY_STORED,
        _GATEWAY,
        "the event, in the broker (the SQLite commit, or JetStream's PubAck), before the "
        "gateway's publish call returns; the sender gets no answer and may send it again "
        "(a duplicate)",
    ),
    PointInfo(
        CrashPoint.GATEWAY_PUBLISHED,
        _GATEWAY,
        "the event, in the broker; the 2xx is not sent yet",
    ),
    PointInfo(
        CrashPoint.GATEWAY_ANSWERED,
        _GATEWAY,
        "the event, in the broker, and the sender has its 2xx",
    ),
    PointInfo(
        CrashPoint.DISPATCH_FETCHED,
        _WORKER,
        "the events, leased to this process (delivered again when the lease is released "
        "or runs out)",
    ),
    PointInfo(
        CrashPoint.DISPATCH_RECORDED,
        _WORKER,
        "the deliveries and their queued jobs, in the store; no job message yet",
    ),
    PointInfo(
        CrashPoint.DISPATCH_QUEUED,
        _WORKER,
        "the deliveries, the jobs and the job messages; the events are not acknowledged yet",
    ),
    PointInfo(
        CrashPoint.DISPATCH_ACKNOWLEDGED,
        _WORKER,
        "everything about the events; they are settled in the broker",
    ),
    PointInfo(
        CrashPoint.WORKER_FETCHED,
        _WORKER,
        "the job message, leased to this process; the job is queued in the store",
    ),
    PointInfo(
        CrashPoint.WORKER_CLAIMED,
        _WORKER,
        "the job is about to run; its start may not be recorded yet",
    ),
    PointInfo(
        CrashPoint.WORKER_APPLET_RETURNED,
        _WORKER,
        "the applet's side effects; its outcome is not recorded (the job runs again)",
    ),
    PointInfo(
        CrashPoint.WORKER_RESULT_RECORDED,
        _WORKER,
        "the outcome, in the store; the job message is not settled (it is delivered again "
        "and settled without running)",
    ),
    PointInfo(
        CrashPoint.WORKER_ACKNOWLEDGED,
        _WORKER,
        "the outcome, and the job message is settled",
    ),
    PointInfo(
        CrashPoint.RETRY_SCHEDULED,
        _WORKER,
        "the failed attempt and the job's next attempt time; the message is not yet put "
        "back with its delay (it is delivered again when its lease ends)",
    ),
    PointInfo(
        CrashPoint.DEAD_LETTERED,
        _WORKER,
        "the job, recorded dead with its reason; the message is not yet terminated",
    ),
    PointInfo(
        CrashPoint.REPLAY_QUEUED,
        (Role.CLI,),
        "the job, queued again in the store; its new message may not be published yet "
        "(run the replay again)",
    ),
    PointInfo(
        CrashPoint.RETENTION_BATCH,
        _WORKER,
        "one batch of old records deleted and committed; the next batch is not started",
    ),
    PointInfo(
        CrashPoint.MIGRATION_STEP,
        _ANY,
        "nothing of this upgrade: one revision is applied, but the caller's transaction "
        "commits all of them together, so the schema is still the previous one",
    ),
    PointInfo(
        CrashPoint.RESTORE_LOADED,
        (Role.CLI,),
        "the archive's rows, in the target store; the queue is not rebuilt (no unfinished job "
        "is queued again): run the restore again with --force",
    ),
    PointInfo(
        CrashPoint.RUN_TAKEN,
        _WORKER,
        "the blueprint run, marked running under this worker's lease, and its journal; its "
        "message is not settled, so it comes back once the lease has run out",
    ),
    PointInfo(
        CrashPoint.RUN_STEP_RETURNED,
        _WORKER,
        "the journal up to the step before; this step's applet or action has returned but is "
        "not recorded: it runs again, with the same idempotency key",
    ),
    PointInfo(
        CrashPoint.RUN_STEP_RECORDED,
        _WORKER,
        "the step, with the events it emits in the outbox (published by the timers if not by "
        "this worker)",
    ),
    PointInfo(
        CrashPoint.RUN_WAITING,
        _WORKER,
        "the run, waiting, with its timer and listeners; its message is not settled yet",
    ),
    PointInfo(
        CrashPoint.RUN_ENDED,
        _WORKER,
        "the run's end (completed or faulted) and its output or error; its message is not "
        "settled yet",
    ),
)


def parse(value: str) -> tuple[CrashPoint, int]:
    """``<point>[:<n>]`` as the point and the count; :class:`ConfigError` when malformed."""
    name, _, count = value.strip().partition(":")
    try:
        point = CrashPoint(name)
    except ValueError:
        known = ", ".join(p.value for p in CrashPoint)
        raise ConfigError([f"{CRASH_ENV}: no crash point {name!r} (known: {known})"]) from None
    if not count:
        return point, 1
    if not count.isdigit() or int(count) < 1:
        raise ConfigError([f"{CRASH_ENV}: the count after ':' must be 1 or more, got {count!r}"])
    return point, int(count)


class _Armed:
    """The point this process dies at, and how many times it has been reached."""

    __slots__ = ("left", "point")

    def __init__(self, point: CrashPoint, count: int) -> None:
        self.point = point
        self.left = count


_armed: _Armed | None = None


def arm(value: str | None) -> None:
    """Set (or, with None or "", clear) the point for this process.

    The command line arms every process from :data:`CRASH_ENV` as it starts (a malformed value
    is a :class:`ConfigError` there, before anything runs)."""
    global _armed
    _armed = _Armed(*parse(value)) if value else None


def reached(point: CrashPoint) -> None:
    """Die with SIGKILL if this is the armed point's n-th arrival; otherwise nothing."""
    armed = _armed
    if armed is None or armed.point is not point:
        return
    armed.left -= 1
    if armed.left <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
