"""deploy/systemd: units that systemd accepts, sandboxed, with the exposure score the docs quote;
the backup service and its daily timer, whose command is run here for real."""

from __future__ import annotations

import configparser
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ghapplets.backup.archive import Archive
from tests.cli.helpers import clean_env
from tests.conftest import ProjectBuilder, free_port
from tests.faults import wait_ready
from tests.servers import NatsServer

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/ghapplets/bin/ghapplets"  # where docs/deploy.md installs the virtualenv
GHAPPLETS = Path(sys.executable).with_name("ghapplets")
INSTANCES = {"ghapplets.service": "ghapplets.service",
             "ghapplets-gateway@.service": "ghapplets-gateway@8080.service",
             "ghapplets-worker@.service": "ghapplets-worker@9101.service",
             "ghapplets-backup.service": "ghapplets-backup.service"}  # fmt: skip
SERVERS = sorted(u for u in INSTANCES if u != "ghapplets-backup.service")  # they run until stopped
TIMERS = ["ghapplets-backup.timer"]
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 (locked down) .. 10 (exposed); docs quote it
DRAIN_TIMEOUT = 30


def analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not here (not a systemd system)")
    return path


def service(unit: str, part: str = "Service") -> dict[str, list[str]]:
    """The [Service] section (or another); a key given several times keeps every value."""
    values: dict[str, list[str]] = {}
    section = None
    for line in (UNITS / unit).read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == part and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def environment(unit: str) -> dict[str, str]:
    """The unit's Environment= variables."""
    pairs = [shlex.split(line) for line in service(unit)["Environment"]]
    return dict(pair.split("=", 1) for line in pairs for pair in line)


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """The units as instances, with ExecStart pointing at this test's ghapplets (verify checks
    that the program exists)."""
    for unit, instance in [*INSTANCES.items(), *((t, t) for t in TIMERS)]:
        text = (UNITS / unit).read_text().replace(INSTALLED, str(GHAPPLETS))
        (tmp_path / instance).write_text(text)
    return tmp_path


def test_the_units_are_the_roles_and_the_backup() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(INSTANCES)
    assert sorted(p.name for p in UNITS.glob("*.timer")) == TIMERS
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    for unit in [*INSTANCES, *TIMERS]:
        parser.read_string((UNITS / unit).read_text().replace("%", "%%"))


@pytest.mark.parametrize("unit", sorted(INSTANCES) + TIMERS)
def test_systemd_analyze_verify_passes(unit: str, installed: Path) -> None:
    done = subprocess.run(
        [analyze(), "verify", str(installed / INSTANCES.get(unit, unit))],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), done.stderr  # an unknown key is only a warning


def test_verify_would_see_a_mistake(installed: Path) -> None:
    unit = installed / "ghapplets.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=", "ProtectSystm="))
    done = subprocess.run([analyze(), "verify", str(unit)], capture_output=True, text=True)
    assert "Unknown key 'ProtectSystm'" in done.stderr


@pytest.mark.parametrize("unit", sorted(INSTANCES))
def test_the_exposure_score_is_low(unit: str, installed: Path) -> None:
    done = subprocess.run(
        [analyze(), "security", "--offline=true", str(installed / INSTANCES[unit])],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout
    quoted = (ROOT / "docs" / "deploy.md").read_text()
    assert f"`{unit}` | {found.group(1)}" in quoted  # the score docs/deploy.md quotes is current


@pytest.mark.parametrize("unit", sorted(INSTANCES))
def test_each_unit_is_sandboxed(unit: str) -> None:
    s = service(unit)
    assert s["DynamicUser"] == ["yes"] and s["User"] == ["ghapplets"]
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "UMask": "0077",
        "CapabilityBoundingSet": "",
        "StateDirectoryMode": "0700",
    }.items():
        assert s[key] == [value], (unit, key)
    (directories,) = s["StateDirectory"]
    assert directories.split()[0] == "ghapplets", unit  # /var/lib/ghapplets, the data folder
    assert environment(unit)["GHAPPLETS_DATA_DIR"] == "/var/lib/ghapplets"


@pytest.mark.parametrize("unit", SERVERS)
def test_each_server_drains_on_stop(unit: str) -> None:
    s = service(unit)
    assert s["Type"] == ["exec"]
    assert int(s["TimeoutStopSec"][0]) > DRAIN_TIMEOUT  # SIGTERM drains before systemd kills
    assert s["KillSignal"] == ["SIGTERM"]


