"""The official DSL examples, read in place: each loads or is refused for a feature, as the table
says, and the official JSON Schema agrees.

The specification (``workflow.schema.yaml`` and ``examples/``) is never copied into the project:
it is found through ``GHAPPLETS_DSL_SPEC`` (a folder holding both), else in
``<repo root>/../shared/serverless-workflow``; without either, these tests are skipped.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from ghapplets.blueprints.loader import load_blueprint, parse_blueprint
from ghapplets.blueprints.refusals import NOT_SUPPORTED, Refused
from ghapplets.blueprints.source import read_source
from ghapplets.exceptions import BlueprintInvalid

REPO_ROOT = Path(__file__).resolve().parents[2]


def spec_folder() -> Path | None:
    candidates = [REPO_ROOT.parent / "shared" / "serverless-workflow"]
    if os.environ.get("GHAPPLETS_DSL_SPEC"):
        candidates.insert(0, Path(os.environ["GHAPPLETS_DSL_SPEC"]))
    for folder in candidates:
        if (folder / "workflow.schema.yaml").is_file() and (folder / "examples").is_dir():
            return folder
    return None


SPEC = spec_folder()
pytestmark = pytest.mark.skipif(
    SPEC is None,
    reason="the DSL specification is not here: set GHAPPLETS_DSL_SPEC to a folder holding "
    "workflow.schema.yaml and examples/ (or put it in ../shared/serverless-workflow)",
)

# Every official example: None when it loads, else the feature it is refused for (each refusal
# names its feature, so the feature is a substring of the problem).
VERDICTS: dict[str, Refused | None] = {
    "accumulate-room-readings.yaml": None,
    "authentication-bearer-uri-format.yaml": None,
    "authentication-bearer.yaml": None,
    "authentication-oauth2-secret.yaml": None,
    "authentication-oauth2.yaml": None,
    "authentication-oidc-secret.yaml": Refused.OIDC,
    "authentication-oidc.yaml": Refused.OIDC,
    "authentication-reusable.yaml": None,
    "call-asyncapi-publish.yaml": Refused.CALL_ASYNCAPI,
    "call-asyncapi-subscribe-consume-amount.yaml": Refused.CALL_ASYNCAPI,
    "call-asyncapi-subscribe-consume-forever-foreach.yaml": Refused.CALL_ASYNCAPI,
    "call-asyncapi-subscribe-consume-until.yaml": Refused.CALL_ASYNCAPI,
    "call-asyncapi-subscribe-consume-while.yaml": Refused.CALL_ASYNCAPI,
    "call-custom-function-cataloged.yaml": Refused.FUNCTION_URI,
    "call-custom-function-inline.yaml": None,
    "call-grpc.yaml": Refused.CALL_GRPC,
    "call-http-endpoint-interpolation-shorthand.yaml": None,
    "call-http-endpoint-interpolation.yaml": None,
    "call-http-query-headers-expressions.yaml": None,
    "call-http-query-parameters.yaml": None,
    "call-http-redirect.yaml": None,
    "call-mcp.yaml": Refused.CALL_MCP,
    "call-openapi-redirect.yaml": None,
    "call-openapi.yaml": None,
    "conditional-task.yaml": None,
    "do-multiple.yaml": None,
    "do-single.yaml": None,
    "emit.yaml": None,
    "for.yaml": None,
    "fork.yaml": None,
    "listen-to-all-read-envelope.yaml": None,
    "listen-to-all.yaml": None,
    "listen-to-any-filter.yaml": None,
    "listen-to-any-forever-foreach.yaml": None,
    "listen-to-any-until-condition.yaml": None,
    "listen-to-any-until-consumed.yaml": None,
    "listen-to-any.yaml": None,
    "listen-to-one.yaml": None,
    "mock-service-extension.yaml": Refused.EXTENSIONS,
    "raise-inline.yaml": None,
    "raise-reusable.yaml": None,
    "run-container-cleanup-always.yaml": Refused.RUN_CONTAINER,
    "run-container-cleanup-eventually.yaml": Refused.RUN_CONTAINER,
    "run-container-stdin-and-arguments.yaml": Refused.RUN_CONTAINER,
    "run-container-with-name.yaml": Refused.RUN_CONTAINER,
    "run-container-with-pull-policy.yaml": Refused.RUN_CONTAINER,
    "run-container.yaml": Refused.RUN_CONTAINER,
    "run-return-all.yaml": Refused.RUN_CONTAINER,
    "run-return-code.yaml": Refused.RUN_CONTAINER,
    "run-return-none.yaml": Refused.RUN_CONTAINER,
    "run-return-stderr.yaml": Refused.RUN_CONTAINER,
    "run-script-with-stdin-and-arguments.yaml": None,
    "run-shell-stdin-and-arguments.yaml": None,
    "run-subflow.yaml": None,
    "schedule-cron.yaml": None,
    "schedule-event-driven.yaml": None,
    "set-expression.yaml": None,
    "set.yaml": None,
    "star-wars-homeworld.yaml": None,
    "switch-then-string.yaml": None,
    "try-catch-retry-inline.yaml": None,
    "try-catch-retry-reusable.yaml": None,
    "try-catch-then.yaml": None,
    "try-catch.yaml": None,
    "wait-duration-inline.yaml": None,
    "wait-duration-iso8601.yaml": None,
}


def example(name: str) -> Path:
    assert SPEC is not None
    return SPEC / "examples" / name


@cache
def official() -> Draft202012Validator:
    """The official JSON Schema (read as YAML 1.2: its ``schedule.on`` is the key ``on``)."""
    assert SPEC is not None
    schema, _ = read_source(SPEC / "workflow.schema.yaml")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def our_problems(load: Callable[[], object]) -> list[str] | None:
    """None when ``load`` succeeds, else the messages of its problems."""
    try:
        load()
    except BlueprintInvalid as exc:
        return [p.message for p in exc.problems]
    return None


def test_the_table_names_every_example_and_only_those() -> None:
    assert SPEC is not None
    on_disk = {path.name for path in (SPEC / "examples").iterdir() if path.is_file()}
    assert sorted(on_disk - set(VERDICTS)) == [], "examples missing from VERDICTS"
    assert sorted(set(VERDICTS) - on_disk) == [], "VERDICTS names files that do not exist"
    assert len(VERDICTS) == 66


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_each_example_loads_or_is_refused_for_its_feature(name: str) -> None:
    expected = VERDICTS[name]
    found = our_problems(lambda: load_blueprint(example(name)))
    if expected is None:
        assert found is None
        blueprint = load_blueprint(example(name))
        assert blueprint.path == example(name)
        assert blueprint.definition == read_source(example(name))[0]
    else:
        assert found is not None, f"{name} loads, but should be refused for {expected}"
        assert any(str(expected) in message for message in found), found
        # refused only for what this runtime does not execute: every problem says so
        assert all(NOT_SUPPORTED in message for message in found), found


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_the_official_schema_agrees(name: str) -> None:
    data, _ = read_source(example(name))
    officially_valid = official().is_valid(data)
    found = our_problems(lambda: load_blueprint(example(name)))
    if not officially_valid:
        assert found is not None, f"the official schema rejects {name}; we must refuse it too"
    elif found is not None:  # valid DSL: refused only for a runtime feature, named in the table
        assert all(NOT_SUPPORTED in message for message in found), found
        assert VERDICTS[name] is not None


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_each_example_reads_the_same_as_json(name: str) -> None:
    data, _ = read_source(example(name))
    text = json.dumps(data, indent=2)
    found = our_problems(lambda: parse_blueprint(text, f"{name}.json"))
    assert (found is None) == (VERDICTS[name] is None)
    if found is None:
        assert parse_blueprint(text, "x.json").digest == load_blueprint(example(name)).digest


def _first_task(data: dict[str, Any]) -> dict[str, Any]:
    task: dict[str, Any] = next(iter(data["do"][0].values()))
    return task


def _no_name(data: dict[str, Any]) -> None:
    del data["document"]["name"]


def _unknown_task_property(data: dict[str, Any]) -> None:
    _first_task(data)["colour"] = "blue"


def _then_not_a_string(data: dict[str, Any]) -> None:
    _first_task(data)["then"] = 42


def _do_not_a_list(data: dict[str, Any]) -> None:
    data["do"] = {"only": data["do"][0]}


def _two_tasks_in_one_entry(data: dict[str, Any]) -> None:
    data["do"][0]["extra"] = {"wait": "PT1S"}


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "no document.name": _no_name,
    "an unknown task property": _unknown_task_property,
    "a then that is not a string": _then_not_a_string,
    "do as a mapping": _do_not_a_list,
    "two tasks in one entry": _two_tasks_in_one_entry,
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_what_the_official_schema_rejects_we_refuse(name: str, mutation: str) -> None:
    """Each example, broken in a way the official schema rejects: we refuse it too, and not only
    for a runtime feature."""
    data, _ = read_source(example(name))
    broken = copy.deepcopy(data)
    MUTATIONS[mutation](broken)
    assert not official().is_valid(broken), f"{mutation} should break {name}"
    found = our_problems(lambda: parse_blueprint(orjson.dumps(broken).decode(), f"{name}.json"))
    assert found is not None, f"{name} with {mutation} loads"
    assert any(NOT_SUPPORTED not in message for message in found), found
