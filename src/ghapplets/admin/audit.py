"""The audit log of the admin API: every change made through it (replays, run controls, token
management) is written with who asked, what, on what, when and how it ended, whether it worked
or not. Read back at ``GET /api/v1/audit``; pruned after ``storage.audit_retention_days``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, TypeVar

from ghapplets.exceptions import GhappletsError, NotFound
from ghapplets.logging import get_logger
from ghapplets.store.base import AdminStore
from ghapplets.store.records import AuditOutcome, AuditRecord

T = TypeVar("T")
log = get_logger("ghapplets.admin.audit")


class AuditAction(StrEnum):
    DELIVERY_REPLAY = "delivery.replay"
    JOB_REPLAY = "job.replay"
    DEAD_LETTERS_REPLAY = "dead_letters.replay"
    RUN_CANCEL = "run.cancel"
    RUN_SUSPEND = "run.suspend"
    RUN_RESUME = "run.resume"
    RUN_RERUN = "run.rerun"
    TOKEN_CREATE = "token.create"  # noqa: S105 - an action's name
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 - an action's name


async def record(
    store: AdminStore,
    actor: str,
    action: AuditAction,
    target: str,
    outcome: AuditOutcome,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit line; a store that cannot take it is logged, not raised (the change was
    made, or refused, already)."""
    line = AuditRecord(
        id=uuid.uuid4().hex,
        at=time.time(),
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
    )
    try:
        await store.record_audit(line)
    except GhappletsError as exc:
        log.error("an audit line was not written", action=action, target=target, error=str(exc))


async def audited(
    store: AdminStore,
    actor: str,
    action: AuditAction,
    target: str,
    change: Callable[[], Awaitable[T]],
    *,
    refused: Callable[[T], bool] = lambda _: False,
    detail: Callable[[T], dict[str, Any] | None] = lambda _: None,
) -> T:
    """Make ``change`` and audit it: ``ok``, ``refused`` (when ``refused(result)``),
    ``not_found`` or ``failed`` (the error is raised on after it is written)."""
    try:
        result = await change()
    except NotFound as exc:
        await record(store, actor, action, target, AuditOutcome.NOT_FOUND, {"error": str(exc)})
        raise
    except Exception as exc:
        await record(store, actor, action, target, AuditOutcome.FAILED, {"error": str(exc)})
        raise
    outcome = AuditOutcome.REFUSED if refused(result) else AuditOutcome.OK
    await record(store, actor, action, target, outcome, detail(result))
    return result