@pytest.mark.parametrize("unit", sorted(INSTANCES))
def test_each_unit_runs_a_real_command(unit: str) -> None:
    argv = shlex.split(service(unit)["ExecStart"][0].replace("%i", "8080"))
    assert argv[0] == INSTALLED
    done = subprocess.run([str(GHAPPLETS), *argv[1:], "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr  # the role and its options exist
    env = " ".join(service(unit)["Environment"])
    assert (
        "GHAPPLETS_CONFIG=/etc/ghapplets" in env and "GHAPPLETS_DATA_DIR=/var/lib/ghapplets" in env
    )


# -- scheduled backups ---------------------------------------------------------------------


def test_the_backup_reads_the_servers_state_and_writes_a_directory_of_its_own() -> None:
    backup, serve = service("ghapplets-backup.service"), service("ghapplets.service")
    assert backup["Type"] == ["oneshot"]
    assert backup["User"] == serve["User"]  # one dynamic user: the owner of the data folder
    assert (
        environment("ghapplets-backup.service")["GHAPPLETS_DATA_DIR"]
        == (environment("ghapplets.service")["GHAPPLETS_DATA_DIR"])
    )
    assert backup["EnvironmentFile"] == serve["EnvironmentFile"]  # the store's URL, secrets
    argv = shlex.split(backup["ExecStart"][0])
    assert argv[1:2] == ["backup"] and "--keep" in argv
    folder = Path(argv[argv.index("--dir") + 1])
    # a dynamic user may write only what systemd manages for it: the folder is a state directory
    managed = [Path("/var/lib", d) for d in backup["StateDirectory"][0].split()]
    assert folder in managed and folder != Path("/var/lib/ghapplets")
    assert environment("ghapplets-backup.service")["TMPDIR"] == str(folder)
    assert int(argv[argv.index("--keep") + 1]) >= 1


def test_the_timer_starts_the_backup_daily_even_after_downtime() -> None:
    timer = service("ghapplets-backup.timer", "Timer")
    (unit,) = timer.get("Unit", ["ghapplets-backup.service"])
    assert (UNITS / unit).is_file()  # verify does not check what a timer starts
    assert timer["Persistent"] == ["true"]  # a run missed while the machine was off: at boot
    assert timer["RandomizedDelaySec"] and timer["RandomizedDelaySec"] != ["0"]
    assert service("ghapplets-backup.timer", "Install")["WantedBy"] == ["timers.target"]
    (calendar,) = timer["OnCalendar"]
    done = subprocess.run(  # in UTC: a day is 24 hours there, whatever the season
        [analyze(), "calendar", "--iterations=3", calendar],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC"},
    )
    assert done.returncode == 0, done.stderr
    elapses = re.findall(r"(?:Next elapse|Iter\. #\d): \w+ (\S+ \S+)", done.stdout)
    times = [datetime.fromisoformat(e) for e in elapses]
    assert len(times) == 3, done.stdout
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(days=1)}


def test_the_backup_command_runs(tmp_path: Path) -> None:
    """ExecStart as written, with the unit's environment, on a real project's data folder: the
    unit's folders (/etc/ghapplets, /var/lib/...) made folders here."""
    project = tmp_path / "etc" / "ghapplets"
    made = subprocess.run([str(GHAPPLETS), "init", str(project)], capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    var = tmp_path / "var" / "lib"
    var.mkdir(parents=True)
    (project / ".ghapplets").rename(var / "ghapplets")  # the data folder init made

    def here(text: str) -> str:
        return text.replace("/var/lib/", f"{var}/").replace("/etc/ghapplets", str(project))

    unit = "ghapplets-backup.service"
    argv = [here(arg) for arg in shlex.split(service(unit)["ExecStart"][0])]
    assert argv[0] == INSTALLED
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPPLETS_")}
    env |= {name: here(value) for name, value in environment(unit).items()}
    backups = var / "ghapplets-backups"  # as systemd makes it
    backups.mkdir(mode=0o700)
    for day in range(1, 10):  # older archives, beyond what --keep keeps
        (backups / f"ghapplets-202601{day:02d}T020000Z.tgz").write_bytes(b"old")
    done = subprocess.run(
        [str(GHAPPLETS), *argv[1:]], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    keep = int(argv[argv.index("--keep") + 1])
    archives = sorted(backups.iterdir())
    assert len(archives) == keep
    newest = archives[-1]
    assert newest.read_bytes() != b"old"
    assert Archive(newest).manifest.counts["secrets"] >= 1  # verified: the project's store


def test_two_gateway_instances_run_side_by_side_on_one_machine(
    project: ProjectBuilder, tmp_path: Path, pg_url: str
) -> None:
    """In the distributed mode, as the units run them: each instance would otherwise bind the
    default admin address, and the second would fail."""
    unit_env = environment("ghapplets-gateway@.service")
    assert unit_env["GHAPPLETS_SERVER__ADMIN_ADDRESS"] == ""
    root = project.build()
    nats = NatsServer(tmp_path / "nats").start()
    env = clean_env() | {
        "GHAPPLETS_SERVER__ADMIN_ADDRESS": unit_env["GHAPPLETS_SERVER__ADMIN_ADDRESS"],
        "GHAPPLETS_BROKER__BACKEND": "nats",
        "GHAPPLETS_BROKER__URL": nats.url,
        "GHAPPLETS_STORAGE__BACKEND": "postgresql",
        "GHAPPLETS_STORAGE__URL": pg_url,
    }
    procs = []
    try:
        for _ in range(2):
            port = free_port()
            argv = [str(GHAPPLETS), "gateway", "--port", str(port), "-p", str(root)]
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            procs.append(proc)
            wait_ready(port, proc)  # fails when the process exits instead
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        nats.kill()
