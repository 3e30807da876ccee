"""Runtime expressions: jq programs compiled once, their arguments bound per evaluation.

The DSL's runtime expressions are jq (see the DSL's "Runtime Expressions"); this module owns
how they are recognised, compiled and evaluated. Never Python's ``eval``: jq only, through jq.py.

- :func:`is_expression` (strict mode: ``${ ... }``) and :func:`expression_body`;
- :class:`Expression`: one jq program. :meth:`Expression.compile` checks it against the
  variable names a site provides (``context``, ``input``, ``task``...), raising
  :class:`~ghapplets.exceptions.ExpressionInvalid`; :meth:`Expression.evaluate` runs it on the
  data with each variable bound as ``$name``;
- :class:`Template`: a JSON-like value with expressions inside (a call's ``with``, a ``set``),
  all evaluated in one jq run.

**Compiled once.** An expression is compiled once per distinct set of variable names (a site
always provides the same names, so in practice once) into a wrapper program that takes one JSON
array, the values of the variables the body names, then the data (for a body naming ``$context``
and ``$input``)::

    <prelude> . as [$context, $input] | .[2] | [(BODY\n\n)] | <collect>

so binding the arguments costs no compilation: an evaluation is the JSON encoding of the
arguments (orjson), jq's parse of it, the run, and jq.py's conversion of the result; a variable
the body does not name (a large ``$context``) is not encoded at all. Before it is
wrapped, BODY is compiled *alone*, with only the site's names declared: so it is a complete jq
program (a ``)``, ``|`` or ``as`` in it cannot reach outside its parentheses, a ``#`` comment
ends at the newlines after it), and it can name no variable but the site's (the wrapper has no
hidden variable to see: the data is ``.[n]``, not a name). ``import``/``include`` are refused
(they would read jq modules from disk).

The prelude takes away what a blueprint must not reach or rely on: ``$ENV`` and ``env`` are
``{}`` (the worker's environment holds its own secrets); ``input`` (a runtime expression has one
input) and ``halt``/``halt_error`` (which jq.py would turn into a silent empty result) are
errors.

**Results.** A jq program yields zero, one or several outputs; an expression evaluates to:

- its output, when it yields exactly one;
- ``None`` (null), when it yields none (``empty``, a ``select`` that drops everything);
- the list of its outputs in order, when it yields several (``.items[] | .name``).

This is what the Java SDK (serverlessworkflow/sdk-java, ``impl/jq`` ``JQExpression``: its
``JsonNodeOutput`` keeps the one output, makes an array of several, and leaves null for none)
does. The Go SDK (serverlessworkflow/sdk-go, ``impl/expr`` ``evaluateJQExpression``) keeps the
first output only and fails on none; we follow the Java SDK, which loses no output and does
not fault a workflow for an empty ``select``. Wrap the body in ``[...]`` for a list whatever the
count. A failure (a jq runtime error, ``error(...)``) raises a
:class:`~ghapplets.exceptions.BlueprintError` of kind expression (status 400), its detail naming
the expression, as the DSL requires; the engine sets its ``instance``.

**Values.** Results are plain JSON values: dict, list, str, int, float, bool, None. jq numbers
are doubles: an integral result comes back as an ``int`` (``2``, not ``2.0``; exact up to
2**53), NaN as None, an infinity as the largest float.

**Limits.** An expression's text is at most :data:`MAX_EXPRESSION_LENGTH` characters; data
nested deeper than Python's recursion limit is refused; a regular expression that backtracks
without end is stopped by jq's regex engine (an expression error). Not bounded: the CPU time
and memory of a run (``[range(1e9)]``, ``last(range(1e15))``, ``[repeat(.)]`` run until the
worker is stopped or out of memory: jq cannot be interrupted from Python), the number and size
of outputs, and the depth of a value a program builds (jq.py's conversion recurses in C: a value
nested some 100,000 deep, which only a program written to build one makes, crashes the worker).
The expressions come from the blueprint's authors, who are trusted with a run's CPU and memory
as an applet's code is; the data, which may come from outside, is bounded by what accepts it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jq
import orjson

from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.exceptions import BlueprintError, ExpressionInvalid

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "Expression",
    "Template",
    "expression_body",
    "is_expression",
]

MAX_EXPRESSION_LENGTH = 65_536
"""The longest jq program an expression may have, in characters."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_RESERVED_NAMES = frozenset({"__loc__"})  # a jq token, not a variable
# A module directive can only open a program (after blanks and comments).
_MODULE_DIRECTIVE = re.compile(r"(?:\s|#[^\n]*)*(?:import|include|module)(?![A-Za-z0-9_])")

_PRELUDE = (
    "def env: {}; "
    'def input: error("input: a runtime expression has a single input"); '
    'def halt: error("halt: the expression stopped without a result"); '
    "def halt_error: error; "
    "def halt_error($code): error; "
    "{} as $ENV | "
)
# One output as itself, none as null, several as their list (see the module docstring).
_COLLECT = "if length == 1 then .[0] elif length == 0 then null else . end"
_DETAIL_CHARS = 200


