"""Applet discovery: find ``applet.yaml`` manifests, validate them with located errors.

This module owns turning folders into :class:`AppletSpec` objects. Every problem is reported as
``path/applet.yaml:LINE:COL: key: message``; :func:`discover` collects the problems of all
manifests and raises one :class:`ConfigError` listing them all.

Beyond the model's own validation it checks what a manifest refers to: the exec program inside
the folder exists and is executable, the Python entry file exists, ``when:`` conditions compile,
secret names map to distinct environment variables, ``${secrets.X}`` in http headers are
declared, and applet names are unique. With ``import_python=True`` (the default) Python applets
are imported: import errors are reported at ``entry:``, and an empty ``on:`` is filled with the
subscriptions of the module's ``@app.on(...)`` decorators (a non-empty ``on:`` wins for routing;
handlers still only see the events their own decorators select).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from ghapplets.applets.http_runtime import SECRET_REF
from ghapplets.applets.matching import compile_jq
from ghapplets.applets.model import AppletSpec, RetryPolicy, Subscription
from ghapplets.config.located import Locator, Problem, load_yaml, validate
from ghapplets.exceptions import ConfigError
from ghapplets.secrets.names import secret_env_name

MANIFEST = "applet.yaml"
_SKIP_DIRS = {"__pycache__", "node_modules"}


def manifest_paths(dirs: Sequence[Path]) -> tuple[list[Path], list[Problem]]:
    """The manifests in ``dirs`` (each dir itself and its direct sub-folders), in order."""
    found: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    for base in dirs:
        base = Path(base)
        if not base.is_dir():
            what = "is not a directory" if base.exists() else "not found"
            problems.append(Problem(str(base), 1, 1, "", f"applet directory {what}"))
            continue
        if (base / MANIFEST).is_file():
            add(base / MANIFEST)
        for sub in sorted(base.iterdir()):
            if sub.name.startswith(".") or sub.name in _SKIP_DIRS or not sub.is_dir():
                continue
            if (sub / MANIFEST).is_file():
                add(sub / MANIFEST)
    return found, problems


def _fix_on_key(data: Any, locator: Locator) -> Any:
    """YAML 1.1 reads a bare ``on:`` key as ``True``; give it its name back."""
    if isinstance(data, dict) and True in data and "on" not in data:
        data = {("on" if k is True else k): v for k, v in data.items()}
        for loc in [loc for loc in locator.marks if loc[:1] == (True,)]:
            locator.marks[("on", *loc[1:])] = locator.marks.pop(loc)
    return data


def _polish(problem: Problem, data: Any, locator: Locator) -> Problem:
    """Friendlier messages: no pydantic prefixes, model-level errors at ``runtime:``, and a
    suggestion for misspelt keys."""
    message = problem.message.removeprefix("Value error, ")
    where, line, col = problem.where, problem.line, problem.column
    if not where and isinstance(data, dict) and "runtime" in data:
        where = "runtime"
        line, col = locator.find(("runtime",))
    if message == "Extra inputs are not permitted":
        parts = where.split(".")
        fields = RetryPolicy.model_fields if parts[:1] == ["retry"] else AppletSpec.model_fields
        close = difflib.get_close_matches(parts[-1], [f for f in fields if f != "folder"], 1)
        message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    return Problem(problem.file, line, col, where, message)


def _check(spec: AppletSpec, locator: Locator) -> list[Problem]:
    """Checks on what the manifest refers to (files, jq programs, secret names)."""
    problems: list[Problem] = []
    folder = spec.folder or Path.cwd()
    for i, sub in enumerate(spec.on):
        if sub.when is not None:
            try:
                compile_jq(sub.when)
            except ValueError as exc:
                problems.append(locator.problem(("on", i, "when"), f"invalid jq: {exc}"))
    env_names: dict[str, str] = {}
    for i, name in enumerate(spec.secrets):
        other = env_names.setdefault(secret_env_name(name), name)
        if other != name:
            problems.append(
                locator.problem(
                    ("secrets", i), f"{name!r} and {other!r} both map to {secret_env_name(name)}"
                )
            )
    if spec.runtime == "exec" and spec.command:
        program = spec.command[0]
        path = folder / program
        local = not os.path.isabs(program) and ("/" in program or path.exists())
        if local and not path.is_file():
            problems.append(locator.problem(("command", 0), f"{program!r} not found in {folder}"))
        elif local and not os.access(path, os.X_OK):
            problems.append(
                locator.problem(
                    ("command", 0),
                    f"{program!r} is not executable: chmod +x it, or put its interpreter first "
                    f"(command: [python3, {program}])",
                )
            )
    if spec.runtime == "http":
        for key, value in spec.headers.items():
            for ref in SECRET_REF.findall(value):
                if ref not in spec.secrets:
                    problems.append(
                        locator.problem(
                            ("headers", key), f"uses secret {ref!r}, which is not in 'secrets:'"
                        )
                    )
    return problems


def _python_problems(spec: AppletSpec, locator: Locator) -> list[Problem]:
    from ghapplets.applets.python_runtime import EntryError

    try:
        subs = load_python_subscriptions(spec)
    except EntryError as exc:
        return [locator.problem(("entry",), str(exc))]
    problems = []
    for sub in subs:
        if sub.when is not None:
            try:
                compile_jq(sub.when)
            except ValueError as exc:
                problems.append(
                    locator.problem(
                        ("entry",), f"@on({sub.type!r}, when={sub.when!r}): invalid jq: {exc}"
                    )
                )
    if not spec.on and not problems:
        spec.on = subs
    return problems


def _load(path: Path, import_python: bool) -> tuple[AppletSpec | None, Locator, list[Problem]]:
    try:
        data, locator = load_yaml(path)
    except ConfigError as exc:
        return None, Locator(str(path)), exc.problems
    data = _fix_on_key(data, locator)
    try:
        spec = validate(AppletSpec, data, locator)
    except ConfigError as exc:
        polished = [_polish(p, data, locator) for p in exc.problems]
        return None, locator, sorted(polished, key=lambda p: (p.line, p.column))
    spec.folder = path.parent.resolve()
    problems = _check(spec, locator)
    if spec.runtime == "python" and import_python and not problems:
        problems = _python_problems(spec, locator)
    return spec, locator, problems


def load_manifest(path: Path, *, import_python: bool = True) -> AppletSpec:
    """Load one ``applet.yaml`` (or the folder holding it). Raises :class:`ConfigError`."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    spec, _, problems = _load(path, import_python)
    if problems or spec is None:
        raise ConfigError(problems)
    return spec


