"""The action catalog: each action a name, a JSON Schema for its input, and what it does.

A vendor module declares its actions with :func:`action`; ``ghapplets actions`` lists them and
:meth:`ghapplets.connectors.registry.Connectors.act` runs them. Every action's input may name
the ``connector`` to use (for a project with two of a kind); the schema is checked with
``jsonschema`` before any call, so bad input is refused without touching the vendor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from ghapplets.connectors.config import ConnectorKind
from ghapplets.exceptions import ActionInputInvalid

# what every action's input may carry besides its own fields
CONNECTOR_FIELD = {"type": "string", "description": "the connector to use, by name"}


@dataclass(frozen=True)
class Action:
    """One catalog entry. ``run(connector, input)`` returns the vendor's JSON."""

    name: str
    kind: ConnectorKind
    summary: str
    schema: dict[str, Any]
    output: str  # what the output is, in words (the vendor's JSON, documented per action)
    run: Callable[[Any, dict[str, Any]], Awaitable[Any]]

    def check(self, data: Any) -> dict[str, Any]:
        """``data`` if it fits the input schema, else :class:`ActionInputInvalid` naming the
        first problem and where it is."""
        validator = jsonschema.Draft202012Validator(self.schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "input"
            raise ActionInputInvalid(f"{self.name}: {where}: {error.message}")
        assert isinstance(data, dict)  # the schema's type is object
        return data


CATALOG: dict[str, Action] = {}


def action(
    name: str,
    kind: ConnectorKind,
    summary: str,
    properties: dict[str, Any],
    *,
    output: str,
    required: tuple[str, ...] = (),
) -> Callable[[Callable[[Any, dict[str, Any]], Awaitable[Any]]], Action]:
    """Register the decorated coroutine as the action ``name`` with these input properties."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": name,
        "type": "object",
        "properties": {**properties, "connector": CONNECTOR_FIELD},
        "required": list(required),
        "additionalProperties": False,
    }
    jsonschema.Draft202012Validator.check_schema(schema)

    def register(run: Callable[[Any, dict[str, Any]], Awaitable[Any]]) -> Action:
        if name in CATALOG:
            raise ValueError(f"action {name} is declared twice")
        CATALOG[name] = Action(name, kind, summary, schema, output, run)
        return CATALOG[name]

    return register


def lookup(name: str) -> Action:
    """The action called ``name``, or :class:`ActionInputInvalid` listing the known ones."""
    from ghapplets.connectors import vendors  # noqa: F401 - the vendor modules register theirs

    found = CATALOG.get(name)
    if found is None:
        known = ", ".join(sorted(CATALOG))
        raise ActionInputInvalid(f"no action named {name!r}; the catalog has: {known}")
    return found


def catalog() -> list[Action]:
    """Every action, by name."""
    from ghapplets.connectors import vendors  # noqa: F401

    return [CATALOG[name] for name in sorted(CATALOG)]
