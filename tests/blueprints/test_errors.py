"""The DSL's errors: standard kinds, BlueprintError's dict form, catch filters."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from ghapplets.blueprints.errors import (
    ERROR_TYPE_PREFIX,
    LEGACY_ERROR_TYPE_PREFIX,
    ErrorKind,
    error_matches,
    raise_error,
    type_matches,
)
from ghapplets.exceptions import BlueprintError, GhappletsError

SPEC = "https://serverlessworkflow.io/spec/1.0.0/errors/"
LEGACY = "https://serverlessworkflow.io/dsl/errors/types/"

# The reference's "Standard Error Types" table
STANDARD = [
    ("configuration", 400),
    ("validation", 400),
    ("expression", 400),
    ("authentication", 401),
    ("authorization", 403),
    ("timeout", 408),
    ("communication", 500),
    ("runtime", 500),
]


def test_the_prefixes_are_the_specs() -> None:
    assert ERROR_TYPE_PREFIX == SPEC
    assert LEGACY_ERROR_TYPE_PREFIX == LEGACY


@pytest.mark.parametrize(("kind", "status"), STANDARD)
def test_each_standard_kind_has_its_uri_and_default_status(kind: str, status: int) -> None:
    member = ErrorKind(kind)
    assert member == kind
    assert member.type == SPEC + kind
    assert member.status == status
    assert ErrorKind.from_type(SPEC + kind) is member
    assert ErrorKind.from_type(LEGACY + kind) is member


def test_the_kinds_are_exactly_the_eight_of_the_table() -> None:
    assert [(k.value, k.status) for k in ErrorKind] == STANDARD


@pytest.mark.parametrize(
    "type_",
    [
        "https://example.com/errors/timeout",
        SPEC + "nope",
        SPEC,
        LEGACY + "Timeout",
        SPEC + "timeout/",
        "http://serverlessworkflow.io/spec/1.0.0/errors/timeout",
        "https://serverlessworkflow.io/spec/1.0.1/errors/timeout",
        "timeout",
    ],
)
def test_other_uris_name_no_standard_kind(type_: str) -> None:
    assert ErrorKind.from_type(type_) is None


def test_raise_error_gives_the_kinds_type_status_and_title() -> None:
    error = raise_error(ErrorKind.TIMEOUT, "the task took longer than PT30S")
    assert isinstance(error, BlueprintError) and isinstance(error, GhappletsError)
    assert error.type == SPEC + "timeout"
    assert error.status == 408
    assert error.title == "Timeout"
    assert error.detail == "the task took longer than PT30S"
    assert error.instance is None
    assert error.to_dict() == {
        "type": SPEC + "timeout",
        "status": 408,
        "title": "Timeout",
        "detail": "the task took longer than PT30S",
    }


def test_raise_error_takes_a_status_title_and_instance() -> None:
    error = raise_error(
        ErrorKind.COMMUNICATION,
        "The service is currently unavailable. Please try again later.",
        instance="/do/getPetById",
        status=503,
        title="Service Unavailable",
    )
    # the DSL's own example error
    assert error.to_dict() == {
        "type": "https://serverlessworkflow.io/spec/1.0.0/errors/communication",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The service is currently unavailable. Please try again later.",
        "instance": "/do/getPetById",
    }


def test_raise_error_takes_a_kinds_name() -> None:
    error = raise_error("validation", "input does not match its schema")  # type: ignore[arg-type]
    assert (error.type, error.status, error.title) == (SPEC + "validation", 400, "Validation Error")


def test_raise_error_titles_per_kind() -> None:
    titles = {kind.value: raise_error(kind, "x").title for kind in ErrorKind}
    assert titles == {
        "configuration": "Configuration Error",
        "validation": "Validation Error",
        "expression": "Expression Error",
        "authentication": "Authentication Error",
        "authorization": "Authorization Error",
        "timeout": "Timeout",
        "communication": "Communication Error",
        "runtime": "Runtime Error",
    }


def test_a_status_of_zero_is_kept() -> None:
    assert raise_error(ErrorKind.RUNTIME, "x", status=0).status == 0
    assert raise_error(ErrorKind.RUNTIME, "x", title="").title == ""


def test_to_dict_has_type_and_status_always_and_the_rest_when_set() -> None:
    assert BlueprintError("https://example.com/e", 418).to_dict() == {
        "type": "https://example.com/e",
        "status": 418,
    }
    error = BlueprintError("https://example.com/e", 418, instance="/do/0/brew")
    assert error.to_dict() == {
        "type": "https://example.com/e",
        "status": 418,
        "instance": "/do/0/brew",
    }


@pytest.mark.parametrize(
    "mapping",
    [
        {"type": SPEC + "runtime", "status": 500},
        {"type": SPEC + "communication", "status": 503, "title": "Service Not Available"},
        {
            "type": "https://example.com/errors/quota",
            "status": 429,
            "title": "Quota",
            "detail": "the quota is used up",
            "instance": "/do/1/call",
        },
    ],
)
def test_the_dict_form_round_trips(mapping: dict[str, Any]) -> None:
    error = BlueprintError.from_dict(mapping)
    assert error.to_dict() == mapping
    assert BlueprintError.from_dict(error.to_dict()).to_dict() == mapping


def test_from_dict_ignores_extension_members_and_nulls() -> None:
    error = BlueprintError.from_dict(
        {"type": SPEC + "runtime", "status": 500, "title": None, "retryAfter": 3}
    )
    assert error.to_dict() == {"type": SPEC + "runtime", "status": 500}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"status": 500}, "needs type"),
        ({"type": SPEC + "runtime"}, "needs status"),
        ({}, "needs type and status"),
        ({"type": None, "status": 500}, "needs type"),
        ({"type": "", "status": 500}, "non-empty string"),
        ({"type": 5, "status": 500}, "non-empty string"),
        ({"type": SPEC + "runtime", "status": "500"}, "must be an integer"),
        ({"type": SPEC + "runtime", "status": 500.0}, "must be an integer"),
        ({"type": SPEC + "runtime", "status": True}, "must be an integer"),
        ({"type": SPEC + "runtime", "status": 500, "title": 1}, "title must be a string"),
        ({"type": SPEC + "runtime", "status": 500, "detail": ["x"]}, "detail must be a string"),
        ({"type": SPEC + "runtime", "status": 500, "instance": 0}, "instance must be a string"),
    ],
)
def test_from_dict_refuses_what_is_not_an_error(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BlueprintError.from_dict(mapping)


def test_from_dict_refuses_a_non_object() -> None:
    with pytest.raises(ValueError, match="must be an object"):
        BlueprintError.from_dict(["type", "status"])  # type: ignore[arg-type]


def test_str_is_readable() -> None:
    error = raise_error(
        ErrorKind.COMMUNICATION, "the service is down", status=503, instance="/do/0/getPet"
    )
    assert str(error) == (
        f"Communication Error: the service is down (status 503, type {SPEC}communication)"
        " at /do/0/getPet"
    )
    assert str(BlueprintError("https://example.com/errors/quota", 429)) == (
        "quota (status 429, type https://example.com/errors/quota)"
    )
    assert str(BlueprintError("urn:x", 400, title="Bad")) == "Bad (status 400, type urn:x)"


def test_str_follows_an_instance_set_later() -> None:
    error = raise_error(ErrorKind.RUNTIME, "boom")
    error.instance = "/do/2/step"
    assert str(error).endswith(" at /do/2/step")
    assert error.to_dict()["instance"] == "/do/2/step"


def test_repr_shows_the_dict() -> None:
    assert repr(BlueprintError("urn:x", 400)) == "BlueprintError({'type': 'urn:x', 'status': 400})"


def test_it_pickles_with_every_field() -> None:
    error = raise_error(ErrorKind.AUTHORIZATION, "no", instance="/do/0/x")
    error.detail = "changed"
    copy = pickle.loads(pickle.dumps(error))
    assert copy.to_dict() == error.to_dict()
    assert copy.to_dict()["detail"] == "changed"


# -- type_matches ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [k for k, _ in STANDARD])
def test_a_standard_kind_matches_in_either_spelling(kind: str) -> None:
    assert type_matches(SPEC + kind, SPEC + kind)
    assert type_matches(LEGACY + kind, SPEC + kind)
    assert type_matches(SPEC + kind, LEGACY + kind)
    assert type_matches(LEGACY + kind, LEGACY + kind)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (SPEC + "timeout", SPEC + "runtime"),
        (LEGACY + "timeout", SPEC + "communication"),
        (SPEC + "timeout", "https://example.com/errors/timeout"),
        ("https://example.com/errors/timeout", SPEC + "timeout"),
        (SPEC + "nope", LEGACY + "nope"),
        (SPEC + "Timeout", SPEC + "timeout"),
        # the reference's try example spells the host serverlessworkflow.io.io: not a standard type
        ("https://serverlessworkflow.io.io/dsl/errors/types/communication", SPEC + "communication"),
        ("", SPEC + "timeout"),
    ],
)
def test_other_types_do_not_match(expected: str, actual: str) -> None:
    assert not type_matches(expected, actual)


def test_custom_types_match_only_themselves() -> None:
    assert type_matches("https://example.com/errors/quota", "https://example.com/errors/quota")
    assert not type_matches("https://example.com/errors/quota", "https://example.com/errors/Quota")
    assert type_matches(SPEC + "nope", SPEC + "nope")  # equal strings, kind or not


# -- error_matches ---------------------------------------------------------------------------

ERROR = BlueprintError(
    SPEC + "communication", 503, "Service Unavailable", "try later", "/do/0/getPet"
)


@pytest.mark.parametrize(
    "filter_with",
    [
        {},
        {"type": SPEC + "communication"},
        {"type": LEGACY + "communication"},
        {"status": 503},
        {"type": LEGACY + "communication", "status": 503},
        {"instance": "/do/0/getPet"},
        {"title": "Service Unavailable"},
        {"detail": "try later"},
        {"details": "try later"},  # the schema's errorFilter spelling
        {
            "type": SPEC + "communication",
            "status": 503,
            "instance": "/do/0/getPet",
            "title": "Service Unavailable",
            "detail": "try later",
        },
        {"type": None, "status": 503},  # null: not set
    ],
)
def test_a_filter_catches_when_every_property_it_sets_equals(filter_with: dict[str, Any]) -> None:
    assert error_matches(filter_with, ERROR)


@pytest.mark.parametrize(
    "filter_with",
    [
        {"type": SPEC + "timeout"},
        {"type": "https://example.com/errors/communication"},
        {"status": 500},
        {"status": "503"},
        {"status": 503.5},
        {"type": SPEC + "communication", "status": 500},
        {"type": SPEC + "timeout", "status": 503},
        {"instance": "/do/1/getPet"},
        {"title": "service unavailable"},
        {"detail": "try later!"},
        {"details": "x"},
        {"type": 5},
        {"code": 503},  # not an error property: a mistyped filter catches nothing
        {"status": 503, "code": 503},
        {"title": None, "status": 500},  # a null property is skipped, the next still checked
    ],
)
def test_a_filter_does_not_catch_when_a_property_differs(filter_with: dict[str, Any]) -> None:
    assert not error_matches(filter_with, ERROR)


def test_a_status_filter_is_not_a_boolean() -> None:
    error = BlueprintError("urn:x", 1)
    assert error_matches({"status": 1}, error)
    assert not error_matches({"status": True}, error)


def test_a_filter_on_a_property_the_error_lacks_does_not_catch() -> None:
    bare = BlueprintError(SPEC + "runtime", 500)
    assert error_matches({"type": SPEC + "runtime"}, bare)
    assert not error_matches({"title": "Runtime Error"}, bare)
    assert not error_matches({"instance": "/do/0/x"}, bare)
    assert not error_matches({"detail": ""}, bare)
