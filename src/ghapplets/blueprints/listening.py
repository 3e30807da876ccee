"""``emit`` and ``listen``: the events a run sends, and those it waits for.

``emit`` evaluates the event's properties, fills in what CloudEvents requires (an ``id`` derived
from the run and the step, so a step run again emits the same event and the broker's dedup
drops the copy), and hands the event to the host with the step's checkpoint: it is published
only once the step is durable (an outbox). The task's output is the event, as emitted (the
conformance kit's emit scenario).

``listen`` registers a :class:`~.host.Listener` with the host, then takes the events the host
delivers to it one by one, in the host's order, and decides with the consumption strategy
(``one``, ``all``, ``any``, with ``until``) which it consumes. The host may deliver more than
the listener wants (it matches on attributes only): the exact filter, with its ``data``
expressions and correlations, is applied here. ``foreach`` runs its tasks for each consumed
event as it arrives. A filter's string attributes match exactly or as a regular expression; an
attribute given as a runtime expression is evaluated on the event's attribute (``data`` on the
event's data) and matches when it is true or equal to the attribute.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.blueprints.expressions import is_expression
from ghapplets.blueprints.host import Listener

if TYPE_CHECKING:
    from ghapplets.blueprints.engine import Outcome, Run, Step

MAX_MATCHED_TEXT = 65_536  # the longest attribute a regular expression is tried on
Evaluate = Callable[[str, Any], Any]  # (expression, data) -> value


async def run_emit(run: Run, step: Step) -> Outcome:
    from ghapplets.blueprints.engine import Outcome

    # ``with`` is an object (the loader refuses anything else), so its rendering is one too
    props = step.task["emit"]["event"].get("with") or {}
    event = dict(run.render(props, step.input, run.variables(step)))
    for required in ("source", "type"):
        if not isinstance(event.get(required), str) or not event[required]:
            raise raise_error(ErrorKind.VALIDATION, f"the event to emit has no {required}")
    seed = f"{run.host.run_id}{step.key}".encode()
    event.setdefault("id", hashlib.sha256(seed).hexdigest()[:32])
    event.setdefault("specversion", "1.0")
    event.setdefault("time", datetime.fromtimestamp(run.host.now(), UTC).isoformat())
    if "data" in event:
        event.setdefault("datacontenttype", "application/json")
    return Outcome(dict(event), emit=[event])  # the task's output is the event it emitted


# -- matching (pure) --------------------------------------------------------------------------
def attribute_matches(expected: Any, actual: Any) -> bool:
    """A filter attribute that is not an expression, against the event's."""
    if isinstance(expected, str):
        if actual is None:
            return False
        text = actual if isinstance(actual, str) else orjson.dumps(actual).decode()
        if expected == text:
            return True
        if len(text) > MAX_MATCHED_TEXT:
            return False
        try:
            return re.fullmatch(expected, text) is not None
        except re.error:
            return False
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and attribute_matches(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


def attributes_match(props: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """The attributes of a filter that are not expressions: what a host can match alone."""
    return all(attribute_matches(v, event.get(k)) for k, v in props.items() if not is_expression(v))


def filter_matches(
    spec: Mapping[str, Any],
    event: Mapping[str, Any],
    evaluate: Evaluate,
    expected: dict[str, Any],
) -> bool:
    """An event filter (``with`` and ``correlate``) against an event. ``expected`` holds the
    correlation values expected so far; a correlation without ``expect`` takes the first
    value it sees (``expected`` is updated then)."""
    props = spec.get("with") or {}
    if not attributes_match(props, event):
        return False
    for name, value in props.items():
        if is_expression(value):
            result = evaluate(value, event.get(name))
            if result is not True and (result is False or result != event.get(name)):
                return False
    seen: dict[str, Any] = {}
    for name, correlation in (spec.get("correlate") or {}).items():
        value = evaluate(correlation["from"], dict(event))
        if name in expected and expected[name] != value:
            return False
        seen[name] = value
    for name, value in seen.items():
        expected.setdefault(name, value)
    return True


@dataclass
class Consumption:
    """Progress of an event consumption strategy over the events offered to it."""

    strategy: Mapping[str, Any]
    evaluate: Evaluate
    expected: dict[str, Any] = field(default_factory=dict)
    consumed: list[Mapping[str, Any]] = field(default_factory=list)
    satisfied: set[int] = field(default_factory=set)
    done: bool = False
    until: Consumption | None = None

    def __post_init__(self) -> None:
        until = self.strategy.get("until")
        if isinstance(until, Mapping):
            self.until = Consumption(until, self.evaluate, self.expected)
        if "all" in self.strategy and not self.strategy["all"]:
            self.done = True

    def offer(self, event: Mapping[str, Any], until_condition: Callable[[], bool]) -> bool:
        """Consume ``event`` if the strategy wants it; whether it did. Events that end an
        ``until`` are not consumed."""
        if self.done:
            return False
        if self.until is not None:
            self.until.offer(event, lambda: False)
            if self.until.done:
                self.done = True
                return False
            if self.until.consumed and self.until.consumed[-1] is event:
                return False
        if "one" in self.strategy:
            if self._matches(self.strategy["one"], event):
                self.consumed.append(event)
                self.done = True
                return True
            return False
        if "all" in self.strategy:
            for index, spec in enumerate(self.strategy["all"]):
                if index not in self.satisfied and self._matches(spec, event):
                    self.satisfied.add(index)
                    self.consumed.append(event)
                    self.done = len(self.satisfied) == len(self.strategy["all"])
                    return True
            return False
        filters = self.strategy.get("any") or []
        if filters and not any(self._matches(spec, event) for spec in filters):
            return False
        self.consumed.append(event)
        if "until" not in self.strategy:
            self.done = True
        elif isinstance(self.strategy["until"], str | bool):
            self.done = until_condition()
        return True

    def _matches(self, spec: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
        trial = dict(self.expected)
        if not filter_matches(spec, event, self.evaluate, trial):
            return False
        self.expected.update(trial)
        return True


def filters_of(strategy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every event filter in a strategy (and its ``until``)."""
    found: list[Mapping[str, Any]] = []
    if "one" in strategy:
        found.append(strategy["one"])
    found.extend(strategy.get("all") or [])
    found.extend(strategy.get("any") or [])
    until = strategy.get("until")
    if isinstance(until, Mapping):
        found.extend(filters_of(until))
    return found


def listener_of(key: str, strategy: Mapping[str, Any]) -> Listener:
    """What the host is asked to deliver: every event that matches a filter's attributes."""
    wants_all = "any" in strategy and not strategy["any"]
    return Listener(key, filters_of(strategy), wants_all)


def read_event(event: Mapping[str, Any], read: str) -> Any:
    if read == "envelope":
        return dict(event)
    if read == "raw":
        if "data_base64" in event:
            return event["data_base64"]
        return orjson.dumps(event.get("data")).decode()
    return event.get("data")


# -- the listen task --------------------------------------------------------------------------
async def run_listen(run: Run, step: Step) -> Outcome:
    from ghapplets.blueprints.engine import Outcome

    spec = step.task["listen"]
    strategy = spec["to"]
    read = spec.get("read", "data")
    variables = run.variables(step)
    expected = _expectations(run, step, strategy, variables)

    def evaluate(expression: str, data: Any) -> Any:
        return run.evaluate(expression, data, variables)

    consumption = Consumption(strategy, evaluate, dict(expected))
    until = strategy.get("until")
    listener = listener_of(step.key, strategy)
    if step.marker is None:
        await run.mark(step, {"listening": True})
    await run.host.listen(listener)
    foreach = step.task.get("foreach")
    outputs: list[Any] = []
    index = 0
    while not consumption.done:  # the task's timeout is applied around it (Run.within)
        event = await run.host.receive(step.key, index)
        index += 1

        def until_holds() -> bool:
            if isinstance(until, bool):
                return until
            items = [read_event(e, read) for e in consumption.consumed]
            return bool(run.evaluate(until, items, variables) is True)

        if not consumption.offer(event, until_holds):
            continue
        item = read_event(event, read)
        if foreach is None:
            outputs.append(item)
        else:
            outputs.append(await _each(run, step, foreach, item, len(outputs)))
    await run.host.unlisten(step.key)
    return Outcome(outputs)


def _expectations(
    run: Run, step: Step, strategy: Mapping[str, Any], variables: Mapping[str, Any]
) -> dict[str, Any]:
    """The correlations' ``expect`` values, evaluated on the task input when it starts."""
    expected: dict[str, Any] = {}
    for spec in filters_of(strategy):
        for name, correlation in (spec.get("correlate") or {}).items():
            if "expect" in correlation:
                value = correlation["expect"]
                if isinstance(value, str) and is_expression(value):
                    value = run.evaluate(value, step.input, variables)
                expected[name] = value
    return expected


async def _each(run: Run, step: Step, foreach: Mapping[str, Any], item: Any, index: int) -> Any:
    names = {foreach.get("item", "item"): item, foreach.get("at", "index"): index}
    scope = step.scope.child(f"{step.key}/foreach[{index}]/do", f"{step.ref}/foreach/do", names)
    data: Any = item
    if foreach.get("do"):
        data = await run.run_list(foreach["do"], scope, item)
    variables = {**run.variables(step), **names}
    output = foreach.get("output") or {}
    if "as" in output:
        data = run.evaluate(output["as"], data, variables)
    export = foreach.get("export") or {}
    if "as" in export:
        run.context = run.evaluate(export["as"], data, {**variables, "output": data})
    return data
