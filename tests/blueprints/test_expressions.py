"""Runtime expressions: jq compiled once, arguments bound per evaluation, hostile bodies kept in."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jq
import pytest

from ghapplets.blueprints import expressions
from ghapplets.blueprints.expressions import (
    MAX_EXPRESSION_LENGTH,
    Expression,
    Template,
    expression_body,
    is_expression,
)
from ghapplets.exceptions import BlueprintError, ExpressionInvalid, GhappletsError

EXPRESSION_TYPE = "https://serverlessworkflow.io/spec/1.0.0/errors/expression"
NAMES = ("context", "input", "output", "secrets", "task", "workflow", "runtime")


def run(text: str, data: Any = None, **variables: Any) -> Any:
    return Expression(text).evaluate(data, variables)


def failure(text: str, data: Any = None, **variables: Any) -> BlueprintError:
    with pytest.raises(BlueprintError) as caught:
        Expression(text).evaluate(data, variables)
    error = caught.value
    assert (error.type, error.status, error.title) == (EXPRESSION_TYPE, 400, "Expression Error")
    return error


def invalid(text: str, names: Any = ()) -> ExpressionInvalid:
    with pytest.raises(ExpressionInvalid) as caught:
        Expression(text).compile(names)
    return caught.value


# -- recognising expressions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${ .a }", True),
        ("${.a}", True),
        ("  ${ .a }\n", True),
        ("${ {a: 1} }", True),
        ("${}", True),  # an expression, which does not compile
        ("${ . } ${ . }", True),  # likewise
        (".a", False),
        ("$input + .", False),  # an expression only in a field that always is one
        ("Hello ${ .name }!", False),
        ("${ .a } and more", False),
        ("$ { .a }", False),
        ("${ .a", False),
        ("{ .a }", False),
        ("", False),
        (None, False),
        (5, False),
        (["${ .a }"], False),
        ({"${ .a }": 1}, False),
    ],
)
def test_is_expression(value: Any, expected: bool) -> None:
    assert is_expression(value) is expected


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("${ .a }", ".a"),
        ("  ${   .a | length   }  ", ".a | length"),
        ("${ {a: 1} }", "{a: 1}"),
        ('${ "}" }', '"}"'),
        ("$input + { availablePets: [] }", "$input + { availablePets: [] }"),
        ("  $context + .  ", "$context + ."),
        ("${}", ""),
    ],
)
def test_expression_body(text: str, body: str) -> None:
    assert expression_body(text) == body
    assert Expression(text).body == body
    assert Expression(text).text == text


def test_an_expression_shows_its_text() -> None:
    expression = Expression("  ${ .a }")
    assert str(expression) == "${ .a }"
    assert repr(expression) == "Expression('  ${ .a }')"
    assert str(Expression("$context + .")) == "${ $context + . }"


# -- the reference's examples ----------------------------------------------------------------

PETS = [
    {"name": "rex", "category": {"name": "dog"}, "tags": [{"breed": "lab"}]},
    {"name": "tom", "category": {"name": "cat"}, "tags": [{"breed": "lab"}]},
    {"name": "max", "category": {"name": "dog"}, "tags": [{"breed": "pug"}]},
]


def test_output_as_with_input_and_a_select() -> None:
    text = (
        '$input + { availablePets: [.[] | select(.category.name == "dog" and '
        "(.tags[] | .breed == $input.order.breed))] }"
    )
    order = {"order": {"breed": "lab", "client": "ann"}}
    assert run(text, PETS, input=order) == {
        "order": {"breed": "lab", "client": "ann"},
        "availablePets": [PETS[0]],
    }


def test_export_as_merges_into_the_context() -> None:
    assert run("$context+.", {"b": 2}, context={"a": 1, "b": 1}) == {"a": 1, "b": 2}
    assert run("$context + { error: $error }", None, context={"a": 1}, error={"status": 500}) == {
        "a": 1,
        "error": {"status": 500},
    }


def test_string_interpolation_of_the_task_descriptor() -> None:
    task = {"name": "getPet", "reference": "/do/0/getPet"}
    text = "${ \"Executing task '\\($task.reference)'...\" }"
    assert run(text, {}, task=task) == "Executing task '/do/0/getPet'..."


def test_the_references_other_examples() -> None:
    data = {
        "order": {"client": {"email": "ann@example.com", "preferredDisplayName": "Ann"}},
        "pets": [{"name": "rex"}, {"name": "max"}],
    }
    assert run("${ .order.client.email }", data) == "ann@example.com"
    assert run('${ .pets | map("-\\(.name)") | join("\\n") }', data) == "-rex\n-max"
    workflow = {"input": {"chat": {"roomId": "r1"}}}
    assert run("${ . == $workflow.input.chat.roomId }", "r1", workflow=workflow) is True
    assert run("${ . == $workflow.input.chat.roomId }", "r2", workflow=workflow) is False
    context = {"messages": [1, 2, 3, 4, 5]}
    assert run("${ ($context.messages | length) == 5 }", None, context=context) is True
    assert run("$context.error == null", None, context={}) is True
    assert run("${ .temperature > 38 }", {"temperature": 39.5}) is True


# -- results ---------------------------------------------------------------------------------


def test_one_output_is_the_value() -> None:
    assert run("${ .a }", {"a": [1, 2]}) == [1, 2]
    assert run("${ [.[] | . * 2] }", [1, 2]) == [2, 4]


def test_no_output_is_null() -> None:
    assert run("${ empty }", {"a": 1}) is None
    assert run("${ .[] | select(. > 5) }", [1, 2]) is None
    assert run("${ inputs }") is None


def test_several_outputs_are_their_list_in_order() -> None:
    assert run("${ .[] }", [3, 1, 2]) == [3, 1, 2]
    assert run("${ .[] | select(. > 1) }", [3, 1, 2]) == [3, 2]
    assert run("${ .a, .b }", {"a": "x", "b": None}) == ["x", None]
    assert run("${ .[] | select(. > 2) }", [3, 1, 2]) == 3  # one left: the value itself


def test_null_and_false_are_outputs() -> None:
    assert run("${ null }") is None
    assert run("${ false }") is False
    assert run("${ null, null }") == [None, None]


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("${ 2 }", None, 2),
        ("${ 1.0 }", None, 1),
        ("${ 3 / 3 }", None, 1),
        ("${ . }", 2.0, 2),
        ("${ . + 1 }", 1, 2),
        ("${ .a * 2 }", {"a": 21}, 42),
        ("${ 1 / 2 }", None, 0.5),
        ("${ .a * 1.5 }", {"a": 3}, 4.5),
        ("${ . }", 2**53, 2**53),
        ("${ . }", -(2**31), -(2**31)),
        ("${ . }", 2**70, 2**70),  # past orjson's 64 bits, exact as a double
        ("${ -0.0 }", None, 0),
        ("${ length }", "héllo", 5),
    ],
)
def test_numbers_stay_integers_when_integral(text: str, data: Any, expected: Any) -> None:
    result = run(text, data)
    assert result == expected
    assert type(result) is type(expected)


def test_non_finite_numbers() -> None:
    assert run("${ nan }") is None
    assert run("${ infinite }") == 1.7976931348623157e308
    assert run("${ [nan] }") == [None]


def test_json_values_round_trip() -> None:
    data = {
        "s": 'é ü \u2603 \\ " \n',
        "i": 7,
        "f": 2.5,
        "t": True,
        "n": None,
        "l": [1, [2, [3, {"k": []}]], {}],
        "o": {"nested": {"deeper": ["x", 0.125, False]}},
        "": "empty key",
        "$x": "dollar key",
    }
    result = run("${ . }", data)
    assert result == data
    assert result is not data
    assert json.dumps(result, sort_keys=True) == json.dumps(data, sort_keys=True)


def test_data_past_orjsons_limits_is_still_json() -> None:
    deep: Any = 1
    for _ in range(400):  # orjson stops at 255 levels; the standard library takes over
        deep = [deep]
    assert run("${ [paths] | length }", deep) == 400
    assert run('${ .["1"] }', {1: "int key"}) == "int key"  # a key JSON writes as a string


@pytest.mark.parametrize("data", [object(), {"a": {1, 2}}, b"bytes", [1, 2**64, {1, 2}]])
def test_data_that_is_not_json_is_an_expression_error(data: Any) -> None:
    assert "is not JSON" in str(failure("${ . }", data).detail)


def test_nan_in_the_data_is_null() -> None:
    assert run("${ .x }", {"x": float("nan")}) is None


def test_data_nested_past_the_recursion_limit_is_refused() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    assert "is not JSON" in str(failure("${ 1 }", deep).detail)


# -- variables -------------------------------------------------------------------------------


def test_each_variable_is_bound_per_evaluation() -> None:
    expression = Expression("${ [$input, $context, .] }")
    expression.compile(["input", "context"])
    assert expression.evaluate(1, {"input": "a", "context": "b"}) == ["a", "b", 1]
    assert expression.evaluate(2, {"context": {"c": 1}, "input": None}) == [None, {"c": 1}, 2]


def test_every_runtime_argument_is_available() -> None:
    variables = {name: {"name": name} for name in NAMES}
    text = "${ [" + ", ".join(f"${name}.name" for name in NAMES) + "] }"
    assert run(text, None, **variables) == list(NAMES)


def test_an_undefined_variable_does_not_compile() -> None:
    error = invalid("${ $task.name }", ["context", "input"])
    assert "$task is not defined" in str(error)
    assert error.expression == "${ $task.name }"
    assert isinstance(error, ValueError) and isinstance(error, GhappletsError)
    assert "$secrets is not defined" in str(invalid("${ $secrets.token }", ["context"]))
    Expression("${ $task.name }").compile(["task"])


def test_an_undefined_variable_at_run_time_is_an_expression_error() -> None:
    error = failure("${ $task.name }", None, context={})
    assert "$task is not defined" in str(error.detail)
    assert str(error.detail).startswith("the expression ${ $task.name } failed: ")


def test_a_variable_set_that_differs_compiles_again() -> None:
    expression = Expression("${ $a // . }")
    assert expression.evaluate(1, {"a": 2}) == 2
    assert expression.evaluate(1, {"a": None, "b": 3}) == 1
    with pytest.raises(BlueprintError, match=r"\$a is not defined"):
        expression.evaluate(1, {"b": 3})


def test_variables_named_like_jq_keywords() -> None:
    assert run(
        "${ [$if, $then, $reduce, $error] }", None, **{"if": 1, "then": 2}, reduce=3, error=4
    ) == [
        1,
        2,
        3,
        4,
    ]


@pytest.mark.parametrize(
    "names",
    [["my-var"], ["1x"], [""], ["$input"], ["a b"], ["__loc__"], ["é"], ["ok", "not ok"], [5]],
)
def test_variable_names_are_identifiers(names: list[Any]) -> None:
    error = invalid("${ . }", names)
    assert "cannot be a variable of a runtime expression" in str(error)


def test_variable_names_are_a_collection_not_a_string() -> None:
    assert "a collection of names" in str(invalid("${ . }", "input"))


def test_unused_variables_are_not_encoded() -> None:
    # a value jq could not take, in a variable the body does not name: never converted
    assert run("${ .a }", {"a": 1}, context=object(), input={"big": list(range(10))}) == 1
    assert "is not JSON" in str(failure("${ $context }", None, context=object()).detail)
    # a name that is the prefix of another is not mistaken for it
    assert run("${ $inputs }", None, input=object(), inputs=[1]) == [1]


# -- compiled once ---------------------------------------------------------------------------


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The programs jq compiles from now on."""
    programs: list[str] = []
    real = jq.compile

    def counting(program: str, *args: Any, **kwargs: Any) -> Any:
        programs.append(program)
        return real(program, *args, **kwargs)

    monkeypatch.setattr(expressions.jq, "compile", counting)
    return programs


