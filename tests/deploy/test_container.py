"""The container image (deploy/container/Containerfile), built and run here with buildah.

No OCI runtime can start a container on these machines, so the image is built with
``buildah bud --isolation chroot`` from bases that ``mmdebstrap`` makes (Debian's Python, the
same minor version the project's wheels are built for) and its own files are run with
``buildah run --isolation chroot``. The project goes in as wheels built outside the image, so
the build itself needs no network: ``PIP_NO_INDEX=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ghapplets import __version__
from tests.conftest import free_port
from tests.faults import WEBHOOK_SECRET, signed

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ghapplets-tests"
SUITE = "bookworm"  # Debian 12: Python 3.11, the version the wheels below are for
PYTHON = "3.11"
MIRROR = os.environ.get("GHAPPLETS_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# a small base, like the official slim image: no documentation, no locales, no usrmerge (perl)
SLIM = [
    "--variant=essential",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*",
]
BASES = {  # image name -> Debian packages: the runtime base and the build base (venv, strip)
    # libstdc++6: greenlet's (SQLAlchemy's asyncio) C++ runtime; Debian's slim images have it
    "run": ["python3", "ca-certificates", "libstdc++6"],
    "build": ["python3-venv", "binutils"],
}
UID = 10001
MAX_IMAGE_BYTES = 200 * 1000 * 1000

APPLET = """\
from ghapplets import Applet, Context

app = Applet("echo")


@app.on("com.github.issues.opened")
async def handle(ctx: Context) -> dict:
    return {"number": ctx.data["issue"]["number"]}
