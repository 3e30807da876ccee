"""The subset of JQL the Jira fake understands (sans-I/O): parse, then match issues.

A query is clauses joined by ``AND``, then an optional ``ORDER BY``::

    project = PROJ AND status != Done AND labels in (ci, "needs review") ORDER BY key DESC

* fields: ``project``, ``key`` (``issuekey``), ``status``, ``issuetype`` (``type``),
  ``labels``, ``summary``, ``text`` (summary and description); ``ORDER BY`` also takes
  ``created`` and ``updated``;
* operators: ``=``, ``!=``, ``in (...)``, ``not in (...)``, ``is EMPTY``, ``is not EMPTY``
  (also ``NULL``), and ``~`` / ``!~`` (contains, case-insensitive) on ``summary`` and
  ``text``;
* values: bare words, numbers, or ``"double"`` / ``'single'`` quoted strings; comparisons are
  case-insensitive.

``OR``, ``NOT`` before a clause, parentheses around clauses and functions (``currentUser()``)
are refused with a :class:`JqlError`, which the fake answers 400 like an invalid query.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

FIELDS = {
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "id": "key",
    "status": "status",
    "issuetype": "issuetype",
    "type": "issuetype",
    "labels": "labels",
    "summary": "summary",
    "text": "text",
}
ORDER_FIELDS = {"key", "issuekey", "created", "updated", "summary", "status", "project"}
TEXT_FIELDS = {"summary", "text"}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|!~|=|~|,|\(|\))
      | (?P<word>[A-Za-z0-9_.\-]+)
    )""",
    re.VERBOSE,
)


class JqlError(ValueError):
    """The query is not valid (in the fake's subset); ``str()`` is the message Jira-style."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "string", "op" or "word"
    text: str

    def keyword(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


@dataclass(frozen=True, slots=True)
class Clause:
    field: str  # canonical: see FIELDS
    op: str  # "=", "!=", "in", "not in", "~", "!~", "empty", "not empty"
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Jql:
    clauses: tuple[Clause, ...]
    order: tuple[tuple[str, bool], ...]  # (field, descending)

    def matches(self, values_of: Callable[[str], list[str]]) -> bool:
        """Whether an issue matches; ``values_of(field)`` gives its values for a field."""
        return all(_match(c, values_of(c.field)) for c in self.clauses)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            char = text[pos:].lstrip()[:1]
            raise JqlError(
                f"Error in the JQL Query: The character '{char}' is a reserved JQL character. "
                f"You must enclose it in a string. (line 1, character {pos + 1})"
            )
        kind = match.lastgroup or "word"
        raw = match.group(kind)
        if kind == "string":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        tokens.append(Token(kind, raw))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise JqlError(f"Error in the JQL Query: Expecting {what} but reached the end.")
        self.pos += 1
        return token

    def value(self) -> str:
        token = self.take("a value")
        if token.kind == "op":
            raise JqlError(f"Error in the JQL Query: Expecting a value but got '{token.text}'.")
        if self.peek() is not None and self.peek() == Token("op", "("):
            raise JqlError(
                f"Error in the JQL Query: the function '{token.text}' is not supported by the "
                "Jira fake."
            )
        return token.text

    def clause(self) -> Clause:
        token = self.take("a field")
        if token.keyword("NOT") or token == Token("op", "("):
            raise JqlError(
                "Error in the JQL Query: NOT and parentheses are not supported by the Jira fake."
            )
        if token.kind == "op":
            raise JqlError(f"Error in the JQL Query: Expecting a field but got '{token.text}'.")
        field = FIELDS.get(token.text.lower())
        if field is None:
            raise JqlError(
                f"Field '{token.text}' does not exist or you do not have permission to view it."
            )
        op = self.take("an operator")
        if op.kind == "op" and op.text in ("=", "!=", "~", "!~"):
            if op.text in ("~", "!~") and field not in TEXT_FIELDS:
                raise JqlError(
                    f"The operator '{op.text}' is not supported by the '{token.text}' field."
                )
            return Clause(field, op.text, (self.value(),))
        if op.keyword("IN") or op.keyword("NOT"):
            negated = op.keyword("NOT")
            if negated and not self.take("IN").keyword("IN"):
                raise JqlError("Error in the JQL Query: Expecting 'IN' after 'NOT'.")
            return Clause(field, "not in" if negated else "in", self.values())
        if op.keyword("IS"):
            nxt = self.take("EMPTY")
            negated = nxt.keyword("NOT")
            if negated:
                nxt = self.take("EMPTY")
            if not nxt.keyword("EMPTY", "NULL"):
                raise JqlError("Error in the JQL Query: Expecting EMPTY or NULL after IS.")
            return Clause(field, "not empty" if negated else "empty", ())
        raise JqlError(f"Error in the JQL Query: Expecting an operator but got '{op.text}'.")

    def values(self) -> tuple[str, ...]:
        if self.take("'('") != Token("op", "("):
            raise JqlError("Error in the JQL Query: Expecting '(' after IN.")
        found = [self.value()]
        while True:
            token = self.take("')'")
            if token == Token("op", ")"):
                return tuple(found)
            if token != Token("op", ","):
                raise JqlError(
                    f"Error in the JQL Query: Expecting ',' or ')' but got '{token.text}'."
                )
            found.append(self.value())

    def order(self) -> tuple[tuple[str, bool], ...]:
        if not self.take("BY").keyword("BY"):
            raise JqlError("Error in the JQL Query: Expecting 'BY' after 'ORDER'.")
        found: list[tuple[str, bool]] = []
        while True:
            token = self.take("a field")
            name = token.text.lower()
            if name not in ORDER_FIELDS:
                raise JqlError(f"Not able to sort using field '{token.text}'.")
            descending = False
            nxt = self.peek()
            if nxt is not None and nxt.keyword("ASC", "DESC"):
                descending = nxt.keyword("DESC")
                self.pos += 1
            found.append(("key" if name == "issuekey" else name, descending))
            nxt = self.peek()
            if nxt is None:
                return tuple(found)
            if nxt != Token("op", ","):
                raise JqlError(f"Error in the JQL Query: Expecting ',' but got '{nxt.text}'.")
            self.pos += 1


def parse_jql(text: str) -> Jql:
    """The query ``text`` parsed, or :class:`JqlError`."""
    parser = _Parser(tokenize(text))
    clauses: list[Clause] = []
    order: tuple[tuple[str, bool], ...] = ()
    while parser.peek() is not None:
        token = parser.peek()
        assert token is not None
        if token.keyword("ORDER"):
            parser.pos += 1
            order = parser.order()
            break
        if clauses:
            joiner = parser.take("AND")
            if joiner.keyword("OR"):
                raise JqlError("Error in the JQL Query: OR is not supported by the Jira fake.")
            if not joiner.keyword("AND"):
                raise JqlError(
                    f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got "
                    f"'{joiner.text}'."
                )
        clauses.append(parser.clause())
    return Jql(tuple(clauses), order)


def _match(clause: Clause, have: list[str]) -> bool:
    values = [v.lower() for v in have]
    wanted = [v.lower() for v in clause.values]
    if clause.op == "=":
        return wanted[0] in values
    if clause.op == "!=":
        return bool(values) and wanted[0] not in values
    if clause.op == "in":
        return any(w in values for w in wanted)
    if clause.op == "not in":
        return bool(values) and not any(w in values for w in wanted)
    if clause.op == "~":
        return any(wanted[0] in v for v in values)
    if clause.op == "!~":
        return not any(wanted[0] in v for v in values)
    if clause.op == "empty":
        return not values
    return bool(values)  # not empty
