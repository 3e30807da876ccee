"""Loading blueprints: a file (or text) into a :class:`Blueprint`, or into located problems.

This module owns the pipeline and its result. :func:`load_blueprint` and :func:`parse_blueprint`
read one file (:mod:`.source`), validate it against the DSL models (:mod:`.model`), then run the
semantic checks (:mod:`.checks`); :func:`load_blueprints` does so for every blueprint file of
some folders and also refuses two blueprints with the same namespace, name and version. Every
problem found is reported, as ``file:line:col: key.path: message``, in one
:class:`~ghapplets.exceptions.BlueprintInvalid`.

A :class:`Blueprint` keeps the definition exactly as read (plain data: the engine runs that) and
its digest, the SHA-256 of its canonical JSON (sorted keys), which names this exact definition.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ghapplets.blueprints.checks import Catalog, check_workflow
from ghapplets.blueprints.model import Workflow, file_path
from ghapplets.blueprints.model_base import Closed
from ghapplets.blueprints.source import SourceLocator, is_json_file, parse_source, read_source
from ghapplets.config.located import Locator, Problem
from ghapplets.exceptions import BlueprintInvalid

SUFFIXES = (".yaml", ".yml", ".json")
_SKIP_DIRS = {"__pycache__", "node_modules"}


@dataclass(frozen=True)
class Blueprint:
    """A valid blueprint. ``definition`` is the file's data as read; ``digest`` the hex SHA-256
    of its canonical JSON; ``locator`` finds the line and column of any key path in it."""

    namespace: str
    name: str
    version: str
    dsl: str
    path: Path | None
    definition: dict[str, Any]
    digest: str
    locator: Locator

    @property
    def key(self) -> tuple[str, str, str]:
        """What names a blueprint: (namespace, name, version)."""
        return (self.namespace, self.name, self.version)

    def __hash__(self) -> int:  # the definition is a dict: hash what names this exact one
        return hash((self.key, self.digest))


class Versioned(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...


V = TypeVar("V", bound=Versioned)


def pick_version(found: Sequence[V], namespace: str, name: str, version: str) -> V:
    """The blueprint of ``found`` that a reference ``namespace/name@version`` means: that exact
    version, or for ``latest`` the highest by semantic version precedence (1.10.0 after 1.9.0,
    a pre-release before its release). LookupError when there is none."""
    named = [b for b in found if (b.namespace, b.name) == (namespace, name)]
    if version != "latest":
        named = [b for b in named if b.version == version]
    if not named:
        raise LookupError(f"{namespace}/{name}@{version}")
    return max(named, key=lambda b: _precedence(b.version))


def _precedence(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:  # not PEP 440 either: after none of those, by text among its kind
        return (0, version)


def digest(definition: Any) -> str:
    """The hex SHA-256 of ``definition`` as canonical JSON (orjson, sorted keys)."""
    return hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- schema problems ---------------------------------------------------------------------------


def _properties(model: type[BaseModel]) -> set[str]:
    names = {info.alias or name for name, info in model.model_fields.items()}
    for sub in model.__subclasses__():
        names |= _properties(sub)
    return names


_PROPERTIES = sorted(_properties(Closed))  # every property the DSL has, for "did you mean"


def _got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return "a mapping" if isinstance(value, dict) else "a list"


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


def _message(error: ErrorDetails, key: str | int | None) -> str:
    kind = error["type"]
    if kind == "missing":
        return f"missing required property {key!r}"
    if kind == "extra_forbidden":
        if key in _PROPERTIES:
            return f"property {key!r} is not allowed here"
        close = difflib.get_close_matches(str(key), _PROPERTIES, 1)
        return f"unknown property {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind in _EXPECTED:
        value = error.get("input")
        quote = kind == "string_type" and isinstance(value, bool | int | float)
        hint = ": quote it" if quote else ""
        return f"expected {_EXPECTED[kind]}, got {_got(value)}{hint}"
    if kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected", "")
        return f"must be {expected}, not {_got(error.get('input'))}"
    return error["msg"].removeprefix("Value error, ")


def _schema_problems(data: Any, locator: Locator) -> list[Problem]:
    if data is None:
        return [locator.problem((), "the file is empty: a blueprint needs document and do")]
    try:
        Workflow.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = file_path(error["loc"])
            problems.append(locator.problem(loc, _message(error, loc[-1] if loc else None)))
        return problems
    return []


# --- one blueprint -----------------------------------------------------------------------------


def _problems(data: Any, locator: SourceLocator, catalog: Catalog | None) -> list[Problem]:
    problems = _schema_problems(data, locator)
    if not problems:
        problems = check_workflow(data, locator, catalog)
    return sorted(problems, key=lambda p: (p.line, p.column, p.where, p.message))


def _build(data: dict[str, Any], locator: Locator, path: Path | None) -> Blueprint:
    document = data["document"]
    return Blueprint(
        namespace=document["namespace"],
        name=document["name"],
        version=document["version"],
        dsl=document["dsl"],
        path=path,
        definition=data,
        digest=digest(data),
        locator=locator,
    )


def _blueprint(
    data: Any, locator: SourceLocator, path: Path | None, catalog: Catalog | None
) -> Blueprint:
    problems = _problems(data, locator, catalog)
    if problems:
        raise BlueprintInvalid(problems)
    return _build(data, locator, path)


def parse_blueprint(text: str, file: str, catalog: Catalog | None = None) -> Blueprint:
    """The blueprint in ``text`` (JSON when ``file`` ends in ``.json``, else YAML 1.2); ``file``
    names it in problems. Raises :class:`BlueprintInvalid` listing every problem."""
    data, locator = parse_source(text, file, json_syntax=is_json_file(file))
    return _blueprint(data, locator, None, catalog)


def load_blueprint(path: Path, catalog: Catalog | None = None) -> Blueprint:
    """The blueprint in the file at ``path``. Raises :class:`BlueprintInvalid` listing every
    problem."""
    path = Path(path)
    data, locator = read_source(path)
    return _blueprint(data, locator, path, catalog)


# --- folders of blueprints ---------------------------------------------------------------------


def blueprint_paths(folders: Sequence[Path]) -> tuple[list[Path], list[Problem]]:
    """The blueprint files (``*.yaml``, ``*.yml``, ``*.json``) in ``folders`` and their
    sub-folders, in sorted order; hidden files and folders are skipped."""
    found: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def visit(folder: Path) -> None:
        real = folder.resolve()
        if real in seen:
            return
        seen.add(real)
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if entry.name not in _SKIP_DIRS:
                    visit(entry)
            elif entry.suffix.lower() in SUFFIXES and entry.is_file():
                if entry.resolve() not in seen:
                    seen.add(entry.resolve())
                    found.append(entry)

    for folder in map(Path, folders):
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "not found"
            problems.append(Problem(str(folder), 1, 1, "", f"blueprint folder {what}"))
            continue
        visit(folder)
    return found, problems


def _identity(data: Any) -> tuple[str, str, str] | None:
    document = data.get("document") if isinstance(data, dict) else None
    if not isinstance(document, dict):
        return None
    parts = (document.get("namespace"), document.get("name"), document.get("version"))
    if all(isinstance(part, str) for part in parts):
        return (str(parts[0]), str(parts[1]), str(parts[2]))
    return None


def load_blueprints(folders: Sequence[Path], catalog: Catalog | None = None) -> list[Blueprint]:
    """Every blueprint in ``folders``, in path order. ``run.workflow`` may name a blueprint of
    the catalog or one of these. Raises one :class:`BlueprintInvalid` with the problems of all
    files, and a problem for each blueprint whose (namespace, name, version) another has."""
    paths, problems = blueprint_paths(folders)
    read: list[tuple[Path, Any, SourceLocator]] = []
    for path in paths:
        try:
            data, locator = read_source(path)
        except BlueprintInvalid as exc:
            problems.extend(exc.problems)
            continue
        read.append((path, data, locator))
    if catalog is not None and catalog.blueprints is not None:
        here = {key for _, data, _ in read if (key := _identity(data)) is not None}
        catalog = Catalog(
            applets=catalog.applets,
            actions=catalog.actions,
            secrets=catalog.secrets,
            blueprints=catalog.blueprints | here,
        )
    blueprints: list[Blueprint] = []
    first: dict[tuple[str, str, str], Path] = {}
    for path, data, locator in read:
        found = _problems(data, locator, catalog)
        problems.extend(found)
        if found:
            continue
        blueprint = _build(data, locator, path)
        if blueprint.key in first:
            namespace, name, version = blueprint.key
            problems.append(
                locator.problem(
                    ("document", "name"),
                    f"blueprint {namespace}/{name} version {version} is also defined in "
                    f"{first[blueprint.key]}",
                )
            )
            continue
        first[blueprint.key] = path
        blueprints.append(blueprint)
    if problems:
        raise BlueprintInvalid(sorted(problems, key=lambda p: (p.file, p.line, p.column)))
    return blueprints


__all__ = [
    "SUFFIXES",
    "Blueprint",
    "Catalog",
    "blueprint_paths",
    "digest",
    "load_blueprint",
    "load_blueprints",
    "parse_blueprint",
]
