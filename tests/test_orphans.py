"""The mutation runner's orphan reaper (tests/orphans.py) on real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent

# A process that adopts orphans, keeps one child of its own, and leaves a grandchild behind (its
# parent exits at once, as a test's process does when mutmut kills it); it prints the pids.
SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from tests.orphans import OrphanReaper, adopted, become_subreaper, reaping

    assert become_subreaper()
    kept = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def leave_orphan():
        parent = subprocess.Popen(
            [sys.executable, "-c",
             "import subprocess, sys; "
             "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
             "print(p.pid, flush=True)"],
            stdout=subprocess.PIPE, text=True,
        )
        orphan = int(parent.stdout.readline())
        parent.wait()
        deadline = time.monotonic() + 10
        while orphan not in {pid for pid, _ in adopted({kept.pid})}:
            assert time.monotonic() < deadline, "the orphan was not adopted"
            time.sleep(0.05)
        return orphan

    orphan = leave_orphan()
    reaper = OrphanReaper(keep={kept.pid})
    reaper.scan()
    first = reaper.killed  # seen once: it may be on its way out
    reaper.scan()
    second = reaper.killed
    late = leave_orphan()
    with reaping(keep={kept.pid}, interval=3600):
        pass  # no scan in the block: the last sweep ends what is left
    print(json.dumps({"orphans": [orphan, late], "first": first, "second": second,
                      "kept_alive": kept.poll() is None}), flush=True)
    kept.kill()
    kept.wait()
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a child subreaper is Linux's")
def test_an_orphan_is_ended_and_a_kept_child_is_not() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["first"] == 0  # not at once: only once it was seen orphaned in two scans
    assert seen["second"] == 1
    assert seen["kept_alive"]
    for pid in seen["orphans"]:
        assert not psutil.pid_exists(pid)  # killed and reaped