def test_an_expression_compiles_once_per_set_of_names(compiles: list[str]) -> None:
    expression = Expression("${ .a + $input.b }")
    expression.compile(["input", "context"])
    assert compiles[0] == ".a + $input.b"  # the body alone, checked
    assert len(compiles) == 2  # then its wrapper
    expression.compile(("context", "input"))
    expression.compile(["input", "context", "input"])
    expression.compile({"context": 1, "input": 2}.keys())
    for value in range(50):
        assert expression.evaluate({"a": value}, {"input": {"b": 1}, "context": {}}) == value + 1
    assert len(compiles) == 2
    expression.evaluate({"a": 1}, {"input": {"b": 1}})  # another set of names
    assert len(compiles) == 4
    expression.evaluate({"a": 1}, {"input": {"b": 1}, "context": None})
    assert len(compiles) == 4


def test_evaluate_compiles_on_first_use(compiles: list[str]) -> None:
    expression = Expression("${ . }")
    assert expression.evaluate(1, {}) == 1
    assert expression.evaluate(2, {}) == 2
    assert len(compiles) == 2


# -- failures --------------------------------------------------------------------------------


def test_a_jq_runtime_error_is_an_expression_error() -> None:
    error = failure("${ .a + 1 }", {"a": "x"})
    assert error.detail == (
        'the expression ${ .a + 1 } failed: string ("x") and number (1) cannot be added'
    )
    assert error.instance is None
    assert isinstance(error.__cause__, ValueError)


