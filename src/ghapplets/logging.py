"""Logging configuration: structlog, JSON in production, readable console in development.

One correlation id, the delivery id, is bound with :func:`bind_delivery` (a context variable) and
appears on every line from the webhook request to each job it fans out to. Secret values that
were registered with :func:`register_secret` are replaced by ``***`` wherever they appear.

:class:`Redactor` applies the same rule to data that is stored or shown (applet results, error
messages, captured logs), with the values of one invocation added to the registered ones. Only
values of :data:`MIN_SECRET_LEN` characters or more are redacted: a 1-3 character secret would
turn ordinary text into asterisks and hide nothing worth hiding (its value is guessable anyway).
A multi-line value (a PEM key, a JSON credentials file) is also redacted line by line, for each
line of :data:`MIN_FRAGMENT_LEN` characters or more, since logs are captured a line at a time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.typing import Processor

_SECRETS: set[str] = set()
# longest first, so a secret that contains another is replaced whole, not left half visible;
# a tuple, replaced (never mutated) on registration, so other threads can iterate it safely
_ORDERED: tuple[str, ...] = ()
MIN_SECRET_LEN = 4
MIN_FRAGMENT_LEN = 16
MASK = "***"
_PLAIN = (int, float, bool, type(None))


def redactable(value: str | bytes | None) -> list[str]:
    """The texts that stand for ``value`` when redacting: itself if it has at least
    :data:`MIN_SECRET_LEN` characters, and each line of a multi-line value that has at least
    :data:`MIN_FRAGMENT_LEN` (surrounding blanks stripped)."""
    if not value:
        return []
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) < MIN_SECRET_LEN:
        return []
    found = [text]
    if "\n" in text:
        lines = (line.strip() for line in text.splitlines())
        found.extend(line for line in lines if len(line) >= MIN_FRAGMENT_LEN)
    return found


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values), key=len, reverse=True))


def register_secret(value: str | bytes | None) -> None:
    """Redact ``value`` from every log line (and every :class:`Redactor`) from now on."""
    global _ORDERED
    new = [text for text in redactable(value) if text not in _SECRETS]
    if new:
        _SECRETS.update(new)
        _ORDERED = _longest_first(_SECRETS)


def _replace(text: str, ordered: tuple[str, ...]) -> str:
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by ``***``."""
    return _replace(text, _ORDERED)


class Redactor:
    """Replaces secret values by ``***``: those registered with :func:`register_secret` (as of
    its creation) and ``values`` (which need not be registered, and are not by this)."""

    __slots__ = ("_ordered",)

    def __init__(self, values: Iterable[str | bytes | None] = ()) -> None:
        extra = [text for value in values for text in redactable(value)]
        self._ordered = _longest_first([*_ORDERED, *extra]) if extra else _ORDERED

    def text(self, text: str) -> str:
        return _replace(text, self._ordered)

    def json(self, value: Any) -> Any:
        """A JSON value with secrets redacted at any depth: in strings and object keys (each
        occurrence replaced by ``***``), and a number whose decimal text contains a secret is
        replaced by the string ``***``. Booleans and null are left alone."""
        if not self._ordered:
            return value
        return self._json(value)

    def _json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            shown = str(value)
            return MASK if self.text(shown) != shown else value
        if isinstance(value, dict):
            return {
                (self.text(k) if isinstance(k, str) else k): self._json(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._json(v) for v in value]
        return value


MAX_NESTING = 32  # deeper (or a value that contains itself): redacted as its repr() text


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _PLAIN):
        return value
    if depth < MAX_NESTING:
        if isinstance(value, dict):
            return {
                (redact(k) if isinstance(k, str) else k): _redact_value(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [_redact_value(v, depth + 1) for v in value]
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


def configure(fmt: str = "auto", level: str = "info", *, sink: Processor | None = None) -> None:
    """Configure structlog and the standard library root logger once per process. ``sink``
    (the Splunk log sink, :mod:`ghapplets.logsink`) sees every line after redaction."""
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
            *([sink] if sink is not None else []),
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
