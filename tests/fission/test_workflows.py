"""Blueprints as Fission Workflows: what maps onto which state, and what is refused (the first
task that does not map, by its JSON pointer, and why)."""

from __future__ import annotations

import textwrap

import pytest

from ghapplets.blueprints.loader import parse_blueprint
from ghapplets.fission.workflows import Refusal, compile_blueprint
from tests.fission import crds

FUNCTIONS = {"triage": "triage", "pager": "pager", "slack": "slack", "mail": "mail-fn"}
HEAD = """\
document: {dsl: '1.0.0', namespace: demo, name: flow, version: '0.1.0'}
"""

MAPPABLE = """\
document: {dsl: '1.0.0', namespace: demo, name: triage-flow, version: '0.1.0'}
timeout: {after: PT1H}
do:
  - classify:
      call: triage
      input: {from: '${ .issue }'}
  - route:
      switch:
        - urgent:
            when: .priority == "high" and .score > 3
            then: page
        - other:
            then: notify
  - page:
      try:
        - pageOnCall:
            call: pager
            timeout: {after: {seconds: 20}}
      catch:
        errors: {with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/communication}}
        retry:
          delay: PT2S
          backoff: {exponential: {}}
          limit: {attempt: {count: 4}}
      then: end
  - notify:
      fork:
        branches:
          - toSlack: {call: slack}
          - toMail:
              do:
                - first: {call: mail}
                - later: {wait: PT1M}
  - pause:
      wait: {seconds: 30, milliseconds: 500}
  - each:
      for: {each: ticket, in: .tickets}
      do:
        - handle:
            call: triage
            input: {from: '${ $ticket.body }'}
        - tell: {call: slack}
  - check:
      switch:
        - broken:
            when: .ok == false
            then: fail
        - fine:
            then: end
  - fail:
      raise:
        error: {type: https://example.com/errors/broken, status: 500}
"""


def compile_text(text: str, **kw: object) -> dict[str, object] | Refusal:
    blueprint = parse_blueprint(textwrap.dedent(text), "flow.yaml")
    return compile_blueprint(
        blueprint,
        FUNCTIONS,
        name="flow",
        namespace="apps",
        timeouts={"triage": 40},
        **kw,  # type: ignore[arg-type]
    )


def test_a_mappable_blueprint_becomes_a_valid_workflow() -> None:
    workflow = compile_text(MAPPABLE)
    assert isinstance(workflow, dict), workflow
    assert crds.problems(workflow) == []
    spec = workflow["spec"]
    assert isinstance(spec, dict)
    assert spec["startAt"] == "classify" and spec["timeout"] == "3600s"
    states = spec["states"]
    assert states["classify"] == {
        "type": "Task",
        "function": {"name": "triage", "type": "name"},
        "inputPath": "$.issue",
        "timeout": "40s",  # the applet's
        "next": "route",
    }
    assert states["route"] == {
        "type": "Choice",
        "choices": [
            {
                "and": [
                    {"variable": "$.priority", "stringEquals": "high"},
                    {"variable": "$.score", "numericGreaterThan": 3},
                ],
                "next": "pageOnCall",
            }
        ],
        "default": "notify",
    }
    assert states["pageOnCall"] == {
        "type": "Task",
        "function": {"name": "pager", "type": "name"},
        "timeout": "20s",  # the task's
        "retry": {"maxAttempts": 5, "backoffBase": "2s", "jitter": False},
        "end": True,  # then: end
    }
    notify = states["notify"]
    assert notify["type"] == "Parallel" and notify["next"] == "pause"
    assert notify["branches"] == [
        {"startAt": "toSlack", "states": {"toSlack": {
            "type": "Task", "function": {"name": "slack", "type": "name"}, "end": True}}},
        {"startAt": "first", "states": {
            "first": {"type": "Task", "function": {"name": "mail-fn", "type": "name"},
                      "next": "later"},
            "later": {"type": "Wait", "duration": "60s", "end": True}}},
    ]  # fmt: skip
    assert states["pause"] == {"type": "Wait", "duration": "30500ms", "next": "each"}
    each = states["each"]
    assert each["itemsPath"] == "$.tickets" and each["maxConcurrency"] == 1
    assert each["outputPath"] == "$[-1]" and each["next"] == "check"
    assert each["branches"][0]["states"]["handle"]["inputPath"] == "$.body"
    assert each["branches"][0]["states"]["tell"]["end"] is True
    assert states["check"]["choices"] == [
        {"variable": "$.ok", "booleanEquals": False, "next": "fail"}
    ]
    assert states["check"]["default"] == "done"
    assert states["done"] == {"type": "Succeed"} and states["fail"] == {"type": "Fail"}