@pytest.mark.parametrize(
    ("text", "data", "message"),
    [
        ('${ error("custom failure") }', None, "custom failure"),
        ("${ .a.b }", {"a": 5}, "Cannot index number with"),
        ("${ .[0] }", {"a": 1}, "Cannot index object with number"),
        ("${ tonumber }", "abc", 'string ("abc") cannot be parsed as a number'),
        ('${ test("(a+)+b") }', "a" * 30, "Regex failure"),  # jq bounds backtracking
        ("${ .a | keys }", {"a": 1}, "number (1) has no keys"),
        ("${ input }", None, "a runtime expression has a single input"),
        ("${ halt }", None, "stopped without a result"),
        ('${ "bye" | halt_error }', None, "bye"),
        ('${ "bye" | halt_error(1) }', None, "bye"),
    ],
)
def test_failures_name_the_expression(text: str, data: Any, message: str) -> None:
    detail = str(failure(text, data).detail)
    assert detail.startswith(f"the expression {Expression(text)} failed: ")
    assert message in detail


def test_a_long_expression_is_shortened_in_the_detail() -> None:
    text = "${ " + " + ".join(["1"] * 200) + ' + "x" }'
    detail = str(failure(text).detail)
    assert detail.startswith("the expression ${ 1 + 1 + ")
    assert "… failed: number" in detail
    assert len(detail) < 300


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${}", "Top-level program not given"),
        ("${ }", "Top-level program not given"),
        ("${ # only a comment }", "Top-level program not given"),
        ("${ .a + }", "syntax error"),
        ("${ .a | }", "syntax error"),
        ("${ [1, 2 }", "syntax error"),
        ("${ nosuchfunction }", "nosuchfunction/0 is not defined"),
        ("${ . } ${ . }", "syntax error"),
    ],
)
def test_what_does_not_compile(text: str, message: str) -> None:
    error = invalid(text, NAMES)
    assert message in str(error)
    # and at run time, an expression error
    assert message in str(failure(text).detail)


