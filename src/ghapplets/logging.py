"""Logging configuration: structlog, JSON in production, readable console in development.

One correlation id, the delivery id, is bound with :func:`bind_delivery` (a context variable) and
appears on every line from the webhook request to each job it fans out to. Secret values that
were registered with :func:`register_secret` are replaced by ``***`` wherever they appear.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

_SECRETS: set[str] = set()
# longest first, so a secret that contains another is replaced whole, not left half visible;
# a tuple, replaced (never mutated) on registration, so other threads can iterate it safely
_ORDERED: tuple[str, ...] = ()
_MIN_SECRET_LEN = 4
_PLAIN = (int, float, bool, type(None))


def register_secret(value: str | bytes | None) -> None:
    """Redact ``value`` from every log line from now on."""
    global _ORDERED
    if not value:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) >= _MIN_SECRET_LEN and text not in _SECRETS:
        _SECRETS.add(text)
        _ORDERED = tuple(sorted(_SECRETS, key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _ORDERED:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {
            (redact(k) if isinstance(k, str) else k): _redact_value(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    # bytes, exceptions, anything a renderer shows with repr(): redact that text
    text = repr(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def _redaction_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if not _ORDERED:
        return event_dict
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_value(value)
    return event_dict


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    """A logger on the *current* ``sys.stderr``: whoever swaps the stream after ``configure``
    (pytest's capsys, Click's CliRunner) gets the lines, and a stream they closed since is
    never written to."""
    return structlog.PrintLogger(sys.stderr)


def configure(fmt: str = "auto", level: str = "info") -> None:
    """Configure structlog and the standard library root logger once per process."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redaction_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)


def get_logger(name: str | None = None, **bound: Any) -> Any:
    logger = structlog.get_logger(name) if name else structlog.get_logger()
    return logger.bind(**bound) if bound else logger


@contextmanager
def bind_delivery(delivery_id: str, **extra: Any) -> Iterator[None]:
    """Bind the correlation id (and extras) for every log line inside the block."""
    tokens = structlog.contextvars.bind_contextvars(delivery_id=delivery_id, **extra)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
