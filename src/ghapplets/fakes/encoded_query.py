"""The subset of ServiceNow encoded queries (``sysparm_query``) the ServiceNow fake understands
(sans-I/O): parse, match records, order them.

A query is conditions joined by ``^`` (AND); a condition starting with ``OR`` is ORed with the
one before it (``state=1^ORstate=2``), ``^NQ`` starts another query ORed with the first, and
``ORDERBY<field>`` / ``ORDERBYDESC<field>`` order the result::

    active=true^priority<=2^short_descriptionLIKEcheckout^ORDERBYDESCsys_created_on

Operators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` (numbers compared as numbers, else as
text), ``LIKE``, ``NOT LIKE``, ``STARTSWITH``, ``ENDSWITH``, ``IN``, ``NOT IN`` (comma lists),
``ISEMPTY``, ``ISNOTEMPTY``. Text comparisons are case-insensitive, as on most instances. A
field a record does not have reads as empty (ServiceNow would drop a condition on an unknown
field; the fake has no schema to know one). A condition it cannot parse is a
:class:`QueryError`, which the fake answers 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# longest first, so "NOT LIKE" wins over "LIKE" and "<=" over "<"
OPERATORS = (
    "ISNOTEMPTY", "ISEMPTY", "STARTSWITH", "ENDSWITH", "NOT LIKE", "NOT IN", "LIKE", "IN",
    "!=", "<=", ">=", "=", "<", ">",
)  # fmt: skip
_FIELD = re.compile(r"[a-z0-9_][a-z0-9_.]*")


class QueryError(ValueError):
    """An encoded query the fake cannot read."""


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: str

    def matches(self, record: Mapping[str, str]) -> bool:
        have = record.get(self.field, "")
        if self.op == "ISEMPTY":
            return have == ""
        if self.op == "ISNOTEMPTY":
            return have != ""
        low, want = have.lower(), self.value.lower()
        if self.op == "=":
            return low == want
        if self.op == "!=":
            return low != want
        if self.op == "LIKE":
            return want in low
        if self.op == "NOT LIKE":
            return want not in low
        if self.op == "STARTSWITH":
            return low.startswith(want)
        if self.op == "ENDSWITH":
            return low.endswith(want)
        if self.op in ("IN", "NOT IN"):
            inside = low in {v.strip() for v in want.split(",")}
            return inside if self.op == "IN" else not inside
        return _compare(have, self.value, self.op)


def _compare(have: str, want: str, op: str) -> bool:
    try:
        left, right = float(have), float(want)
    except ValueError:
        return _ordered(have, want, op)
    return _ordered(left, right, op)


def _ordered(left: Any, right: Any, op: str) -> bool:
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


@dataclass(frozen=True, slots=True)
class EncodedQuery:
    # OR of groups; each group an AND of terms; each term an OR of conditions
    groups: tuple[tuple[tuple[Condition, ...], ...], ...]
    order: tuple[tuple[str, bool], ...]  # (field, descending)

    def matches(self, record: Mapping[str, str]) -> bool:
        if not self.groups:
            return True
        return any(
            all(any(c.matches(record) for c in term) for term in group) for group in self.groups
        )

    def sort(self, records: list[dict[str, str]]) -> list[dict[str, str]]:
        ordered = list(records)
        for field, descending in reversed(self.order):

            def key(record: dict[str, str], name: str = field) -> tuple[int, float, str]:
                return _sort_value(record.get(name, ""))

            ordered.sort(key=key, reverse=descending)
        return ordered


def _sort_value(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value.lower())


def parse_condition(text: str) -> Condition:
    match = _FIELD.match(text)
    if match is None:
        raise QueryError(f"cannot read the condition {text!r}")
    field, rest = match.group(), text[match.end() :]
    for op in OPERATORS:
        if rest.startswith(op):
            value = rest[len(op) :]
            if op in ("ISEMPTY", "ISNOTEMPTY") and value:
                raise QueryError(f"{op} takes no value: {text!r}")
            return Condition(field, op, value)
    raise QueryError(f"no operator the fake knows in {text!r}")


def parse_query(text: str) -> EncodedQuery:
    """``sysparm_query`` parsed, or :class:`QueryError`."""
    groups: list[tuple[tuple[Condition, ...], ...]] = []
    order: list[tuple[str, bool]] = []
    for raw_group in text.split("^NQ") if text else []:
        terms: list[list[Condition]] = []
        for part in raw_group.split("^"):
            if not part or part == "EQ":
                continue
            if part.startswith("ORDERBYDESC"):
                order.append((part[len("ORDERBYDESC") :], True))
            elif part.startswith("ORDERBY"):
                order.append((part[len("ORDERBY") :], False))
            elif part.startswith("OR"):  # field names are lower-case: this is an OR
                if not terms:
                    raise QueryError(f"{part!r} has no condition before it to OR with")
                terms[-1].append(parse_condition(part[2:]))
            else:
                terms.append([parse_condition(part)])
        if terms:
            groups.append(tuple(tuple(t) for t in terms))
    return EncodedQuery(tuple(groups), tuple(order))