def test_an_overlong_expression_is_refused() -> None:
    body = "." + " " * MAX_EXPRESSION_LENGTH
    assert "longer than the 65536 allowed" in str(invalid("${ " + body + "1 }"))
    assert run("${ " + "." + " " * (MAX_EXPRESSION_LENGTH - 2) + " }", 7) == 7


def test_a_non_string_is_not_an_expression() -> None:
    with pytest.raises(ExpressionInvalid, match="is a string"):
        Expression(5)  # type: ignore[arg-type]


# -- hostile bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "${ .) | (. }",  # closes the wrapper's parenthesis and opens another
        "${ .)] | [(. }",
        "${ .)] | .[0] as $x | [($x }",
        "${ 1) as $x | ($x }",
        "${ .\n)] | $ENV | [( . }",
        "${ .) , (env }",
        '${ "\\(.)" ) }',
        "${ . as [$a] | $a) }",
        "${ ] }",
        "${ ) }",
        "${ ; . }",
        "${ . ; . }",
        "${ def x: .; }",  # definitions only: no program
        "${ . | (. }",
    ],
)
def test_a_body_cannot_break_out_of_its_wrapper(text: str) -> None:
    invalid(text, NAMES)
    failure(text, {"a": 1}, input=1)


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("${ .a # a comment }", {"a": 1}, 1),
        ("${ .a # a comment ) | error }", {"a": 1}, 1),
        ("${ .a # a comment ending in a backslash \\\n}", {"a": 1}, 1),
        ("${ .a # two \\\\\n}", {"a": 1}, 1),
        ("${ .a # \\\r\n}", {"a": 1}, 1),
        ("${ # a comment first\n.a }", {"a": 1}, 1),
        ('${ ")" }', None, ")"),
        ('${ "\\")" }', None, '")'),
        ('${ "# not a comment" }', None, "# not a comment"),
        ('${ "\\(")")" }', None, ")"),
        ("${ def f: .a; f }", {"a": 2}, 2),
        ("${ def env: {PATH: 1}; env }", None, {"PATH": 1}),
        ("${ .import }", {"import": 3}, 3),
        ("${ . as [$a, $b] | $b }", [1, 2], 2),
        ("${ reduce .[] as $x (0; . + $x) }", [1, 2, 3], 6),
        (
            "${ label $out | foreach .[] as $i (0; . + $i; if . > 2 then ., break $out "
            "else empty end) }",
            [1, 2, 3],
            3,
        ),
        ("${ [limit(3; repeat(1))] }", None, [1, 1, 1]),
        ("${ $__loc__.line }", None, 1),
    ],
)
def test_bodies_that_look_hostile_but_are_jq(text: str, data: Any, expected: Any) -> None:
    assert run(text, data, input=None) == expected


