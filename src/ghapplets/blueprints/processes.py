"""``run`` tasks: a shell command, a script (Python or JavaScript), another blueprint.

The command of ``run.shell`` is the blueprint author's text, run by ``/bin/sh -c`` as it is:
data never goes into it. Data reaches the process only as ``arguments`` (``$1``, ``$2``...),
``stdin`` and ``environment``, whose expressions are evaluated on the task input. A script is
written to a private temporary file and run by ``python3`` or ``node``, its arguments after it.

``return`` picks the output: ``stdout`` (the default), ``stderr``, ``code``, ``all`` (``{code,
stdout, stderr}``) or ``none``. A process that exits non-zero faults the task with a runtime
error, unless the task returns ``code`` or ``all``: then the status is data for the blueprint.
With ``await: false`` the process is started and the task goes on with its input as output.

``run.workflow`` runs another blueprint of the project as a subflow, in this run: its steps are
journaled under the task's key, so a resumed run resumes inside the subflow too.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ghapplets.blueprints.calls import fetch
from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.blueprints.host import ProcessResult, ProcessSpec

if TYPE_CHECKING:
    from ghapplets.blueprints.engine import Outcome, Run, Step

SHELL = "/bin/sh"
_ESM = re.compile(r"^\s*(import\s|export\s)", re.MULTILINE)


async def run_process(run: Run, step: Step) -> Outcome:
    from ghapplets.blueprints.engine import Outcome

    spec = step.task["run"]
    if "workflow" in spec:
        return Outcome(await _subflow(run, step, spec["workflow"]))
    variables = run.variables(step)
    wait = spec.get("await", True) is not False
    returns = spec.get("return", "stdout")
    if "shell" in spec:
        shell = spec["shell"]
        argv = [SHELL, "-c", str(shell["command"]), "sh", *_arguments(run, step, shell, variables)]
        result = await _start(run, step, argv, shell, variables, wait)
    else:
        script = spec["script"]
        code = await _script_code(run, step, script)
        with tempfile.TemporaryDirectory(prefix="ghapplets-script-") as folder:
            program, path = _interpreter(str(script["language"]), code, Path(folder))
            path.write_text(code, encoding="utf-8")
            argv = [program, str(path), *_arguments(run, step, script, variables)]
            result = await _start(run, step, argv, script, variables, wait)
    if result is None:
        return Outcome(step.input)
    if result.code != 0 and returns not in ("code", "all"):
        raise raise_error(
            ErrorKind.RUNTIME,
            f"the process exited with status {result.code}: {result.stderr[-500:].strip()}",
        )
    outputs: dict[str, Any] = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "code": result.code,
        "all": {"code": result.code, "stdout": result.stdout, "stderr": result.stderr},
        "none": None,
    }
    return Outcome(outputs[returns])  # one of these: the loader refuses any other


def _arguments(
    run: Run, step: Step, spec: Mapping[str, Any], variables: Mapping[str, Any]
) -> list[str]:
    values = run.render(spec.get("arguments") or [], step.input, variables)
    return [_text(v) for v in values]  # a list: the loader refuses anything else


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


async def _start(
    run: Run,
    step: Step,
    argv: list[str],
    spec: Mapping[str, Any],
    variables: Mapping[str, Any],
    wait: bool,
) -> ProcessResult | None:
    stdin = None
    if "stdin" in spec:
        stdin = _text(run.render(spec["stdin"], step.input, variables)).encode()
    environment = {
        str(k): _text(v)
        for k, v in (run.render(spec.get("environment") or {}, step.input, variables)).items()
    }
    result = await run.host.run_process(ProcessSpec(argv, stdin, environment, None, wait))
    return result if wait else None


async def _script_code(run: Run, step: Step, script: Mapping[str, Any]) -> str:
    if "code" in script:
        return str(script["code"])
    source = script.get("source") or {}
    content = await fetch(run, step, source.get("endpoint"), "the script")
    return content.decode("utf-8", "replace")


def _interpreter(language: str, code: str, folder: Path) -> tuple[str, Path]:
    if language == "python":
        return shutil.which("python3") or sys.executable, folder / "script.py"
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise raise_error(
            ErrorKind.CONFIGURATION,
            "JavaScript scripts need Node.js (node) on the PATH of the worker",
        )
    suffix = ".mjs" if _ESM.search(code) else ".cjs"
    os.chmod(folder, 0o700)
    return node, folder / f"script{suffix}"


async def _subflow(run: Run, step: Step, spec: Mapping[str, Any]) -> Any:
    from ghapplets.blueprints.engine import Run as SubRun

    namespace, name, version = (str(spec[k]) for k in ("namespace", "name", "version"))
    try:  # the DSL requires all three (``version`` may be ``latest``)
        program = run.host.subflow(namespace, name, version)
    except LookupError as exc:
        raise raise_error(
            ErrorKind.CONFIGURATION, f"no blueprint {namespace}/{name} version {version}"
        ) from exc
    data = step.input
    if "input" in spec:
        data = run.render(spec["input"], step.input, run.variables(step))
    child = SubRun(
        program,
        run.host,
        input=data,
        started_at=step.started_at,
        runtime_version=run.runtime_version,
        key_prefix=f"{step.key}/workflow",
        secrets=await run.host.secrets(program.secret_names),
    )
    return await child.execute()
