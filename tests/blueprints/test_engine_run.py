"""run tasks (real processes: shell, Python and JavaScript scripts; subflows) and resuming
after a crash at every task."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from ghapplets.blueprints.errors import ErrorKind
from ghapplets.blueprints.host import VirtualClock
from ghapplets.blueprints.loader import parse_blueprint
from ghapplets.blueprints.local import LocalHost, execute
from ghapplets.blueprints.program import Program
from ghapplets.testing.blueprints import BlueprintHarness
from tests.blueprints.conftest import blueprint


def test_shell_gets_stdin_arguments_and_environment(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - setInput:
                  set:
                    message: Hello World
              - runShell:
                  input:
                    from: ${ .message }
                  run:
                    shell:
                      stdin: ${ . }
                      command: |
                        input=$(cat)
                        echo "STDIN was: $input"
                        echo "ARGS are $1 $2 and $GREETING"
                      arguments:
                        - Foo
                        - ${ "B" + "ar" }
                      environment:
                        GREETING: ${ "hi" }
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == "STDIN was: Hello World\nARGS are Foo Bar and hi"


def test_shell_arguments_are_never_interpreted_by_the_shell(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - echo:
                  run:
                    shell:
                      command: printf '%s' "$1"
                      arguments:
                        - ${ .evil }
        """),
        {"evil": "$(echo pwned); `id`"},
    )
    assert report.output == "$(echo pwned); `id`"


def test_shell_return_modes_and_exit_status(harness: BlueprintHarness) -> None:
    def shell(returns: str) -> str:
        return blueprint(f"""
            do:
              - fail:
                  run:
                    shell:
                      command: echo out; echo err >&2; exit 3
                    return: {returns}
        """)

    assert harness.run(shell("code")).output == 3
    assert harness.run(shell("all")).output == {"code": 3, "stdout": "out", "stderr": "err"}
    faulted = harness.run(shell("stdout"))
    assert faulted.status == "faulted"
    assert faulted.error["type"] == ErrorKind.RUNTIME.type
    assert "status 3" in faulted.error["detail"]
    ok = harness.run(
        blueprint("""
            do:
              - quiet:
                  run:
                    shell:
                      command: echo hidden
                    return: none
        """)
    )
    assert ok.output is None


def test_shell_environment_is_scrubbed(harness: BlueprintHarness, monkeypatch) -> None:
    monkeypatch.setenv("GHAPPLETS_SECRET_LEAK", "no")
    report = harness.run(
        blueprint("""
            do:
              - env:
                  run:
                    shell:
                      command: echo "[${GHAPPLETS_SECRET_LEAK:-}]"
        """)
    )
    assert report.output == "[]"