def test_the_data_is_dot_and_nothing_else() -> None:
    # the wrapper's input array is out of the body's reach
    assert run("${ . }", {"a": 1}, input="i", context="c") == {"a": 1}
    assert run("${ [., $input] }", 5, input="i", context="c") == [5, "i"]
    for name in ("$__d", "$__v", "$__args", "$ARGS", "$__prog_args", "$_"):
        assert "is not defined" in str(invalid("${ " + name + " }", NAMES))


def test_the_environment_is_out_of_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHAPPLETS_TEST_SECRET", "hunter2")
    assert os.environ["GHAPPLETS_TEST_SECRET"] == "hunter2"
    assert run("${ $ENV }") == {}
    assert run("${ env }") == {}
    assert run("${ $ENV.GHAPPLETS_TEST_SECRET }") is None
    assert run("${ env.GHAPPLETS_TEST_SECRET }") is None
    assert run("${ $ENV.PATH }") is None
    assert run("${ $ENV }", None, ENV={"mine": 1}) == {"mine": 1}  # a variable named ENV wins


@pytest.mark.parametrize(
    "text",
    [
        '${ import "a" as a; . }',
        '${ include "a"; . }',
        '${ import "data" as $data; $data }',
        "${ module {a: 1}; . }",
        '${ # first a comment\n  import "a" as a; . }',
        '${ import"a" as a; . }',
    ],
)
def test_modules_are_refused(text: str) -> None:
    assert "cannot import or include jq modules" in str(invalid(text, NAMES))