"""


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is missing: python3 tasks.py test installs it (Debian: apt-get install {tool})"
        )
    return path


@dataclass(frozen=True)
class Buildah:
    """buildah on a storage of the test's own (vfs: no overlay mounts needed)."""

    root: Path

    def args(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "vfs",
            *args,
        ]

    def __call__(self, *args: str, timeout: float = 600) -> str:
        done = subprocess.run(self.args(*args), capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"buildah {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout.strip()


def debian_base(name: str, packages: list[str]) -> Path:
    """A Debian root file system as a tarball, made once and kept in the cache."""
    key = hashlib.sha256(json.dumps([SUITE, packages, SLIM]).encode()).hexdigest()[:12]
    tarball = CACHE / "container" / f"{name}-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(f".{os.getpid()}.partial.tar")
    command = [
        _need("mmdebstrap"),
        *SLIM,
        f"--include={','.join(packages)}",
        SUITE,
        str(partial),
        MIRROR,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"mmdebstrap failed:\n{done.stderr[-3000:]}"
    partial.replace(tarball)
    return tarball


def wheels(folder: Path) -> None:
    """The project and its dependencies as wheels for the base's Python, built here."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder), str(ROOT)], check=True
    )
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 28, 34)]
    subprocess.run(
        [*pip, "download", "--quiet", "--dest", str(folder), "--only-binary=:all:",
         f"--python-version={PYTHON}", *platforms, "--platform=manylinux2014_x86_64",
         "--find-links", str(folder), f"ghapplets=={__version__}"],
        check=True,
    )  # fmt: skip


@dataclass(frozen=True)
class Image:
    buildah: Buildah
    name: str


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("buildah builds here as root (rootless needs subordinate ids)")
    _need("buildah")
    work = tmp_path_factory.mktemp("image")
    buildah = Buildah(work / "buildah")
    for name, packages in BASES.items():
        container = buildah("from", "scratch")
        buildah("add", container, str(debian_base(name, packages)), "/")
        buildah("commit", "--quiet", container, f"localhost/test-{name}")
        buildah("rm", container)
    context = work / "context"
    wheels(context / "dist" / "wheels")
    buildah(
        "bud", "--isolation", "chroot", "--file", str(CONTAINERFILE),
        "--build-arg", "BASE=localhost/test-run", "--build-arg", "BUILD_BASE=localhost/test-build",
        "--build-arg", "PIP_NO_INDEX=1", "--build-arg", f"VERSION={__version__}",
        "--tag", "localhost/ghapplets:test", str(context),
        timeout=900,
    )  # fmt: skip
    yield Image(buildah, "localhost/ghapplets:test")
    shutil.rmtree(work / "buildah", ignore_errors=True)


def inspect(image: Image) -> dict:
    return json.loads(image.buildah("inspect", "--type", "image", image.name))


def run(image: Image, *command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    container = image.buildah("from", image.name)
    try:
        options = ["--user", user] if user else []
        return subprocess.run(
            image.buildah.args("run", "--isolation", "chroot", *options, container, "--", *command),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        image.buildah("rm", container)


def test_the_image_runs_as_a_non_root_user_in_group_0(image: Image) -> None:
    config = inspect(image)["OCIv1"]["config"]
    assert config["User"] == f"{UID}:0"
    assert config["Entrypoint"] == ["ghapplets"]
    assert config["Env"] and "GHAPPLETS_DATA_DIR=/var/lib/ghapplets" in config["Env"]
    version = run(image, "ghapplets", "--version")  # as the image's own user
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"ghapplets {__version__}"
    who = run(image, "id", "-u")
    assert who.stdout.strip() == str(UID)


def test_an_arbitrary_uid_in_group_0_can_write_the_data_paths(image: Image) -> None:
    # OpenShift runs an image as a random UID whose group is 0
    probe = "touch /var/lib/ghapplets/probe /etc/ghapplets/probe && ghapplets validate"
    done = run(image, "sh", "-c", probe, user="1000650000:0")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_labelled_small_and_has_nothing_to_build_with(image: Image) -> None:
    labels = inspect(image)["OCIv1"]["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    container = image.buildah("from", image.name)
    try:
        root = Path(image.buildah("mount", container))
        files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        total = sum(p.lstat().st_size for p in files)
        venv = root / "opt" / "ghapplets"
        tools = [p.name for p in (venv / "bin").iterdir() if p.name.startswith("pip")]
        tools += [name for name in ("gcc", "cc", "strip") if (root / "usr" / "bin" / name).exists()]
    finally:
        image.buildah("umount", container)
        image.buildah("rm", container)
    assert total < MAX_IMAGE_BYTES, f"the image holds {total / 1e6:.0f} MB of files"
    assert not tools, tools  # the final stage has the virtualenv, and nothing to build with


def test_serve_in_the_image_takes_a_signed_webhook(image: Image, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "applets" / "echo").mkdir(parents=True)
    port = free_port()
    (project / "ghapplets.yaml").write_text(
        "project: image-test\n"
        "sources:\n  github: {kind: github, secret: '${env:GITHUB_WEBHOOK_SECRET}'}\n"
        f"applets: [applets]\nserver: {{host: 127.0.0.1, port: {port}}}\n"
    )
    (project / "applets" / "echo" / "applet.yaml").write_text(
        "name: echo\nruntime: python\nentry: handler.py\non: [com.github.issues.opened]\n"
    )
    (project / "applets" / "echo" / "handler.py").write_text(APPLET)
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, UID, 0)
    container = image.buildah("from", image.name)
    command = image.buildah.args(
        "run", "--isolation", "chroot", "--env", f"GITHUB_WEBHOOK_SECRET={WEBHOOK_SECRET}",
        "--volume", f"{project}:/etc/ghapplets:ro", "--volume", f"{data}:/var/lib/ghapplets",
        container, "--", "ghapplets", "serve", "--processes", "1",
    )  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _ready(base):
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
        body, headers = signed("image-1", 7)
        response = httpx.post(f"{base}/hooks/github", content=body, headers=headers)
        assert response.status_code == 202, response.text
        job = _finished_job(project, data)
        assert job["status"] == "succeeded", job
        assert job["result"] == {"number": 7}
        assert job["delivery_id"] == "image-1"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        image.buildah("rm", container)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _finished_job(project: Path, data: Path) -> dict:
    """The job of the delivery, once final, read from the data folder by the host's CLI."""
    ghapplets = Path(sys.executable).with_name("ghapplets")
    deadline = time.monotonic() + 60
    while True:
        listed = subprocess.run(
            [str(ghapplets), "jobs", "--json", "--project", str(project), "--data-dir", str(data)],
            capture_output=True,
            text=True,
            env={**os.environ, "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET},
        )
        jobs = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
        if jobs and jobs[0]["status"] in ("succeeded", "failed", "dead"):
            return jobs[0]
        assert time.monotonic() < deadline, listed.stdout + listed.stderr
        time.sleep(0.3)
