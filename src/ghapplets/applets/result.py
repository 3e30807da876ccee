"""The one result/error contract all runtimes share.

A run ends in an :class:`AppletOutcome`: ``ok`` with a JSON result, or an error that is
``retryable`` (try again later, optionally not before ``retry_after`` seconds) or permanent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ghapplets.exceptions import AppletError
from ghapplets.logging import Redactor


@dataclass(slots=True)
class AppletOutcome:
    ok: bool
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    logs: list[str] = field(default_factory=list)

    @classmethod
    def success(cls, result: Any = None, logs: list[str] | None = None) -> AppletOutcome:
        return cls(ok=True, result=result, logs=logs or [])

    @classmethod
    def failure(
        cls,
        error_type: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        logs: list[str] | None = None,
    ) -> AppletOutcome:
        return cls(
            ok=False,
            error_type=error_type,
            error_message=message,
            retryable=retryable,
            retry_after=retry_after,
            logs=logs or [],
        )

    @classmethod
    def from_error(cls, exc: AppletError, logs: list[str] | None = None) -> AppletOutcome:
        return cls.failure(
            exc.type, exc.message, retryable=exc.retryable, retry_after=exc.retry_after, logs=logs
        )

    def redact(self, redactor: Redactor) -> AppletOutcome:
        """Replace secret values by ``***`` in everything the outcome carries that comes from
        the applet: the result (recursively), the error type and message, and the logs."""
        self.result = redactor.json(self.result)
        if self.error_type:
            self.error_type = redactor.text(self.error_type)
        if self.error_message:
            self.error_message = redactor.text(self.error_message)
        self.logs = [redactor.text(line) for line in self.logs]
        return self

    def to_dict(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "result": self.result}
        return {
            "ok": False,
            "error": {
                "type": self.error_type,
                "message": self.error_message,
                "retryable": self.retryable,
            },
        }