def test_debug_and_stderr_write_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    assert run('${ "x" | debug | stderr | debug("m") }') == "x"
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_evaluations_in_threads() -> None:
    expression = Expression("${ .n * $input }")
    expression.compile(["input"])

    def work(n: int) -> list[Any]:
        return [expression.evaluate({"n": n}, {"input": k}) for k in range(100)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    assert results == [[n * k for k in range(100)] for n in range(8)]


# -- templates -------------------------------------------------------------------------------


def test_a_template_replaces_each_expression() -> None:
    value = {
        "method": "post",
        "endpoint": {"uri": "https://x.example/send"},
        "body": {
            "to": "${ .order.client.email }",
            "subject": "Candidates for Adoption",
            "names": ["first", "${ .pets[0].name }", {"all": "${ [.pets[].name] }"}],
            "count": "${ .pets | length }",
            "by": "${ $task.name }",
            "${ .not_a_key }": "${ null }",
            "greeting": "Hello ${ .order.client.email }!",
            "flags": [True, False, None, 1.0, 2**64],
        },
    }
    data = {"order": {"client": {"email": "ann@example.com"}}, "pets": [{"name": "rex"}]}
    template = Template(value)
    assert not template.is_constant
    assert template.evaluate(data, {"task": {"name": "mail"}}) == {
        "method": "post",
        "endpoint": {"uri": "https://x.example/send"},
        "body": {
            "to": "ann@example.com",
            "subject": "Candidates for Adoption",
            "names": ["first", "rex", {"all": ["rex"]}],
            "count": 1,
            "by": "mail",
            "${ .not_a_key }": None,
            "greeting": "Hello ${ .order.client.email }!",
            "flags": [True, False, None, 1.0, 2**64],
        },
    }
    result = template.evaluate(data, {"task": {"name": "mail"}})
    assert result["body"]["flags"][3] == 1.0 and isinstance(result["body"]["flags"][3], float)
    assert result["body"]["flags"][4] == 2**64  # constants are not passed through jq


def test_a_template_never_changes_and_returns_new_values() -> None:
    value = {"a": {"b": [1, {"c": 2}]}, "d": "${ .x }", "e": ["${ .x }", {"f": []}]}
    original = json.loads(json.dumps(value))
    template = Template(value)
    first = template.evaluate({"x": 1}, {})
    first["a"]["b"].append(3)
    first["a"]["b"][1]["c"] = 99
    first["e"][1]["f"].append("x")
    second = template.evaluate({"x": 2}, {})
    assert second == {"a": {"b": [1, {"c": 2}]}, "d": 2, "e": [2, {"f": []}]}
    assert value == original
    assert second["a"] is not value["a"] and second["a"]["b"] is not value["a"]["b"]


def test_a_constant_template_is_a_copy() -> None:
    value = {"a": [1, {"b": "Hello ${ .x }!"}], "c": None}
    template = Template(value)
    assert template.is_constant
    assert list(template.expressions()) == []
    result = template.evaluate({"x": 1}, {})
    assert result == value
    assert (
        result is not value
        and result["a"] is not value["a"]
        and result["a"][1] is not value["a"][1]
    )
    assert Template(5).evaluate(None, {}) == 5
    assert Template(None).evaluate(None, {}) is None


def test_a_template_that_is_one_expression() -> None:
    template = Template("${ .a }")
    assert template.evaluate({"a": [1]}, {}) == [1]
    assert Template("${ .[] }").evaluate([1, 2], {}) == [1, 2]
    assert Template("${ empty }").evaluate(None, {}) is None


def test_template_results_follow_the_expressions_rules() -> None:
    template = Template(
        {"many": "${ .[] }", "none": "${ empty }", "one": "${ .[0] }", "n": "${ 2.0 }"}
    )
    result = template.evaluate([7, 8], {})
    assert result == {"many": [7, 8], "none": None, "one": 7, "n": 2}
    assert type(result["n"]) is int


def test_tuples_are_arrays() -> None:
    assert Template(("${ . }", 1)).evaluate(0, {}) == [0, 1]


def test_the_expressions_of_a_template_in_document_order() -> None:
    template = Template({"a": "${ .a }", "b": ["${ .b }", {"c": "${ $input }"}], "d": "${ .d }"})
    assert [e.body for e in template.expressions()] == [".a", ".b", "$input", ".d"]
    assert all(isinstance(e, Expression) for e in template.expressions())


def test_a_template_runs_jq_once_for_all_its_expressions(
    monkeypatch: pytest.MonkeyPatch, compiles: list[str]
) -> None:
    encoded: list[str] = []
    real = expressions._encode

    def counting(values: list[Any]) -> str:
        text = real(values)
        encoded.append(text)
        return text

    monkeypatch.setattr(expressions, "_encode", counting)
    template = Template({"a": "${ .x }", "b": ["${ .x + 1 }", "${ $input }"], "c": "${ .x * 3 }"})
    template.compile(["input", "context"])
    assert len(compiles) == 5  # each body checked alone, and one program for all
    for x in range(10):
        assert template.evaluate({"x": x}, {"input": "i", "context": {"big": 1}}) == {
            "a": x,
            "b": [x + 1, "i"],
            "c": 3 * x,
        }
    assert len(compiles) == 5
    assert len(encoded) == 10  # one run per evaluation
    assert encoded[0] == '["i",{"x":0}]'  # only the variables the expressions name


def test_a_template_error_names_the_failing_expression() -> None:
    template = Template({"a": "${ .x }", "b": {"c": "${ .x + 1 }"}, "d": "${ .x }"})
    with pytest.raises(BlueprintError) as caught:
        template.evaluate({"x": "s"}, {})
    error = caught.value
    assert (error.type, error.status) == (EXPRESSION_TYPE, 400)
    assert error.detail == (
        'the expression ${ .x + 1 } failed: string ("s") and number (1) cannot be added'
    )


def test_a_template_that_does_not_compile() -> None:
    template = Template({"a": "${ .x }", "b": "${ $task.name }"})
    with pytest.raises(ExpressionInvalid, match=r"\$task is not defined") as caught:
        template.compile(["input"])
    assert caught.value.expression == "${ $task.name }"
    with pytest.raises(BlueprintError) as failed:
        template.evaluate({}, {"input": None})
    assert str(failed.value.detail).startswith("the expression ${ $task.name } failed: ")
    assert template.evaluate({"x": 1}, {"task": {"name": "t"}}) == {"a": 1, "b": "t"}


@pytest.mark.parametrize("value", [{1: "a"}, {"a": {("t",): 1}}])
def test_template_keys_are_strings(value: Any) -> None:
    with pytest.raises(TypeError, match="keys are strings"):
        Template(value)


@pytest.mark.parametrize("value", [object(), {"a": {1, 2}}, [b"x"]])
def test_templates_hold_json(value: Any) -> None:
    with pytest.raises(TypeError, match="JSON values"):
        Template(value)
