"""Load ``ghapplets.yaml``: located errors, ``GHAPPLETS_*`` overrides, per-kind source settings.

Any key can be overridden from the environment: ``GHAPPLETS_SERVER__PORT=9000`` sets
``server.port`` (``__`` separates levels; values are read as YAML scalars, so ``true`` and ``9``
get their types). ``GHAPPLETS_SECRET_KEY`` is the encryption key, not an override. Nor is a
variable without ``__`` whose name is not a top-level key of the file (``GHAPPLETS_SEND_SECRET``,
the ``GHAPPLETS_JOB_ID`` an exec applet sees): it is ignored. An error in an overridden value
names the variable it came from.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ghapplets.config.located import Locator, Problem, load_yaml, validate
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import ConfigError
from ghapplets.sources.base import SourceSettings

CONFIG_FILE = "ghapplets.yaml"
ENV_PREFIX = "GHAPPLETS_"
NOT_OVERRIDES = frozenset({"GHAPPLETS_SECRET_KEY", "GHAPPLETS_CONFIG", "GHAPPLETS_DATA_DIR"})


@dataclass
class LoadedConfig:
    config: ProjectConfig
    sources: dict[str, SourceSettings]
    path: Path


def apply_env_overrides(
    data: dict[str, Any],
    environ: Mapping[str, str],
    applied: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Apply ``GHAPPLETS_*`` overrides to ``data``; ``applied`` collects ``key.path -> VAR``."""
    top_level = set(ProjectConfig.model_fields) - {"root"}
    for key, raw in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key in NOT_OVERRIDES:
            continue
        rest = key[len(ENV_PREFIX) :]
        path = [p.lower() for p in rest.split("__") if p]
        if not path or (path[0] not in top_level and "__" not in rest):
            continue
        if applied is not None:
            applied[".".join(path)] = key
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        try:
            node[path[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[path[-1]] = raw
    return data


def find_config(start: Path) -> Path:
    """``start`` if it is a file, else ``start/ghapplets.yaml``."""
    return start if start.is_file() else start / CONFIG_FILE


def config_from_env(environ: Mapping[str, str] | None = None) -> ProjectConfig:
    """The defaults plus ``GHAPPLETS_*`` overrides, for commands run outside a project."""
    data = apply_env_overrides({}, os.environ if environ is None else environ)
    return validate(ProjectConfig, data, Locator("(environment)"))


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    from ghapplets.sources.registry import settings_model

    path = find_config(path)
    data, locator = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), 1, 1, "", "expected a mapping at the top level")])
    overrides: dict[str, str] = {}
    data = apply_env_overrides(data, os.environ if environ is None else environ, overrides)
    try:
        config = validate(ProjectConfig, data, locator)
    except ConfigError as exc:
        raise ConfigError(_name_overrides(exc.problems, overrides)) from None
    config.root = path.parent.resolve()
    problems: list[Problem] = []
    sources: dict[str, SourceSettings] = {}
    for name, entry in config.sources.items():
        try:
            model = settings_model(entry.kind)
        except ValueError as exc:
            problems.append(locator.problem(("sources", name, "kind"), str(exc)))
            continue
        try:
            sources[name] = validate(model, data["sources"][name], locator, ("sources", name))
        except ConfigError as exc:
            problems.extend(exc.problems)
    for key, folders in (("applets", config.applets), ("blueprints", config.blueprints)):
        for i, folder in enumerate(folders):
            if not (config.root / folder).is_dir():
                problems.append(locator.problem((key, i), f"folder {folder!r} does not exist"))
    hec = config.logging.splunk_hec
    if hec is not None and isinstance(hec.verify, str):
        problem = ca_bundle_problem(config.root / hec.verify)
        if problem:
            problems.append(locator.problem(("logging", "splunk_hec", "verify"), problem))
    if problems:
        raise ConfigError(_name_overrides(problems, overrides))
    return LoadedConfig(config, sources, path)


def ca_bundle_problem(path: Path) -> str | None:
    """Why ``path`` is not a CA bundle TLS can verify with (None when it is)."""
    try:
        ssl.create_default_context(cafile=path)
    except OSError as exc:  # ssl.SSLError is one too
        reason = exc.strerror or str(exc)
        return f"cannot use {str(path)!r} as a CA bundle (PEM certificates): {reason}"
    return None


def _related(where: str, key: str) -> bool:
    """``where`` (a problem's key path) is ``key`` (an overridden path), inside it, or above it."""
    return bool(where) and (f"{where}.".startswith(f"{key}.") or f"{key}.".startswith(f"{where}."))


def _name_overrides(problems: list[Problem], overrides: Mapping[str, str]) -> list[Problem]:
    """Say which environment variable a wrong value came from (its line is not in the file)."""
    out = []
    for p in problems:
        var = next((v for k, v in overrides.items() if _related(p.where, k)), None)
        out.append(replace(p, message=f"{p.message} (from {var})") if var else p)
    return out
