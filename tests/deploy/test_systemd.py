"""deploy/systemd: units that systemd accepts, sandboxed, with the exposure score the docs quote."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/ghapplets/bin/ghapplets"  # where docs/deploy.md installs the virtualenv
GHAPPLETS = Path(sys.executable).with_name("ghapplets")
INSTANCES = {"ghapplets.service": "ghapplets.service",
             "ghapplets-gateway@.service": "ghapplets-gateway@8080.service",
             "ghapplets-worker@.service": "ghapplets-worker@9101.service"}  # fmt: skip
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 (locked down) .. 10 (exposed); docs quote it
DRAIN_TIMEOUT = 30


def analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not here (not a systemd system)")
    return path


def service(unit: str) -> dict[str, list[str]]:
    """The [Service] section; a key given several times keeps every value."""
    values: dict[str, list[str]] = {}
    section = None
    for line in (UNITS / unit).read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """The units as instances, with ExecStart pointing at this test's ghapplets (verify checks
    that the program exists)."""
    for unit, instance in INSTANCES.items():
        text = (UNITS / unit).read_text().replace(INSTALLED, str(GHAPPLETS))
        (tmp_path / instance).write_text(text)
    return tmp_path


def test_the_units_are_the_roles() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(INSTANCES)
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    for unit in INSTANCES:
        parser.read_string((UNITS / unit).read_text().replace("%", "%%"))


@pytest.mark.parametrize("unit", sorted(INSTANCES))
def test_systemd_analyze_verify_passes(unit: str, installed: Path) -> None:
    done = subprocess.run(
        [analyze(), "verify", str(installed / INSTANCES[unit])], capture_output=True, text=True
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
        "StateDirectory": "ghapplets",
        "UMask": "0077",
        "CapabilityBoundingSet": "",
    }.items():
        assert s[key] == [value], (unit, key)
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
