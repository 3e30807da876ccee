"""jq, as far as a Fission Workflow can follow it: simple paths and simple comparisons.

A blueprint's expressions are jq; a Fission Workflow has JSONPath (``inputPath``,
``outputPath``, ``itemsPath``, a Choice rule's ``variable``) and typed comparisons (a Choice
rule's ``stringEquals``, ``numericEquals``, ``numericGreaterThan``, ``numericLessThan``,
``booleanEquals``, composed with ``and``, ``or`` or ``not``). This module reads the part of
jq that maps onto those, and refuses the rest with :class:`~ghapplets.exceptions.
NotExportable` saying why:

- :func:`json_path`: a path (``.a.b``, ``.a[0]``, ``.["x-y"]``, ``.``; or one rooted at a
  variable, ``$item.a``) as JSONPath (``$.a.b``);
- :func:`choice_rule`: a ``switch`` case's ``when`` made of comparisons of a path with a
  literal (``.state == "open"``, ``.count > 3``, ``.draft == false``), all joined by ``and`` or
  all by ``or``, or one ``!=`` (a ``not``), as a Choice rule (without its ``next``).

Comparisons mean the same on both sides when the value at the path has the literal's type:
jq orders values of different types (a string is greater than any number), a Choice never
matches a number comparison on a string; ``== null`` (true in jq for a missing key, false in a
Choice) and ``>=``, ``<=`` are refused rather than approximated. Nothing here evaluates jq.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ghapplets.exceptions import NotExportable

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_KEY = r'"(?:[^"\\]|\\.)*"'
_STEPS = rf"(?:\.{_IDENT}|\[(?:-?\d+|{_KEY})\])*"
_PATH = re.compile(rf"(?P<root>\${_IDENT}|\.(?:{_IDENT})?)(?P<rest>{_STEPS})")
_STEP = re.compile(rf"\.(?P<name>{_IDENT})|\[(?P<index>-?\d+)\]|\[(?P<key>{_KEY})\]")
_TOKEN = re.compile(
    rf"""\s*(?:
      (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<path>(?:\${_IDENT}|\.(?:{_IDENT})?){_STEPS})
    | (?P<op>==|!=|>=|<=|>|<)
    | (?P<string>{_KEY})
    | (?P<word>\b(?:and|or|not|true|false|null)\b)
    | (?P<paren>[()])
    )""",
    re.VERBOSE,
)


class Op(StrEnum):
    """The comparisons a Choice rule can make."""

    EQ = "=="
    NE = "!="
    GT = ">"
    LT = "<"


_FLIPPED = {Op.GT: Op.LT, Op.LT: Op.GT, Op.EQ: Op.EQ, Op.NE: Op.NE}


def unwrap(expression: str) -> str:
    """The jq inside ``${ ... }`` (fields such as ``when`` may omit it)."""
    text = expression.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
    return text


def json_path(expression: str, *, variable: str | None = None) -> str:
    """The JSONPath of the jq path ``expression`` (``${ }`` optional). Rooted at ``.`` it
    selects from the document; rooted at ``$<variable>`` (only that one) from the variable's
    value, which the caller passes as the document. Raises :class:`NotExportable`."""
    text = unwrap(expression)
    m = _PATH.fullmatch(text)
    rooted = m is not None and (
        m["root"] == f"${variable}"
        if m["root"].startswith("$")
        else m["root"] + m["rest"][:1] != ".."
    )
    if m is None or not rooted:
        allowed = "a path such as .a.b or .items[0]"
        if variable:
            allowed += f", or ${variable} and a path in it"
        raise NotExportable(f"{text!r} is not {allowed}: JSONPath cannot express it")
    out = "$"
    root, rest = m["root"], m["rest"]
    if root.startswith(".") and len(root) > 1:  # .a: the first key is part of the root
        rest = root + rest
    position = 0
    while position < len(rest):
        step = _STEP.match(rest, position)
        if step is None:
            raise NotExportable(f"{text!r}: {rest[position:]!r} is not a key or an index")
        if step["name"]:
            out += f".{step['name']}"
        elif step["index"]:
            out += f"[{int(step['index'])}]"
        else:
            key = json.loads(step["key"])
            if not isinstance(key, str) or "'" in key or "\\" in key:
                raise NotExportable(f"{text!r}: the key {step['key']} cannot be quoted in JSONPath")
            out += f"['{key}']"
        position = step.end()
    return out


@dataclass(frozen=True)
class _Comparison:
    path: str
    op: Op
    value: Any


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        m = _TOKEN.match(text, position)
        if m is None or m.end() == position or m.lastgroup is None:
            raise NotExportable(f"{text!r}: {text[position:].strip()!r} is more than a comparison")
        out.append((m.lastgroup, m[m.lastgroup]))
        position = m.end()
    return out


def _literal(kind: str, text: str) -> Any:
    if kind == "string":
        return json.loads(text)
    if kind == "number":
        return json.loads(text if not text.startswith(".") else "0" + text)
    if kind == "word" and text in ("true", "false"):
        return text == "true"
    return None


def _comparison(tokens: list[tuple[str, str]], whole: str) -> _Comparison:
    if len(tokens) != 3 or tokens[1][0] != "op":
        shown = " ".join(t for _, t in tokens)
        raise NotExportable(f"{whole!r}: {shown!r} is not a path compared with a literal")
    left, (_, op_text), right = tokens
    if op_text in (">=", "<="):
        raise NotExportable(
            f"{whole!r}: a Choice has no {op_text}; write it with > or < (they agree on numbers)"
        )
    op = Op(op_text)
    if left[0] != "path" and right[0] == "path":
        left, right, op = right, left, _FLIPPED[op]
    if left[0] != "path" or right[0] not in ("string", "number", "word"):
        raise NotExportable(f"{whole!r}: each comparison must compare a path with a literal")
    if right == ("word", "null"):
        raise NotExportable(
            f"{whole!r}: jq's == null is also true for a missing key, a Choice's isNull is not"
        )
    value = _literal(*right)
    if value is None:
        raise NotExportable(f"{whole!r}: {right[1]!r} is not a literal")
    if op in (Op.GT, Op.LT) and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise NotExportable(f"{whole!r}: a Choice orders numbers only, not {right[1]}")
    return _Comparison(json_path(left[1]), op, value)


def _quantity(value: int | float) -> int | str:
    """A number as the CRD's Quantity (an integer, or a decimal string: CRDs have no floats)."""
    if isinstance(value, int):
        return value
    if not math.isfinite(value):
        raise NotExportable(f"{value!r} is not a number a Choice can compare with")
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return repr(value)


