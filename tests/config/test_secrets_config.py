"""``secrets:`` in ``ghapplets.yaml``: the backend chosen by ``backend``, its settings checked,
and every mistake a located error naming the key (never a tagged-union path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghapplets.backends import Backends
from ghapplets.config.loader import load_config
from ghapplets.exceptions import ConfigError
from ghapplets.secrets.backends.embedded import EmbeddedBackend
from ghapplets.secrets.backends.kubernetes import KubernetesBackend
from ghapplets.secrets.backends.openbao import OpenBaoBackend
from ghapplets.secrets.config import (
    BackendKind,
    EmbeddedSecrets,
    KubernetesSecrets,
    OpenBaoSecrets,
)


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> object:
    (tmp_path / "ghapplets.yaml").write_text(text)
    return load_config(tmp_path, environ or {}).config.secrets


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text, environ)
    return [str(p).split("ghapplets.yaml:", 1)[1] for p in exc.value.problems]


def test_the_default_is_the_embedded_store(tmp_path: Path) -> None:
    assert load(tmp_path, "project: p\n") == EmbeddedSecrets()
    assert load(tmp_path, "secrets: {}\n") == EmbeddedSecrets()
    assert load(tmp_path, "secrets:\n  backend: embedded\n") == EmbeddedSecrets()


def test_openbao_and_its_alias_vault(tmp_path: Path) -> None:
    for name in ("openbao", "vault"):
        got = load(
            tmp_path,
            f"secrets:\n  backend: {name}\n  address: https://bao.example.com:8200\n"
            "  token: ${env:BAO_TOKEN}\n  prefix: teams/ci/ghapplets\n  namespace: ns1\n",
        )
        assert isinstance(got, OpenBaoSecrets)
        assert got.backend == BackendKind.OPENBAO
        assert (got.mount, got.prefix, got.field, got.namespace) == (
            "secret",
            "teams/ci/ghapplets",
            "value",
            "ns1",
        )
        assert (got.token, got.timeout, got.cache_ttl) == ("${env:BAO_TOKEN}", 5.0, 30.0)


def test_kubernetes_and_environment_overrides(tmp_path: Path) -> None:
    got = load(
        tmp_path,
        "project: p\n",
        {"GHAPPLETS_SECRETS__BACKEND": "kubernetes", "GHAPPLETS_SECRETS__PATH": "/etc/s"},
    )
    assert got == KubernetesSecrets(backend=BackendKind.KUBERNETES, path=Path("/etc/s"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "project: p\nsecrets:\n  backend: vaultt\n",
            "3:3: secrets.backend: Value error, unknown secrets backend 'vaultt': use one of "
            "embedded, openbao, kubernetes, vault (as openbao)",
        ),
        ("secrets:\n  backend: kubernetes\n", "1:1: secrets.path: Field required"),
        (
            "secrets:\n  backend: kubernetes\n  path: /x\n  paht: /y\n",
            "4:3: secrets.paht: Extra inputs are not permitted",
        ),
        (
            "secrets:\n  backend: openbao\n  token: t\n",
            "1:1: secrets.address: Field required",
        ),
        (
            "secrets:\n  backend: openbao\n  address: http://b:8200\n",
            "1:1: secrets: Value error, give exactly one of token, token_file or "
            "kubernetes_role to log in to OpenBao",
        ),
        (
            "secrets:\n  backend: openbao\n  address: http://b:8200\n  token: t\n"
            "  token_file: /f\n",
            "1:1: secrets: Value error, give exactly one of token, token_file or "
            "kubernetes_role to log in to OpenBao (given: token, token_file)",
        ),
        (
            "secrets:\n  backend: openbao\n  address: http://b:8200\n"
            "  token: ${secret:bao-token}\n",
            "4:3: secrets.token: Value error, the token that opens the secrets backend cannot "
            "be one of its secrets: use ${env:NAME} or token_file",
        ),
        ("secrets: embedded\n", "1:1: secrets: Value error, expected a mapping with a backend"),
    ],
)
def test_mistakes_are_located_errors(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("prefix", "a/../b"),
        ("prefix", "../b"),
        ("prefix", "/abs"),
        ("prefix", "a//b"),
        ("mount", "secret/"),
        ("namespace", "."),
    ],
)
def test_paths_below_openbao_cannot_climb(tmp_path: Path, key: str, value: str) -> None:
    text = (
        f"secrets:\n  backend: openbao\n  address: http://b:8200\n  token: t\n  {key}: '{value}'\n"
    )
    (found,) = problems(tmp_path, text)
    assert found.startswith(f"5:3: secrets.{key}: Value error, {value!r} is not a path")


def test_an_overridden_value_names_its_variable(tmp_path: Path) -> None:
    found = problems(tmp_path, "project: p\n", {"GHAPPLETS_SECRETS__BACKEND": "nope"})
    assert any("(from GHAPPLETS_SECRETS__BACKEND)" in p for p in found), found


def test_the_backends_open_the_chosen_one(tmp_path: Path) -> None:
    cases = [
        ("project: p\n", EmbeddedBackend),
        ("secrets: {backend: kubernetes, path: mounted}\n", KubernetesBackend),
        ("secrets: {backend: vault, address: 'http://b:8200', token: t}\n", OpenBaoBackend),
    ]
    for text, kind in cases:
        (tmp_path / "ghapplets.yaml").write_text(text)
        config = load_config(tmp_path, {}).config
        backend = Backends(config, tmp_path / "data").secret_backend
        assert isinstance(backend, kind)
    # a relative folder is the project's
    (tmp_path / "ghapplets.yaml").write_text(cases[1][0])
    backend = Backends(load_config(tmp_path, {}).config, tmp_path / "data").secret_backend
    assert isinstance(backend, KubernetesBackend) and backend.folder == tmp_path / "mounted"