def is_expression(value: object) -> bool:
    """Whether ``value`` is a runtime expression in strict mode: a string whose text, without
    surrounding whitespace, starts with ``${`` and ends with ``}`` (``${}`` is one, which does
    not compile)."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text.startswith("${") and text.endswith("}")


def expression_body(text: str) -> str:
    """The jq program of an expression: what is inside ``${ }``, or the text itself for a field
    that is always an expression (``output.as: $input + .``), without surrounding whitespace."""
    stripped = text.strip()
    if is_expression(stripped):
        return stripped[2:-1].strip()
    return stripped


def _names(variables: Iterable[str]) -> tuple[str, ...]:
    """The variable names, checked and sorted (the order the values are passed in)."""
    if isinstance(variables, str):
        raise ExpressionInvalid(f"variable names are a collection of names, not {variables!r}")
    names = tuple(sorted(set(variables)))
    for name in names:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in _RESERVED_NAMES:
            raise ExpressionInvalid(
                f"{name!r} cannot be a variable of a runtime expression "
                "(a letter or '_', then letters, digits or '_')"
            )
    return names


def _used(names: tuple[str, ...], bodies: list[str]) -> tuple[str, ...]:
    """The names the bodies mention as ``$name``: only their values are encoded and parsed
    for a run (an unused ``$context`` costs nothing). A name missed here could only make the
    wrapper fail to compile, never bind a wrong value: jq has no other way to name a variable."""
    return tuple(
        name
        for name in names
        if any(re.search(rf"\${name}(?![A-Za-z0-9_])", body) for body in bodies)
    )


def _wrap(names: tuple[str, ...], bodies: Iterable[str], *, single: bool) -> str:
    """The program that binds ``names`` from the input array and evaluates each body on the
    data after them, each body's outputs collected (one body: its value; several: a list)."""
    binding = f". as [{', '.join('$' + name for name in names)}] | " if names else ""
    slots = [f"([({body}\n\n)] | {_COLLECT})" for body in bodies]
    result = slots[0] if single else f"[{', '.join(slots)}]"
    return f"{_PRELUDE}{binding}.[{len(names)}] | {result}"


def _jq_compile(program: str, expression: str, names: Iterable[str] = ()) -> Any:
    try:
        return jq.compile(program, args=dict.fromkeys(names))
    except ValueError as exc:
        raise ExpressionInvalid(str(exc), expression=expression) from exc


