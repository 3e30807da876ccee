"""URI templates: simple string expansion of top-level properties, and nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from ghapplets.blueprints.uris import check_uri_template, expand_uri, is_uri_template
from ghapplets.exceptions import BlueprintError

EXPRESSION_TYPE = "https://serverlessworkflow.io/spec/1.0.0/errors/expression"


def test_the_references_example() -> None:
    template = "https://petstore.swagger.io/v2/pet/{petId}"
    assert expand_uri(template, {"petId": 1}) == "https://petstore.swagger.io/v2/pet/1"
    assert expand_uri(template, {"petId": "milou"}) == "https://petstore.swagger.io/v2/pet/milou"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("abc", "abc"),
        ("", ""),
        (42, "42"),
        (-7, "-7"),
        (0, "0"),
        (1.5, "1.5"),
        (2.0, "2"),
        (-0.25, "-0.25"),
        (1e-7, "1e-07"),
        (10**20, "100000000000000000000"),
        (True, "true"),
        (False, "false"),
        (None, ""),
    ],
)
def test_each_value_type(value: Any, text: str) -> None:
    assert expand_uri("https://x.example/a/{v}/b", {"v": value}) == f"https://x.example/a/{text}/b"


def test_a_missing_property_is_empty() -> None:
    assert expand_uri("https://x.example/{a}/{b}", {"a": 1}) == "https://x.example/1/"
    assert expand_uri("https://x.example/{a}", {}) == "https://x.example/"


@pytest.mark.parametrize("data", [None, "petId", 5, [1, 2], True])
def test_data_that_is_not_an_object_has_no_properties(data: Any) -> None:
    assert expand_uri("https://x.example/pet/{petId}", data) == "https://x.example/pet/"


def test_names_are_top_level_properties_taken_verbatim() -> None:
    data = {"pet.id": "top", "pet": {"id": "nested"}}
    assert expand_uri("https://x.example/{pet.id}", data) == "https://x.example/top"
    assert expand_uri("https://x.example/{pet.id}", {"pet": {"id": 1}}) == "https://x.example/"


def test_names_are_case_sensitive() -> None:
    assert expand_uri("https://x.example/{Id}/{id}", {"id": 1, "Id": 2}) == "https://x.example/2/1"


@pytest.mark.parametrize(
    ("value", "expanded"),
    [
        ("../admin", "..%2Fadmin"),
        ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd"),
        ("?a=b", "%3Fa%3Db"),
        ("1?admin=true&x=y", "1%3Fadmin%3Dtrue%26x%3Dy"),
        ("1#fragment", "1%23fragment"),
        ("a/b", "a%2Fb"),
        ("a b", "a%20b"),
        ("100%", "100%25"),
        ("%2F", "%252F"),
        ("@evil.example", "%40evil.example"),
        ("x;y,z", "x%3By%2Cz"),
        ("{other}", "%7Bother%7D"),
        ("é", "%C3%A9"),
        ("\n", "%0A"),
        ("...", "..."),
        (".x", ".x"),
    ],
)
def test_a_value_cannot_inject_structure(value: str, expanded: str) -> None:
    uri = expand_uri("https://api.example/v1/pets/{id}?fields=name", {"id": value, "other": "x"})
    assert uri == f"https://api.example/v1/pets/{expanded}?fields=name"


@pytest.mark.parametrize("value", [".", ".."])
@pytest.mark.parametrize(
    "template",
    [
        "https://api.example/v1/pets/{id}",
        "https://api.example/v1/pets/{id}/owner",
        "https://api.example/v1/pets/{id}?x=1",
        "https://api.example/v1/{id}{id}/x",
    ],
)
def test_a_dot_segment_in_the_path_is_refused(template: str, value: str) -> None:
    with pytest.raises(BlueprintError) as caught:
        expand_uri(template, {"id": value})
    assert caught.value.type == EXPRESSION_TYPE and caught.value.status == 400
    assert "dot-segment" in str(caught.value.detail)


def test_dots_in_the_query_or_fragment_are_values() -> None:
    assert expand_uri("https://x.example/s?q={q}", {"q": ".."}) == "https://x.example/s?q=.."
    assert expand_uri("https://x.example/s#{f}", {"f": "."}) == "https://x.example/s#."


@pytest.mark.parametrize(
    ("value", "kind"),
    [([1, 2], "an array"), ({"id": 1}, "an object"), ([], "an array"), ((1,), "an array")],
)
def test_arrays_and_objects_are_expression_errors(value: Any, kind: str) -> None:
    with pytest.raises(BlueprintError) as caught:
        expand_uri("https://x.example/pet/{petId}", {"petId": value})
    error = caught.value
    assert (error.type, error.status) == (EXPRESSION_TYPE, 400)
    assert error.detail == (
        f"the URI template 'https://x.example/pet/{{petId}}' expands {{petId}}, which is {kind}: "
        "only a string, number, boolean or null can be put in a URI"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), b"x", {1, 2}])
def test_other_values_are_expression_errors(value: Any) -> None:
    with pytest.raises(BlueprintError, match="only a string, number, boolean or null"):
        expand_uri("https://x.example/{v}", {"v": value})


def test_simple_expansion_lists_and_prefixes() -> None:
    data = {"x": 1024, "y": 768, "var": "value", "empty": "", "u": "é/"}
    assert expand_uri("https://x.example/{x,y}", data) == "https://x.example/1024,768"
    assert expand_uri("https://x.example/?{x,empty}", data) == "https://x.example/?1024,"
    assert expand_uri("https://x.example/?{x,undef}", data) == "https://x.example/?1024"
    assert expand_uri("https://x.example/{var:3}", data) == "https://x.example/val"
    assert expand_uri("https://x.example/{var:30}", data) == "https://x.example/value"
    assert expand_uri("https://x.example/{u:1}", data) == "https://x.example/%C3%A9"
    assert expand_uri("https://x.example/{var*}", data) == "https://x.example/value"


def test_a_template_without_expressions_is_itself() -> None:
    assert expand_uri("https://x.example/a?b=c", {"a": 1}) == "https://x.example/a?b=c"
    assert expand_uri("", {}) == ""


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("https://x.example/{+path}", "operator '+'"),
        ("https://x.example/{#frag}", "operator '#'"),
        ("https://x.example/x{.ext}", "operator '.'"),
        ("https://x.example{/seg}", "operator '/'"),
        ("https://x.example/x{;p}", "operator ';'"),
        ("https://x.example/x{?q}", "operator '?'"),
        ("https://x.example/x?a=1{&q}", "operator '&'"),
        ("https://x.example/{=x}", "operator '='"),
        ("https://x.example/{}", "empty expression"),
        ("https://x.example/{", "unmatched brace"),
        ("https://x.example/}", "unmatched brace"),
        ("https://x.example/{a{b}", "unmatched brace"),
        ("https://x.example/{a}}", "unmatched brace"),
        ("https://x.example/{ a }", "' a ' in '{ a }', which is not a variable name"),
        ("https://x.example/{pet-id}", "'pet-id' in '{pet-id}', which is not a variable name"),
        ("https://x.example/{a,}", "'' in '{a,}', which is not a variable name"),
        ("https://x.example/{a:0}", "which is not a variable name"),
        ("https://x.example/{a:10000}", "which is not a variable name"),
        ("https://x.example/{.a}", "operator '.'"),
        ("https://x.example/{a..b}", "which is not a variable name"),
        ("https://x.example/{a.}", "which is not a variable name"),
        ("https://x.example/{$a}", "which is not a variable name"),
    ],
)
def test_what_is_not_simple_expansion_is_refused(template: str, message: str) -> None:
    with pytest.raises(BlueprintError) as caught:
        expand_uri(template, {"a": 1, "b": 2, "path": "x", "q": "y"})
    assert (caught.value.type, caught.value.status) == (EXPRESSION_TYPE, 400)
    assert message in str(caught.value.detail)
    with pytest.raises(ValueError, match="URI template"):
        check_uri_template(template)


def test_check_names_the_properties_in_order() -> None:
    assert check_uri_template("https://x.example/{b}/{a,b}/{pet.id:3}/{c*}") == (
        "b",
        "a",
        "pet.id",
        "c",
    )
    assert check_uri_template("https://x.example/") == ()
    assert check_uri_template("https://x.example/{a%20b}") == ("a%20b",)


def test_a_template_is_a_string() -> None:
    with pytest.raises(ValueError, match="a URI template is a string"):
        check_uri_template(["https://x.example/{a}"])  # type: ignore[arg-type]
    with pytest.raises(BlueprintError, match="a URI template is a string"):
        expand_uri(None, {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://x.example/pet/{petId}", True),
        ("{petId}", True),
        ("https://x.example/{+path}", True),  # a template, which expand_uri refuses
        ("https://x.example/pet/1", False),
        ("", False),
        ("${ .endpoint }", False),
        ('  ${ "https://x.example/\\(.id)" }  ', False),
        ("${ {a: 1} }", False),
        ("https://x.example/{", False),
        (None, False),
        (5, False),
        ({"uri": "https://x.example/{a}"}, False),
    ],
)
def test_is_uri_template(text: Any, expected: bool) -> None:
    assert is_uri_template(text) is expected
