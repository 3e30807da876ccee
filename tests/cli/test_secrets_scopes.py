"""Scopes on the CLI: ``ghapplets invoke`` hands an applet the global secrets and those scoped
to it, and no other applet's; ``secrets list`` shows each secret's scope."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import cli, ghapplets
from tests.conftest import ProjectBuilder

LENGTHS = (
    "#!/bin/sh\ncat >/dev/null\n"
    'printf \'{"shared": %s, "own": %s}\\n\' "${#GHAPPLETS_SECRET_SHARED}" '
    '"${#GHAPPLETS_SECRET_OWN}"\n'
)


def add_exec_applet(project: Path, name: str, script: str, manifest: str) -> None:
    ProjectBuilder(project).exec_applet(name, script, "on: [com.github.*]\n" + manifest)


def test_invoke_hands_out_global_and_own_scope_secrets_only(scaffolded: Path) -> None:
    for name, value, scope in (
        ("shared", "shared-value-123", "global"),
        ("own", "own-value-4567", "applet:scoped"),
        ("theirs", "theirs-value-89", "applet:other"),
    ):
        result = cli("secrets", "set", name, "--value", value, "--scope", scope, "-p", scaffolded)
        assert result.code == 0, result
    add_exec_applet(scaffolded, "scoped", LENGTHS, "secrets: [shared, own]\n")
    add_exec_applet(scaffolded, "nosy", "#!/bin/sh\ncat\n", "secrets: [shared, theirs]\n")

    ok = ghapplets("invoke", "scoped", "--fixture", "github:push", cwd=scaffolded)
    assert ok.code == 0, ok
    assert json.loads(ok.out)["result"] == {"shared": 16, "own": 14}

    refused = cli("invoke", "nosy", "--fixture", "github:push", "-p", scaffolded)
    assert refused.code == 3, refused
    assert "secret 'theirs' is scoped to applet:other" in refused.err
    assert "applet 'nosy' may read only global secrets and those of applet:nosy" in refused.err
    assert "theirs-value-89" not in refused.out + refused.err
