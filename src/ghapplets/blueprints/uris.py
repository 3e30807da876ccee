"""The DSL's URI templates (the reference's "URI Template"): RFC 6570 simple string expansion.

An endpoint such as ``https://petstore.example/v2/pet/{petId}`` is expanded with the task's
input: ``{petId}`` is replaced by the input's top-level property ``petId``, percent-encoded as
RFC 6570 simple string expansion does (the ``uritemplate`` package does the RFC's work). Only
that expansion is supported, as the reference says:

- a name is taken verbatim as a top-level property: ``{pet.id}`` is the property named
  ``pet.id``, not ``id`` inside ``pet``; runtime expression arguments (``$context``...) are not
  available;
- the RFC's simple-expansion forms are accepted (``{a,b}``, ``{name:3}``), no operator
  (``{+path}``, ``{?query}``, ``{/segments}``...): those are refused rather than left literal;
- a missing property, or one that is null (RFC 6570's undefined value), expands to nothing;
  strings, numbers and booleans (``true``/``false``) expand to their text; an array or an object
  is an expression error (status 400), as the reference says.

A value cannot change the URI's structure: every reserved character (``/``, ``?``, ``#``,
``&``, ``=``...) of a value is percent-encoded, and an expansion that is exactly ``.`` or ``..``
in the path (a dot-segment, which HTTP clients resolve, e.g. ``/pets/..`` to ``/``) is refused.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from uritemplate import URITemplate

from ghapplets.blueprints.errors import ErrorKind, raise_error

__all__ = ["check_uri_template", "expand_uri", "is_uri_template"]

_EXPRESSION = re.compile(r"\{([^{}]*)\}")
_OPERATORS = frozenset("+#./;?&=,!@|")
# RFC 6570 varspec: varname (varchars, dots between them), then a prefix (":" 1-9999) or "*"
_VARSPEC = re.compile(
    r"(?P<name>(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+(?:\.(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+)*)"
    r"(?::[1-9][0-9]{0,3}|\*)?"
)


def is_uri_template(text: object) -> bool:
    """Whether ``text`` is a string with template expressions (``{...}``) to expand, as opposed
    to a literal URI (or a runtime expression, ``${ ... }``, which is not a URI template)."""
    if not isinstance(text, str):
        return False
    stripped = text.strip()
    if stripped.startswith("${") and stripped.endswith("}"):
        return False
    return _EXPRESSION.search(text) is not None


def check_uri_template(template: str) -> tuple[str, ...]:
    """The property names ``template`` expands, in order; a ValueError saying what is wrong
    when it is not a template this runtime expands (for a blueprint's checks at load time)."""
    return _parse(_string(template))[1]


def expand_uri(template: str, data: Any) -> str:
    """``template`` with each ``{name}`` replaced by the top-level property ``name`` of
    ``data``, percent-encoded (RFC 6570 simple string expansion). A template this runtime does
    not expand, a value that is an array or object, or an expansion that would be a
    dot-segment raises a :class:`BlueprintError` of kind expression (status 400)."""
    try:
        parts, _ = _parse(_string(template))
    except ValueError as exc:
        raise raise_error(ErrorKind.EXPRESSION, str(exc)) from exc
    values = data if isinstance(data, Mapping) else {}
    out: list[str] = []
    in_path = True
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            in_path = in_path and "?" not in part and "#" not in part
            continue
        variables: dict[str, Any] = {
            name: _text(template, name, values[name])
            for name in part.variable_names
            if values.get(name) is not None
        }
        expanded = part.expand(variables)
        if in_path and expanded in (".", ".."):
            raise raise_error(
                ErrorKind.EXPRESSION,
                f"the URI template {template!r} would expand {part.uri} to {expanded!r}, "
                "a dot-segment that changes the path",
            )
        out.append(expanded)
    return "".join(out)


@functools.lru_cache(maxsize=512)
def _parse(template: str) -> tuple[tuple[str | URITemplate, ...], tuple[str, ...]]:
    """The template cut into literal text and one :class:`URITemplate` per expression."""
    parts: list[str | URITemplate] = []
    names: list[str] = []
    position = 0
    for match in _EXPRESSION.finditer(template):
        parts.append(_literal(template, template[position : match.start()]))
        body = match[1]
        if not body:
            raise ValueError(f"the URI template {template!r} has an empty expression '{{}}'")
        if body[0] in _OPERATORS:
            raise ValueError(
                f"the URI template {template!r} uses the operator {body[0]!r} in {match[0]!r}: "
                "only simple string expansion ({name}) is supported"
            )
        for spec in body.split(","):
            varspec = _VARSPEC.fullmatch(spec)
            if varspec is None:
                raise ValueError(
                    f"the URI template {template!r} has {spec!r} in {match[0]!r}, which is not "
                    "a variable name (letters, digits, '_', '.' between them)"
                )
            names.append(varspec["name"])
        parts.append(URITemplate(match[0]))
        position = match.end()
    parts.append(_literal(template, template[position:]))
    return tuple(part for part in parts if part != ""), tuple(dict.fromkeys(names))


def _string(template: Any) -> str:
    if not isinstance(template, str):
        raise ValueError(f"a URI template is a string, not {template!r}")
    return template


def _literal(template: str, text: str) -> str:
    if "{" in text or "}" in text:
        raise ValueError(f"the URI template {template!r} has an unmatched brace")
    return text


def _text(template: str, name: str, value: Any) -> str:
    """A value as the text it expands to: a string as is, a boolean or number as JSON writes
    it (an integral float without its ``.0``); any other type is an expression error."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else json.dumps(value)
    kind = (
        "an object"
        if isinstance(value, Mapping)
        else "an array"
        if isinstance(value, list | tuple)
        else f"a {type(value).__name__}"
    )
    raise raise_error(
        ErrorKind.EXPRESSION,
        f"the URI template {template!r} expands {{{name}}}, which is {kind}: "
        "only a string, number, boolean or null can be put in a URI",
    )
