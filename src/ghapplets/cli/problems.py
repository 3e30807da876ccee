"""How the CLI shows a configuration problem, in each ``--format`` of ``ghapplets validate``.

The one place that turns a problem (a located :class:`~ghapplets.config.located.Problem`, or a
bare message) into text: ``file:line:col: key: message`` for people, a JSON object for scripts,
or a GitHub Actions workflow command (``::error file=..,line=..,col=..,title=..::message``)
that puts an annotation on the line in a pull request. A sans-I/O module: it formats, the
commands print.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ghapplets.config.located import Problem


class ProblemFormat(StrEnum):
    """How ``ghapplets validate`` reports: ``--format``."""

    TEXT = "text"  # file:line:col: key: message, one line each, on stderr
    JSON = "json"  # one JSON document on stdout: what was checked and every problem
    GITHUB = "github"  # GitHub Actions workflow commands on stdout, one per problem


@dataclass(frozen=True, slots=True)
class Located:
    """A problem's parts; ``file``, ``line`` and ``column`` are None when it has no place
    (a bare message, e.g. "no ghapplets.yaml in ...")."""

    file: str | None
    line: int | None
    column: int | None
    key: str
    message: str

    @classmethod
    def of(cls, problem: object) -> Located:
        if isinstance(problem, Problem):
            return cls(problem.file, problem.line, problem.column, problem.where, problem.message)
        return cls(None, None, None, "", str(problem))


def shown_path(file: str | os.PathLike[str], cwd: Path | None = None) -> str:
    """``file`` relative to ``cwd`` (default: the current folder, the repository root in CI)
    when it is inside it, else as given."""
    path = Path(file)
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to((cwd or Path.cwd()).resolve()))
    except ValueError:
        return str(path)


def as_text(problem: object) -> str:
    """``file:line:col: key: message`` (the file as the loader named it); a bare message as
    it is."""
    return str(problem)


def as_json(problem: object, cwd: Path | None = None) -> dict[str, Any]:
    """``{file, line, column, key, message}``; the file relative to ``cwd`` when possible."""
    p = Located.of(problem)
    return {
        "file": None if p.file is None else shown_path(p.file, cwd),
        "line": p.line,
        "column": p.column,
        "key": p.key,
        "message": p.message,
    }


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (``file=``, ``title=``...), escaped."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, **properties: object) -> str:
    """``::command key=value,...::message``; properties that are None or empty are left out."""
    props = ",".join(
        f"{name}={escape_property(str(value))}"
        for name, value in properties.items()
        if value is not None and value != ""
    )
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def as_github(problem: object, cwd: Path | None = None) -> str:
    """``::error file=<path>,line=<n>,col=<n>,title=<key>::<message>``: an annotation on that
    line of the pull request's diff (the path relative to ``cwd``, the repository root)."""
    p = Located.of(problem)
    file = None if p.file is None else shown_path(p.file, cwd)
    return workflow_command("error", p.message, file=file, line=p.line, col=p.column, title=p.key)