def load_python_subscriptions(spec: AppletSpec) -> list[Subscription]:
    """Import a Python applet's entry (once per process) and return the subscriptions of its
    handlers. Raises :class:`~ghapplets.applets.python_runtime.EntryError`."""
    from ghapplets.applets.python_runtime import load_applet

    return load_applet(spec).subscriptions


def discover(
    dirs: Sequence[Path],
    *,
    import_python: bool = True,
    connectors: Collection[str] | None = None,
) -> list[AppletSpec]:
    """Every applet in ``dirs``, in a stable order. Raises one :class:`ConfigError` with all
    problems of all manifests (a missing dir, duplicate names and, when the project's
    ``connectors`` are given, a manifest naming another included)."""
    paths, problems = manifest_paths(dirs)
    specs: list[AppletSpec] = []
    first: dict[str, Path] = {}
    for path in paths:
        spec, locator, found = _load(path, import_python)
        problems.extend(found)
        if spec is None:
            continue
        if spec.name in first:
            problems.append(
                locator.problem(
                    ("name",), f"duplicate applet name {spec.name!r} (also in {first[spec.name]})"
                )
            )
            continue
        first[spec.name] = path
        for i, name in enumerate(spec.connectors):
            if connectors is not None and name not in connectors:
                known = ", ".join(sorted(connectors)) or "none"
                found.append(
                    locator.problem(
                        ("connectors", i),
                        f"no connector named {name!r} in ghapplets.yaml (it has: {known})",
                    )
                )
                problems.append(found[-1])
        if not found:
            specs.append(spec)
    if problems:
        raise ConfigError(problems)
    return specs
