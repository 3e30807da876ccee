"""``ghapplets action`` with a GitHub App connector: each run is a process of its own, and the
runs share one installation token through the project's store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import cli
from tests.conftest import ProjectBuilder

INPUT = json.dumps(
    {"owner": "octo-org", "repo": "hello-world", "issue_number": 1, "labels": ["cli"]}
)


def project(tmp_path: Path, fakes: Any, key: str) -> Path:
    builder = ProjectBuilder(tmp_path / "p")
    builder.extra = (
        "connectors:\n  github:\n    kind: github\n"
        f"    base_url: {fakes.github.base_url}\n    app_id: 1001\n    private_key: {key}\n"
    )
    return builder.build()


@pytest.mark.parametrize("where", ["secret", "env"])
def test_runs_share_the_installation_token(
    tmp_path: Path, ghapplets_fakes: Any, where: str
) -> None:
    pem = ghapplets_fakes.private_keys[1001]
    env: dict[str, str] = {}
    if where == "secret":  # the store is opened for the key: the token cache comes with it
        root = project(tmp_path, ghapplets_fakes, "${secret:gh-app-key}")
        stored = cli("secrets", "set", "gh-app-key", "-p", root, input=pem)
        assert stored.code == 0, stored
    else:  # the key from the environment; the store exists, so its cache is used
        root = project(tmp_path, ghapplets_fakes, "${env:GH_APP_KEY}")
        env = {"GH_APP_KEY": pem}
        assert cli("secrets", "set", "unrelated", "-p", root, input="x").code == 0
    for _ in range(2):
        result = cli("action", "github.add_labels", "-i", INPUT, "-p", root, env=env)
        assert result.code == 0, result
        assert [label["name"] for label in json.loads(result.out)] == ["cli"]
    assert ghapplets_fakes.github.exchanges(2001) == 1


def test_without_a_store_each_run_mints(tmp_path: Path, ghapplets_fakes: Any) -> None:
    root = project(tmp_path, ghapplets_fakes, "${env:GH_APP_KEY}")
    env = {"GH_APP_KEY": ghapplets_fakes.private_keys[1001]}
    for _ in range(2):
        result = cli("action", "github.add_labels", "-i", INPUT, "-p", root, env=env)
        assert result.code == 0, result
    assert ghapplets_fakes.github.exchanges(2001) == 2