def _encode(values: list[Any]) -> str:
    """The arguments as JSON text for jq: orjson, or the standard library for what orjson does
    not take (integers past 64 bits, non-string keys, nesting past 255)."""
    try:
        return orjson.dumps(values).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        pass
    try:
        return json.dumps(values, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise raise_error(
            ErrorKind.EXPRESSION, f"the data of a runtime expression is not JSON: {exc}"
        ) from exc


def _shown(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _DETAIL_CHARS else flat[: _DETAIL_CHARS - 1] + "…"


class Expression:
    """One runtime expression: a jq program, compiled once per set of variable names."""

    __slots__ = ("_checked", "_programs", "body", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise ExpressionInvalid(f"a runtime expression is a string, not {text!r}")
        self.text = text
        self.body = expression_body(text)
        self._checked: set[tuple[str, ...]] = set()
        self._programs: dict[frozenset[str], tuple[tuple[str, ...], Any]] = {}

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def __str__(self) -> str:
        return f"${{ {self.body} }}"

    def check(self, variables: Iterable[str]) -> None:
        """Compile the body alone with ``variables`` declared: raises
        :class:`ExpressionInvalid` (jq's message) unless it is a complete jq program that names
        no other variable. Done once per set of names; :meth:`compile` does it too."""
        names = _names(variables)
        if names in self._checked:
            return
        if len(self.body) > MAX_EXPRESSION_LENGTH:
            raise ExpressionInvalid(
                f"the expression is {len(self.body)} characters long, "
                f"longer than the {MAX_EXPRESSION_LENGTH} allowed",
                expression=self.text,
            )
        if _MODULE_DIRECTIVE.match(self.body):
            raise ExpressionInvalid(
                "a runtime expression cannot import or include jq modules", expression=self.text
            )
        _jq_compile(self.body, self.text, names)
        self._checked.add(names)

    def compile(self, variables: Iterable[str]) -> None:
        """Compile the expression for a site that provides ``variables`` (names without ``$``):
        raises :class:`ExpressionInvalid` when it does not compile (a syntax error, a variable
        not among them). Compiles once per distinct set of names; later calls cost nothing."""
        self._program(variables)

    def _program(self, variables: Iterable[str]) -> tuple[tuple[str, ...], Any]:
        names = _names(variables)
        key = frozenset(names)
        program = self._programs.get(key)
        if program is None:
            self.check(names)
            used = _used(names, [self.body])
            compiled = _jq_compile(_wrap(used, [self.body], single=True), self.text)
            program = self._programs[key] = (used, compiled)
        return program

    def evaluate(self, data: Any, variables: Mapping[str, Any]) -> Any:
        """The expression's value on ``data`` (jq's ``.``) with each of ``variables`` bound as
        ``$name``: its one output, None for none, the list of several (see the module).

        Raises :class:`BlueprintError` of kind expression (status 400) when it fails: a jq
        error, an expression that does not compile with these variables, data that is not
        JSON."""
        program = self._programs.get(frozenset(variables))
        if program is None:
            try:
                program = self._program(variables)
            except ExpressionInvalid as exc:
                raise self._failure(exc) from exc
        names, compiled = program
        text = _encode([*(variables[name] for name in names), data])
        try:
            return compiled.input_text(text).first()
        except ValueError as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: Exception) -> BlueprintError:
        return raise_error(
            ErrorKind.EXPRESSION, f"the expression {_shown(str(self))} failed: {exc}"
        )


# A template's compiled shape: a constant, an expression's slot, a list or an object of shapes.
_Shape = tuple[str, Any]


class Template:
    """A JSON-like value with runtime expressions inside, compiled once: each string that is an
    expression (strict mode) is evaluated, everything else (dict keys included) is literal.

    :meth:`evaluate` runs every expression in one jq run (the data is encoded and parsed once,
    whatever the number of expressions) and returns a new value: the template is never
    changed, its objects and arrays are new in each result, and its constants never go through
    jq (a ``1.0`` stays a float, an integer past 2**53 stays exact).
    """

    __slots__ = ("_expressions", "_programs", "_shape", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._expressions: list[Expression] = []
        self._shape = self._build(value)
        self._programs: dict[frozenset[str], tuple[tuple[str, ...], Any]] = {}

    def __repr__(self) -> str:
        return f"Template({self.value!r})"

    def _build(self, value: Any) -> _Shape:
        if is_expression(value):
            self._expressions.append(Expression(value))
            return ("slot", len(self._expressions) - 1)
        if isinstance(value, dict):
            items = []
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"a template's keys are strings, not {key!r}")
                items.append((key, self._build(item)))
            return ("object", items)
        if isinstance(value, list | tuple):
            return ("array", [self._build(item) for item in value])
        if value is None or isinstance(value, str | int | float):
            return ("constant", value)
        raise TypeError(f"a template holds JSON values, not {value!r}")

    def expressions(self) -> Iterator[Expression]:
        """The expressions inside, in document order (for a blueprint's checks)."""
        return iter(self._expressions)

    @property
    def is_constant(self) -> bool:
        """Whether the template has no expression (it evaluates to a copy of itself)."""
        return not self._expressions

    def compile(self, variables: Iterable[str]) -> None:
        """Compile every expression for a site that provides ``variables``: raises
        :class:`ExpressionInvalid` for the first that does not compile."""
        self._program(variables)

    def _program(self, variables: Iterable[str]) -> tuple[tuple[str, ...], Any]:
        names = _names(variables)
        key = frozenset(names)
        program = self._programs.get(key)
        if program is None:
            for expression in self._expressions:
                expression.check(names)
            bodies = [expression.body for expression in self._expressions]
            used = _used(names, bodies)
            compiled = _jq_compile(_wrap(used, bodies, single=False), "a template")
            program = self._programs[key] = (used, compiled)
        return program

    def evaluate(self, data: Any, variables: Mapping[str, Any]) -> Any:
        """The template with each expression replaced by its value on ``data`` with
        ``variables`` bound (as :meth:`Expression.evaluate`); a new structure. Raises
        :class:`BlueprintError` of kind expression naming the expression that failed."""
        if not self._expressions:
            return _assemble(self._shape, [])
        program = self._programs.get(frozenset(variables))
        if program is None:
            try:
                program = self._program(variables)
            except ExpressionInvalid as exc:
                self._blame(data, variables)
                raise raise_error(
                    ErrorKind.EXPRESSION, f"the template's expressions do not compile: {exc}"
                ) from exc
        names, compiled = program
        text = _encode([*(variables[name] for name in names), data])
        try:
            results = compiled.input_text(text).first()
        except ValueError as exc:
            self._blame(data, variables)
            raise raise_error(
                ErrorKind.EXPRESSION, f"an expression of the template failed: {exc}"
            ) from exc
        return _assemble(self._shape, results)

    def _blame(self, data: Any, variables: Mapping[str, Any]) -> None:
        """Evaluate the expressions one by one, so the error raised names the one that fails
        (the error path only: one jq run each)."""
        for expression in self._expressions:
            expression.evaluate(data, variables)


def _assemble(shape: _Shape, results: list[Any]) -> Any:
    kind, content = shape
    if kind == "slot":
        return results[content]
    if kind == "object":
        return {key: _assemble(item, results) for key, item in content}
    if kind == "array":
        return [_assemble(item, results) for item in content]
    return content  # a str, number, bool or None: immutable
