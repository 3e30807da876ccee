"""Subscription matching: which applets an event goes to. Sans-I/O.

This module owns the meaning of a subscription: a CloudEvent ``type`` pattern in which ``*``
matches any run of characters (dots included; ``?`` and ``[`` are literal) plus an optional jq
``when:`` condition evaluated on the structured event (``event.to_dict()``), which holds when its
first output is truthy in jq's sense (neither ``null`` nor ``false``). A jq runtime error or an
empty output means "no match" and is logged, never raised.

:class:`Matcher` compiles everything once: literal patterns go into a dict for O(1) lookup,
wildcard patterns become one regular expression each, jq programs are compiled up front (a bad
program is a :class:`ValueError` naming the applet).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any

import jq
import orjson

from ghapplets.applets.model import AppletSpec, Subscription
from ghapplets.events.cloudevent import CloudEvent
from ghapplets.logging import get_logger

_log = get_logger("ghapplets.matching")


def compile_type_pattern(pattern: str) -> re.Pattern[str] | None:
    """A regex for a wildcard pattern, or ``None`` if the pattern is a literal type."""
    if "*" not in pattern:
        return None
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def compile_jq(program: str) -> Any:
    """Compile a jq program, raising :class:`ValueError` with jq's message if it is invalid."""
    try:
        return jq.compile(program)
    except ValueError as exc:
        raise ValueError(str(exc).strip().splitlines()[0]) from None


def structured_json(event: CloudEvent) -> bytes:
    """The structured-mode JSON of ``event``; binary data goes in ``data_base64`` as the
    CloudEvents JSON format prescribes."""
    if isinstance(event.data, bytes | bytearray):
        doc = event.to_dict()
        del doc["data"]
        doc["data_base64"] = base64.b64encode(event.data).decode("ascii")
        return orjson.dumps(doc)
    return event.to_json()


def jq_truthy(value: Any) -> bool:
    return value is not None and value is not False


class EventDocument:
    """The structured JSON text of one event, serialised at most once per match."""

    __slots__ = ("_event", "_text")

    def __init__(self, event: CloudEvent) -> None:
        self._event = event
        self._text: str | None = None

    @property
    def event(self) -> CloudEvent:
        return self._event

    def text(self) -> str:
        if self._text is None:
            self._text = structured_json(self._event).decode("utf-8")
        return self._text


class CompiledSubscription:
    """One subscription, compiled; ``owner`` names the applet (or handler) in messages."""

    __slots__ = ("_program", "_regex", "owner", "subscription")

    def __init__(self, subscription: Subscription, owner: str) -> None:
        self.subscription = subscription
        self.owner = owner
        self._regex = compile_type_pattern(subscription.type)
        self._program: Any = None
        if subscription.when is not None:
            try:
                self._program = compile_jq(subscription.when)
            except ValueError as exc:
                raise ValueError(
                    f"applet {owner!r}: invalid jq in 'when' ({subscription.when!r}): {exc}"
                ) from None

    @property
    def literal(self) -> str | None:
        return self.subscription.type if self._regex is None else None

    def type_matches(self, event_type: str) -> bool:
        if self._regex is None:
            return event_type == self.subscription.type
        return self._regex.fullmatch(event_type) is not None

    def condition_holds(self, doc: EventDocument) -> bool:
        if self._program is None:
            return True
        try:
            outputs = self._program.input_text(doc.text())
            return jq_truthy(next(iter(outputs), None))
        except Exception as exc:
            _log.warning(
                "when condition failed; not matching",
                applet=self.owner,
                when=self.subscription.when,
                event_id=doc.event.id,
                event_type=doc.event.type,
                error=str(exc).strip(),
            )
            return False

    def matches(self, doc: EventDocument) -> bool:
        return self.type_matches(doc.event.type) and self.condition_holds(doc)


class Matcher:
    """Routes events to the enabled applets whose subscriptions match them."""

    def __init__(self, specs: Iterable[AppletSpec]) -> None:
        self._specs = [spec for spec in specs if spec.enabled]
        self._literal: dict[str, list[tuple[int, CompiledSubscription]]] = {}
        self._wildcard: list[tuple[int, CompiledSubscription]] = []
        self._needs_data = any(sub.when for spec in self._specs for sub in spec.on)
        for index, spec in enumerate(self._specs):
            for sub in spec.on:
                compiled = CompiledSubscription(sub, spec.name)
                if compiled.literal is not None:
                    self._literal.setdefault(compiled.literal, []).append((index, compiled))
                else:
                    self._wildcard.append((index, compiled))

    @property
    def needs_data(self) -> bool:
        """Whether any ``when:`` condition reads the event; if none does, matching needs only
        the event's attributes and the payload need not be parsed."""
        return self._needs_data

    @property
    def specs(self) -> list[AppletSpec]:
        """The enabled applets this matcher routes to."""
        return list(self._specs)

    def match(self, event: CloudEvent) -> list[AppletSpec]:
        """The applets ``event`` goes to, each once, in the order they were given."""
        doc = EventDocument(event)
        hits: set[int] = set()
        for index, compiled in self._literal.get(event.type, ()):
            if index not in hits and compiled.condition_holds(doc):
                hits.add(index)
        for index, compiled in self._wildcard:
            if index not in hits and compiled.matches(doc):
                hits.add(index)
        return [self._specs[i] for i in sorted(hits)]