def test_python_script(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - py:
                  run:
                    script:
                      language: python
                      arguments: [a, b]
                      stdin: ${ .text }
                      environment:
                        FOO: bar
                      code: |
                        import os, sys
                        print(sys.argv[1:], sys.stdin.read(), os.environ["FOO"])
        """),
        {"text": "in"},
    )
    assert report.status == "completed", report.error
    assert report.output == "['a', 'b'] in bar"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_javascript_module_script(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - js:
                  run:
                    script:
                      language: javascript
                      stdin: Hello Workflow
                      environment:
                        foo: bar
                      arguments:
                        - hello
                      code: |
                        import { readFileSync } from 'node:fs';
                        const stdin = readFileSync(process.stdin.fd, 'utf8');
                        const [_, __, arg] = process.argv;
                        console.log(`${stdin}|${arg}|${process.env.foo}`);
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == "Hello Workflow|hello|bar"


def test_subflow_runs_with_its_input_and_returns_its_output(harness: BlueprintHarness) -> None:
    harness.subflow(
        blueprint(
            """
            input:
              from: ${ .n }
            do:
              - double:
                  set: ${ . * 2 }
            """,
            name="doubler",
        )
    )
    report = harness.run(
        blueprint("""
            do:
              - child:
                  run:
                    workflow:
                      namespace: test
                      name: doubler
                      version: '0.1.0'
                      input:
                        n: ${ .value }
              - after:
                  set: ${ . + 1 }
        """),
        {"value": 20},
    )
    assert report.status == "completed", report.error
    assert report.output == 41
    assert [t.name for t in report.tasks] == ["double", "child", "after"]


CHAIN = blueprint("""
    do:
      - first:
          call: step
          with:
            n: 1
      - wait:
          wait: PT1M
      - loop:
          for:
            in: ${ [1, 2] }
          do:
            - each:
                call: jira.create_issue
                with:
                  i: ${ $item }
      - guarded:
          try:
            - flaky:
                call: flaky
          catch:
            retry:
              delay: PT1S
              limit:
                attempt:
                  count: 3
      - last:
          call: step
          with:
            n: 2
""")


def _mock_chain(harness: BlueprintHarness) -> None:
    failures = {"left": 1}

    def flaky(data):
        if failures["left"]:
            failures["left"] -= 1
            from ghapplets.blueprints.errors import raise_error

            raise raise_error(ErrorKind.COMMUNICATION, "down", status=503)
        return "fine"

    harness.mock_applet("step", lambda data: {"step": data["n"]})
    harness.mock_applet("flaky", flaky)
    harness.mock_action("jira.create_issue", lambda data: {"issue": data["i"]})


def test_a_clean_run_of_the_crash_chain(harness: BlueprintHarness) -> None:
    _mock_chain(harness)
    report = harness.run(CHAIN)
    assert report.status == "completed", report.error
    assert report.output == {"step": 2}
    assert len(harness.calls) == 6  # step, 2 issues, flaky twice, step


@pytest.mark.parametrize("crash_after", range(1, 10))
def test_a_crash_after_any_task_resumes_with_the_same_output_and_effects(
    crash_after: int, tmp_path
) -> None:
    clean = BlueprintHarness(tmp_path)
    _mock_chain(clean)
    expected = clean.run(CHAIN)
    crashed = BlueprintHarness(tmp_path)
    _mock_chain(crashed)
    report = crashed.run(CHAIN, crash_after=crash_after)
    assert report.status == "completed", report.error
    assert report.output == expected.output
    assert [(c.kind, c.name, c.data) for c in crashed.calls] == [
        (c.kind, c.name, c.data) for c in clean.calls
    ]
    assert [t.name for t in report.tasks] == [t.name for t in expected.tasks]


def test_a_script_read_from_its_source(harness: BlueprintHarness) -> None:
    harness.mock_http("GET", "https://scripts.example/hello.py", "print('from the source')")
    report = harness.run(
        blueprint("""
            do:
              - py:
                  run:
                    script:
                      language: python
                      source:
                        endpoint: https://scripts.example/hello.py
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == "from the source"
    harness.mock_http("GET", "https://scripts.example/missing.py", "no", status=404)
    missing = harness.run(
        blueprint("""
            do:
              - py:
                  run:
                    script:
                      language: python
                      source:
                        endpoint: https://scripts.example/missing.py
        """)
    )
    assert missing.error["status"] == 404
    assert missing.error["type"] == ErrorKind.COMMUNICATION.type


def test_a_wait_given_by_an_expression_waits_what_it_evaluates_to(
    harness: BlueprintHarness,
) -> None:
    started = harness.clock.now()
    woke: list[float] = []

    def tick(data: object) -> dict[str, bool]:
        woke.append(harness.clock.now())
        return {"ok": True}

    harness.mock_applet("tick", tick)
    report = harness.run(
        blueprint("""
            do:
              - pause:
                  wait: "${ {seconds: (.pause + $input.extra)} }"
              - after:
                  call: tick
        """),
        {"pause": 90, "extra": 5},
    )
    assert report.status == "completed", report.error
    assert woke == [started + 95]


def test_a_wait_whose_expression_is_no_duration_faults_at_its_task(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(
        blueprint("""
            do:
              - pause:
                  wait: ${ "soon" }
        """),
        {},
    )
    assert report.status == "faulted"
    assert report.error["instance"] == "/do/0/pause"


LOOKER = blueprint(
    """
    use:
      secrets: [token]
    do:
      - look:
          set:
            got: ${ . }
            secret: ${ $secrets.token }
            runtime: ${ $runtime.version }
    """,
    name="looker",
)


def test_a_subflow_without_input_gets_the_tasks_and_its_own_secrets(
    harness: BlueprintHarness,
) -> None:
    harness.secrets["token"] = "s3cret-for-the-subflow"
    harness.subflow(LOOKER)
    report = harness.run(
        blueprint("""
            do:
              - child:
                  run:
                    workflow:
                      namespace: test
                      name: looker
                      version: '0.1.0'
        """),
        {"v": 1},
    )
    assert report.status == "completed", report.error
    assert report.output["got"] == {"v": 1}
    assert report.output["secret"] == "s3cret-for-the-subflow"
    assert [t.key for t in report.tasks] == ["/do/0/child/workflow/do/0/look", "/do/0/child"]


def test_a_subflow_runs_on_the_parents_runtime_and_reads_its_task() -> None:
    def program(text: str) -> Program:
        return Program(parse_blueprint(text, "<test>").definition)

    host = LocalHost(clock=VirtualClock(), blueprints=[program(LOOKER)], secrets={"token": "t"})
    parent = program(
        blueprint("""
            do:
              - child:
                  run:
                    workflow:
                      namespace: test
                      name: looker
                      version: latest
                      input:
                        who: ${ $task.name }
        """)
    )
    report = asyncio.run(execute(parent, host, {}, runtime_version="9.8.7"))
    assert report.status == "completed", report.error
    assert report.output == {"got": {"who": "child"}, "secret": "t", "runtime": "9.8.7"}


def test_an_unknown_subflow_is_a_configuration_error(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - child:
                  run:
                    workflow:
                      namespace: test
                      name: missing
                      version: '1.0.0'
        """)
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.CONFIGURATION.type
    assert report.error["detail"] == "no blueprint test/missing version 1.0.0"
    assert report.error["instance"] == "/do/0/child"
