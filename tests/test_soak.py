"""CI's random fault soak: about 20 s of faults under load per backend, with a fixed seed.

The seed's faults are a ``kill -9``, a SIGTERM drain, then a crash just after a job's result was
recorded (where a finished job could run again), if the machine is quick enough to get there
in 20 s. A longer or different soak: ``python3 tasks.py soak --seconds N --seed S``
(docs/testing.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak import BACKENDS, Backend, Options, run

pytestmark = pytest.mark.slow

SEED = 14
SECONDS = 20.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_short_random_fault_soak_keeps_the_promise(
    backend: Backend,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pg = request.getfixturevalue("pg_server") if backend == "nats-postgresql" else None
    report = run(Options(SECONDS, SEED, backend), tmp_path, pg)
    with capsys.disabled():
        print(f"\n{report.summary()}")
    assert report.ok, report.summary()
    assert sum(report.faults.values()) >= 2, "too few faults for a soak"
