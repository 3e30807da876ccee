"""Load ``ghapplets.yaml``: located errors, ``GHAPPLETS_*`` overrides, per-kind source settings.

Any key can be overridden from the environment: ``GHAPPLETS_SERVER__PORT=9000`` sets
``server.port`` (``__`` separates levels; values are read as YAML scalars, so ``true`` and ``9``
get their types). ``GHAPPLETS_SECRET_KEY`` is the encryption key, not an override.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ghapplets.config.located import ConfigError, Problem, load_yaml, validate
from ghapplets.config.models import ProjectConfig
from ghapplets.sources.base import SourceSettings

CONFIG_FILE = "ghapplets.yaml"
ENV_PREFIX = "GHAPPLETS_"
NOT_OVERRIDES = frozenset({"GHAPPLETS_SECRET_KEY", "GHAPPLETS_CONFIG", "GHAPPLETS_DATA_DIR"})


@dataclass
class LoadedConfig:
    config: ProjectConfig
    sources: dict[str, SourceSettings]
    path: Path


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key in NOT_OVERRIDES:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
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


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    from ghapplets.sources.registry import settings_model

    path = find_config(path)
    data, locator = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), 1, 1, "", "expected a mapping at the top level")])
    data = apply_env_overrides(data, os.environ if environ is None else environ)
    config = validate(ProjectConfig, data, locator)
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
    for i, folder in enumerate(config.applets):
        if not (config.root / folder).is_dir():
            problems.append(locator.problem(("applets", i), f"folder {folder!r} does not exist"))
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(config, sources, path)
