"""run tasks (real processes: shell, Python and JavaScript scripts; subflows) and resuming
after a crash at every task."""

from __future__ import annotations

import asyncio
import gc
import shutil
import time

import orjson
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


def test_shell_arguments_are_text_positional_parameters_after_sh(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(
        blueprint("""
            do:
              - echo:
                  run:
                    shell:
                      command: printf '%s|%s|%s|%s|%s' "$0" "$1" "$2" "$3" "$NAME"
                      arguments:
                        - ${ $task.name }
                        - ${ .count }
                        - ${ .labels }
                      environment:
                        NAME: ${ .name }
        """),
        {"count": 3, "labels": {"a": 1}, "name": "Ada"},
    )
    assert report.status == "completed", report.error
    assert report.output == 'sh|echo|3|{"a":1}|Ada'


def test_shell_return_stderr(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - noisy:
                  run:
                    shell:
                      command: echo out; echo err >&2
                    return: stderr
        """)
    )
    assert report.output == "err"


def test_a_failed_process_reports_the_end_of_its_stderr(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - fail:
                  run:
                    shell:
                      command: printf 'a%.0s' $(seq 700) >&2; printf 'b%.0s' $(seq 500) >&2; exit 2
        """)
    )
    assert report.status == "faulted"
    assert report.error["detail"] == "the process exited with status 2: " + "b" * 500
    assert report.error["instance"] == "/do/0/fail"


# the process outlives the run's event loop, whose transport for it is collected with a warning
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_process_not_awaited_passes_the_input_on_and_runs_on(
    harness: BlueprintHarness, tmp_path
) -> None:
    """``await: false``: the task ends at once, with its input; the process goes on alone (it
    waits here for a file the test writes only after the run has ended)."""
    go, done, gave_up = tmp_path / "go", tmp_path / "done", tmp_path / "gave-up"
    report = harness.run(
        blueprint(f"""
            do:
              - start:
                  run:
                    shell:
                      command: >-
                        for i in $(seq 200); do [ -e {go} ] && touch {done} && exit 0;
                        sleep 0.05; done; touch {gave_up}
                    await: false
        """),
        {"kept": True},
    )
    assert report.status == "completed", report.error
    assert report.output == {"kept": True}
    assert not gave_up.exists()  # the run did not wait for the process
    go.touch()
    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done.exists()
    gc.collect()  # here, under this test's filter


def test_a_python_script_runs_from_a_private_folder_of_its_own(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(
        blueprint("""
            do:
              - where:
                  run:
                    script:
                      language: python
                      code: |
                        import os
                        folder = os.path.dirname(os.path.abspath(__file__))
                        print(os.path.basename(__file__), os.path.basename(folder).split("-")[:2],
                              oct(os.stat(folder).st_mode & 0o777), "é")
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == "script.py ['ghapplets', 'script'] 0o700 é"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize(
    ("code", "suffix"),
    [
        ("import os from 'node:os';\nconsole.log(process.argv[1]);", ".mjs"),
        ("const os = require('node:os');\nconsole.log(process.argv[1]);", ".cjs"),
    ],
)
def test_a_javascript_script_is_a_module_when_it_imports(
    harness: BlueprintHarness, code: str, suffix: str
) -> None:
    report = harness.run(
        blueprint(f"""
            do:
              - js:
                  run:
                    script:
                      language: javascript
                      code: {orjson.dumps(code).decode()}
        """)
    )
    assert report.status == "completed", report.error
    assert report.output.endswith("/script" + suffix)


def test_javascript_without_node_is_a_configuration_error(
    harness: BlueprintHarness, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no node here
    report = harness.run(
        blueprint("""
            do:
              - js:
                  run:
                    script:
                      language: javascript
                      code: console.log(1)
        """)
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.CONFIGURATION.type
    assert report.error["detail"] == (
        "JavaScript scripts need Node.js (node) on the PATH of the worker"
    )


def test_nodejs_is_taken_when_node_is_not_there(
    harness: BlueprintHarness, monkeypatch, tmp_path
) -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed")
    (tmp_path / "nodejs").symlink_to(node)
    monkeypatch.setenv("PATH", str(tmp_path))
    report = harness.run(
        blueprint("""
            do:
              - js:
                  run:
                    script:
                      language: javascript
                      code: console.log("from nodejs")
        """)
    )
    assert report.output == "from nodejs"


def test_a_script_source_is_read_as_utf8_and_a_bad_byte_replaced(
    harness: BlueprintHarness,
) -> None:
    harness.mock_http("GET", "https://scripts.example/odd.py", b"print('caf\xc3\xa9') # \xff\n")
    harness.mock_http("GET", "https://scripts.example/gone.py", "", status=404)

    def script(name: str) -> str:
        return blueprint(f"""
            do:
              - fetched:
                  run:
                    script:
                      language: python
                      source:
                        endpoint: https://scripts.example/{name}
        """)

    assert harness.run(script("odd.py")).output == "café"
    report = harness.run(script("gone.py"))
    assert report.status == "faulted"
    assert report.error["detail"] == "the script https://scripts.example/gone.py answered 404"


def test_node_is_found_by_its_own_name_and_runs_from_a_private_folder(
    harness: BlueprintHarness, monkeypatch, tmp_path
) -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed")
    (tmp_path / "node").symlink_to(node)
    monkeypatch.setenv("PATH", str(tmp_path))  # "node" only, no "nodejs"
    report = harness.run(
        blueprint("""
            do:
              - js:
                  run:
                    script:
                      language: javascript
                      code: |
                        const mode = require('fs').statSync(__dirname).mode;
                        console.log((mode & 0o777).toString(8));
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == "700"
