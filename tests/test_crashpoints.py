"""Crash points: parsing GHAPPLETS_CRASH_AT, dying at the n-th arrival, and the listing."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ghapplets import crashpoints
from ghapplets.crashpoints import CrashPoint, Role
from ghapplets.exceptions import ConfigError
from tests.cli.helpers import clean_env, ghapplets


def test_parse_a_point_and_a_count() -> None:
    assert crashpoints.parse("worker.acknowledged") == (CrashPoint.WORKER_ACKNOWLEDGED, 1)
    assert crashpoints.parse(" gateway.stored:3 ") == (CrashPoint.GATEWAY_STORED, 3)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gateway.nowhere", "no crash point 'gateway.nowhere'"),
        ("gateway.stored:0", "must be 1 or more, got '0'"),
        ("gateway.stored:x", "must be 1 or more, got 'x'"),
        ("gateway.stored:-1", "must be 1 or more"),
    ],
)
def test_a_malformed_value_is_a_clear_error(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        crashpoints.parse(value)


DIE_AT_THIRD = """
import sys
from ghapplets import crashpoints
from ghapplets.crashpoints import CrashPoint
crashpoints.arm("worker.claimed:3")
for i in range(5):
    crashpoints.reached(CrashPoint.WORKER_FETCHED)  # another point: never counts
    crashpoints.reached(CrashPoint.WORKER_CLAIMED)
    print(i, flush=True)
"""


def test_the_process_dies_with_sigkill_at_the_nth_arrival() -> None:
    done = subprocess.run([sys.executable, "-c", DIE_AT_THIRD], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done
    assert done.stdout.split() == ["0", "1"]


def test_unarmed_points_do_nothing() -> None:
    crashpoints.arm(None)
    for point in CrashPoint:
        crashpoints.reached(point)  # still alive
    crashpoints.arm("")
    crashpoints.reached(CrashPoint.GATEWAY_STORED)


def test_the_listing_names_every_point_with_its_roles_and_what_is_durable(tmp_path: Path) -> None:
    listed = ghapplets("debug", "crash-points", "--json", cwd=tmp_path)
    assert listed.code == 0, listed
    rows = [orjson.loads(line) for line in listed.out.splitlines()]
    assert [r["name"] for r in rows] == [p.value for p in CrashPoint]
    roles = {r.value for r in Role}
    for row in rows:
        assert row["roles"] and set(row["roles"]) <= roles
        assert len(row["durable"]) > 10


def test_the_command_line_refuses_a_malformed_variable(tmp_path: Path) -> None:
    env = clean_env(GHAPPLETS_CRASH_AT="nope")
    bad = ghapplets("debug", "crash-points", cwd=tmp_path, env=env)
    assert bad.code == 2
    assert "no crash point 'nope'" in bad.err