def test_then_jumps_and_exit() -> None:
    workflow = compile_text(
        HEAD
        + """\
do:
  - first: {call: triage, then: third}
  - second: {call: slack}
  - third:
      do:
        - inner: {call: mail, then: exit}
        - skipped: {call: pager}
  - last: {call: slack, then: first}
"""
    )
    assert isinstance(workflow, dict), workflow
    assert crds.problems(workflow) == []
    states = workflow["spec"]["states"]  # type: ignore[index]
    assert states["first"]["next"] == "inner"
    assert states["second"]["next"] == "inner"
    assert states["inner"]["next"] == "last"  # exit leaves the do, which goes on
    assert states["skipped"]["next"] == "last"
    assert states["last"]["next"] == "first"


def test_state_names_are_valid_and_unique() -> None:
    workflow = compile_text(
        HEAD
        + """\
do:
  - "say hi!": {call: slack}
  - outer:
      do:
        - "say hi!": {call: mail}
"""
    )
    assert isinstance(workflow, dict), workflow
    states = workflow["spec"]["states"]  # type: ignore[index]
    assert list(states) == ["say-hi", "say-hi-2"]
    assert crds.problems(workflow) == []


@pytest.mark.parametrize(
    ("body", "pointer", "reason"),
    [
        (
            "  - fetch:\n      call: http\n      with: {method: get, endpoint: 'https://x'}\n",
            "/do/0/fetch/call",
            "call: http runs in Ghapplets",
        ),
        ("  - x: {call: triage, with: {a: 1}}\n", "/do/0/x/with", "with: builds"),
        ("  - x: {call: github.create_comment}\n", "/do/0/x/call", "connector action"),
        ("  - x: {call: deploy-fn}\n", "/do/0/x/call", "runs on the http runtime"),
        ("  - x: {call: nobody}\n", "/do/0/x/call", "no applet of that name"),
        ("  - x: {call: triage, if: '${ .a }'}\n", "/do/0/x/if", "a condition"),
        ("  - s: {set: {a: 1}}\n", "/do/0/s", "set builds data"),
        (
            "  - ok: {call: triage}\n  - e: {emit: {event: {with: {type: t, source: 'https://x/s'}}}}\n",
            "/do/1/e",
            "emit",
        ),
        (
            "  - l:\n      listen: {to: {one: {with: {type: t}}}}\n",
            "/do/0/l",
            "listen waits for events",
        ),
        (
            "  - r:\n      switch:\n        - a: {when: .n >= 3, then: end}\n",
            "/do/0/r/switch/0/a/when",
            "a Choice has no >=",
        ),
        (
            "  - f:\n      fork:\n        compete: true\n        branches:\n"
            "          - a: {call: triage}\n          - b: {call: slack}\n",
            "/do/0/f/fork/compete",
            "compete",
        ),
        (
            "  - f:\n      fork:\n        branches:\n          - a: {call: triage, then: end}\n"
            "          - b: {call: slack}\n",
            "/do/0/f/fork/branches/0/a/then",
            "a Fission branch can end only itself",
        ),
        (
            "  - f:\n      fork:\n        branches:\n          - a:\n              fork:\n"
            "                branches:\n                  - b: {call: slack}\n",
            "/do/0/f/fork/branches/0/a",
            "does not nest fan-out",
        ),
        (
            "  - each:\n      for: {in: .items}\n      do:\n        - h: {call: triage}\n",
            "/do/0/each/do/0/h",
            "must start with an applet call that takes the element",
        ),
        ("  - w: {wait: '${ .delay }'}\n", "/do/0/w/wait", "computed by an expression"),
        (
            "  - t:\n      try:\n        - c: {call: triage}\n      catch:\n"
            "        do:\n          - d: {call: slack}\n",
            "/do/0/t/catch/do",
            "a Fission catch hands its target the error",
        ),
        (
            "  - t:\n      try:\n        - c: {call: triage}\n      catch:\n"
            "        retry: {delay: PT1S, backoff: {linear: {}}, limit: {attempt: {count: 2}}}\n",
            "/do/0/t/catch/retry/backoff",
            "linear",
        ),
        (
            "  - t:\n      try:\n        - c: {call: triage}\n        - d: {call: slack}\n"
            "      catch:\n        retry: {limit: {attempt: {count: 2}}}\n",
            "/do/0/t/try",
            "retries the whole block",
        ),
        ("  - x: {call: triage, export: {as: '${ . }'}}\n", "/do/0/x/export", "no context"),
    ],
)
def test_what_does_not_map_is_refused_at_its_first_task(
    body: str, pointer: str, reason: str
) -> None:
    refusal = compile_text(
        HEAD + "do:\n" + body, not_exported={"deploy-fn": "it runs on the http runtime"}
    )
    assert isinstance(refusal, Refusal), refusal
    assert refusal.blueprint == "demo/flow" and refusal.version == "0.1.0"
    assert refusal.pointer == pointer, refusal
    assert reason in refusal.reason, refusal
    assert str(refusal).startswith("demo/flow 0.1.0: " + pointer)


def test_the_workflows_own_output_is_refused() -> None:
    refusal = compile_text(HEAD + "do:\n  - x: {call: triage}\noutput: {as: '${ .a }'}\n")
    assert isinstance(refusal, Refusal) and refusal.pointer == "/output/as"
