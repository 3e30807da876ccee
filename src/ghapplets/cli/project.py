"""What every CLI command needs: find the project, load its config, open its data directory."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from ghapplets.backends import DB_FILE, Backends, open_backends
from ghapplets.cli.problems import as_text
from ghapplets.config.loader import CONFIG_FILE, LoadedConfig, config_from_env, load_config
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import (
    ConfigError,
    SecretBackendError,
    SecretBackendUnavailable,
    SecretKeyError,
    SecretsReadOnly,
    UnresolvedReference,
)

T = TypeVar("T")
console = Console(stderr=False, highlight=False)
errors = Console(stderr=True, highlight=False)

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_NOT_FOUND = 4
EXIT_RETRYABLE = 75  # EX_TEMPFAIL: try again later

ProjectOpt = typer.Option(
    None,
    "--project",
    "-p",
    help="Project folder or config file (default: current folder).",
    envvar="GHAPPLETS_CONFIG",
)
DataDirOpt = typer.Option(
    None,
    "--data-dir",
    help="Data folder (default: <project>/.ghapplets).",
    envvar="GHAPPLETS_DATA_DIR",
)
JsonOpt = typer.Option(False, "--json", help="Print JSON Lines for scripts.")


def literal(value: object) -> str:
    """``value`` (stored or given text: ids, types, subjects, error messages, names, statuses)
    ready to go into a Rich markup string: escaped, so ``[bold red]`` or ``[/]`` in it prints
    as it is and never raises a MarkupError. Such text meets markup only through here."""
    return escape("" if value is None else str(value))


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    # the message is plain text (paths, YAML, "[program, args...]"), never Rich markup, and is
    # not hard-wrapped at 80 columns, so scripts and CI logs can grep it
    errors.print(f"[bold red]error:[/] {literal(message)}", soft_wrap=True)
    raise typer.Exit(code)


def print_problems(exc: ConfigError) -> None:
    """One ``file:line:col: where: message`` line per problem, on stderr."""
    for problem in exc.problems:
        errors.print(f"[red]{literal(as_text(problem))}[/]", soft_wrap=True)


def project_root(project: Path | None) -> Path:
    root = (project or Path.cwd()).resolve()
    return root.parent if root.is_file() else root


def load(project: Path | None) -> LoadedConfig:
    path = (project or Path.cwd()).resolve()
    if path.is_dir() and not (path / CONFIG_FILE).exists():
        fail(f"no {CONFIG_FILE} in {path} (run 'ghapplets init' to create a project)", EXIT_CONFIG)
    try:
        return load_config(path)
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None


def data_dir(project: Path | None, explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit.resolve()
    return project_root(project) / ".ghapplets"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; a bad or wrong encryption key, an unresolvable ``${env:..}`` or
    ``${secret:..}`` reference and a secrets backend that refuses us are configuration errors
    (exit 3), a secrets backend that cannot answer a failure (1), a write to one that only
    reads a usage error (2): messages, not tracebacks."""
    try:
        return asyncio.run(coro)
    except SecretsReadOnly as exc:
        fail(str(exc), EXIT_USAGE)
    except SecretBackendUnavailable as exc:
        fail(str(exc), EXIT_FAILURE)
    except (SecretKeyError, UnresolvedReference, SecretBackendError) as exc:
        fail(str(exc), EXIT_CONFIG)


def project_config(project: Path | None) -> ProjectConfig:
    """The project's configuration; outside a project, the defaults and ``GHAPPLETS_*``."""
    path = (project or Path.cwd()).resolve()
    if path.is_file() or (path / CONFIG_FILE).exists():
        return load(project).config
    try:
        return config_from_env()
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None


@contextlib.asynccontextmanager
async def backends(
    project: Path | None, explicit: Path | None, *, create: bool = False
) -> AsyncIterator[Backends]:
    """The project's data; only commands that store something (``create``) may start it."""
    config = project_config(project)
    folder = data_dir(project, explicit)
    embedded = config.storage.backend == "sqlite"
    if embedded and not create and not (folder / DB_FILE).exists():
        fail(
            f"no Ghapplets data in {folder}: run 'ghapplets serve' or 'init' in the project "
            "first, or point --data-dir / --project at it",
            EXIT_NOT_FOUND,
        )
    async with open_backends(config, folder, create_key=create) as b:
        yield b


def with_backends(
    project: Path | None,
    explicit: Path | None,
    action: Callable[[Backends], Awaitable[T]],
    *,
    create: bool = False,
) -> T:
    """Open the project's data, run ``action`` on it, close it: one CLI query or change."""

    async def go() -> T:
        async with backends(project, explicit, create=create) as b:
            return await action(b)

    return run(go())


def print_json_lines(rows: list[dict[str, Any]]) -> None:
    out = sys.stdout.buffer
    for row in rows:
        out.write(orjson.dumps(row, default=str) + b"\n")
    out.flush()