def _leaf(c: _Comparison) -> dict[str, Any]:
    leaf: dict[str, Any] = {"variable": c.path}
    value = c.value
    if c.op is Op.GT:
        leaf["numericGreaterThan"] = _quantity(value)
    elif c.op is Op.LT:
        leaf["numericLessThan"] = _quantity(value)
    elif isinstance(value, bool):
        leaf["booleanEquals"] = value
    elif isinstance(value, str):
        leaf["stringEquals"] = value
    else:
        leaf["numericEquals"] = _quantity(value)
    return leaf


def choice_rule(expression: str) -> dict[str, Any]:
    """The Choice rule (without ``next``) of the jq condition ``expression``. Raises
    :class:`NotExportable` saying what does not map."""
    whole = unwrap(expression)
    tokens = _tokens(whole)
    while tokens[:1] == [("paren", "(")] and tokens[-1:] == [("paren", ")")]:
        tokens = tokens[1:-1]
    if any(kind == "paren" for kind, _ in tokens) or ("word", "not") in tokens:
        raise NotExportable(f"{whole!r}: parentheses and not are more than a Choice rule holds")
    parts: list[list[tuple[str, str]]] = [[]]
    joins: set[str] = set()
    for token in tokens:
        if token in (("word", "and"), ("word", "or")):
            joins.add(token[1])
            parts.append([])
        else:
            parts[-1].append(token)
    if len(joins) > 1:
        raise NotExportable(f"{whole!r} mixes and with or: a Choice rule joins with one of them")
    comparisons = [_comparison(part, whole) for part in parts]
    if len(comparisons) == 1:
        (only,) = comparisons
        if only.op is Op.NE:
            return {"not": _leaf(_Comparison(only.path, Op.EQ, only.value))}
        return _leaf(only)
    if any(c.op is Op.NE for c in comparisons):
        raise NotExportable(f"{whole!r}: a != inside and/or would need a nested not")
    return {joins.pop(): [_leaf(c) for c in comparisons]}
