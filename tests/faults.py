"""Fault-injection machinery shared by the crash matrix (tests/test_crash_matrix.py), the kill -9
tests (tests/test_crash_recovery.py) and the random fault soak (tests/soak.py).

- :func:`signed` builds a correctly signed GitHub ``issues.opened`` webhook;
- :func:`build_project` installs the three applets of the fault tests: ``effect`` records every
  run (job, attempt, serve incarnation, time) in ``runs.log``, ``flaky`` fails its first attempt,
  ``doomed`` dead-letters every third issue;
- :class:`Node` runs ``ghapplets serve`` in a process group of its own, restarted as often as a
  test likes; each start is an *incarnation* whose wall-clock span is kept, so a run can be
  placed before or after a crash;
- :func:`drained` waits for the work to settle, :func:`inspect` checks the delivery promise
  and :func:`replay_dead_letter` checks that a dead letter can still be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from ghapplets.backends import open_backends
from ghapplets.broker.base import EVENTS, JOBS
from ghapplets.config.loader import load_config
from ghapplets.crashpoints import CRASH_ENV, POINTS, CrashPoint
from ghapplets.store.records import AttemptOutcome, DeliveryStatus, JobRecord, JobStatus
from tests.cli.helpers import clean_env, ghapplets
from tests.conftest import WEBHOOK_SECRET, ProjectBuilder

SERVE = [sys.executable, "-c", "from ghapplets.cli.main import main; main()", "serve"]
# uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status names the signal
GRACEFUL = (0, -signal.SIGTERM)
# points a webhook flow reaches by itself; the rest have tests of their own
# the points of blueprint runs, which a webhook flow without blueprints does not reach
RUN_POINTS = frozenset(p for p in CrashPoint if p.startswith("run."))
NOT_IN_FLOW = {
    CrashPoint.REPLAY_QUEUED,  # tests/dispatch/test_replay_records.py
    CrashPoint.RETENTION_BATCH,  # tests/test_crash_matrix.py, on its own
    CrashPoint.MIGRATION_STEP,  # tests/test_crash_matrix.py, on its own
    CrashPoint.RESTORE_LOADED,  # tests/cli/test_backup_restore.py
    *RUN_POINTS,  # tests/test_blueprint_crashes.py
}
FLOW_POINTS = [p.point for p in POINTS if p.point not in NOT_IN_FLOW]
# the effect applet logs the incarnation of serve it ran in, from this variable
INCARNATION_ENV = "SOAK_INCARNATION"


def signed(delivery: str, number: int) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {
            "action": "opened",
            "issue": {"number": number, "title": f"issue {number}", "user": {"login": "u"}},
            "repository": {"full_name": "o/r"},
            "sender": {"login": "u"},
        }
    )
    sig = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "content-type": "application/json",
        "x-github-event": "issues",
        "x-github-delivery": delivery,
        "x-hub-signature-256": sig,
    }


def forge(headers: dict[str, str]) -> dict[str, str]:
    """The same request with a wrong signature: the gateway must refuse it and keep nothing."""
    return {**headers, "x-hub-signature-256": "sha256=" + "0" * 64}


def number_of(delivery: str) -> int:
    """The issue number of a delivery named ``<prefix>-<number>`` (as every fault test names
    them)."""
    return int(delivery.rpartition("-")[2])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited early"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError("server not ready")


# -- the applets -------------------------------------------------------------------------------
# every execution, one line: job (its idempotency key), attempt, incarnation of serve, time
EFFECT = """
    import os, time
    from pathlib import Path
    from ghapplets import Applet, Context
    app = Applet("effect")
    OUT = Path({out!r})
    INCARNATION = os.environ.get({incarnation!r}, "0")

    @app.on("com.github.issues.opened")
    async def handle(ctx: Context) -> str:
        line = " ".join((ctx.idempotency_key, str(ctx.attempt), INCARNATION, repr(time.time())))
        with open(OUT / "runs.log", "a") as log:
            log.write(line + "\\n")
        return ctx.id
"""
# fails its first attempt (a retry is scheduled), succeeds on the second
FLAKY = """
    from ghapplets import Applet, Context, RetryableError
    app = Applet("flaky")

    @app.on("com.github.issues.opened")
    async def handle(ctx: Context) -> str:
        if ctx.attempt == 1:
            raise RetryableError("not yet")
        return "second time lucky"
"""
# every third event is refused for good: a dead letter
DOOMED = """
    from ghapplets import Applet, Context, PermanentError
    app = Applet("doomed")

    @app.on("com.github.issues.opened")
    async def handle(ctx: Context) -> str:
        if ctx.data["issue"]["number"] % 3 == 0:
            raise PermanentError("never")
        return "fine"
"""
FAST_RETRY = "retry: {max_attempts: 3, initial_delay: 0.05, max_delay: 0.1}\n"
APPLETS = ("effect", "flaky", "doomed")


def build_project(project: ProjectBuilder, out: Path) -> Path:
    """The project of the fault tests; ``out`` receives the effect applet's ``runs.log``."""
    out.mkdir(parents=True, exist_ok=True)
    project.python_applet("effect", EFFECT.format(out=str(out), incarnation=INCARNATION_ENV))
    project.python_applet("flaky", FLAKY, FAST_RETRY)
    project.python_applet("doomed", DOOMED, FAST_RETRY)
    return project.build()


def expected_status(applet: str, delivery: str) -> JobStatus:
    """How each job of the fault tests ends, whatever crashed on the way."""
    if applet == "doomed" and number_of(delivery) % 3 == 0:
        return JobStatus.DEAD
    return JobStatus.SUCCEEDED


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of the effect applet."""

    job: str
    attempt: int
    incarnation: int
    at: float


def read_runs(out: Path) -> list[Run]:
    path = out / "runs.log"
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        job, attempt, incarnation, at = line.split()
        runs.append(Run(job, int(attempt), int(incarnation), float(at)))
    return runs


# -- the node ----------------------------------------------------------------------------------
def serve_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for ``serve`` and the CLI, with the given ``GHAPPLETS_*`` overrides
    (the backends) and no crash point."""
    env = clean_env()
    env.update(overrides or {})
    env.pop(CRASH_ENV, None)
    return env


def backend_overrides() -> dict[str, str]:
    """The ``GHAPPLETS_*`` variables of this process (the platform_backends fixture's choice)."""
    return {k: v for k, v in os.environ.items() if k.startswith("GHAPPLETS_") and k != CRASH_ENV}


def group_members(pgid: int) -> list[int]:
    """The processes of a process group still alive (zombies, dead but not yet reaped by an
    init that may never reap them, do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: the kernel's answer, zombies included
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (command) state ppid pgrp ...": the command may hold spaces and parentheses
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if state != "Z" and int(pgrp) == pgid:
            members.append(int(entry.name))
    return members


class Node:
    """``ghapplets serve --processes 1`` for one project, in a process group of its own (so
    ``kill -9`` takes the supervisor, the gateway and the worker at once), started again as often
    as a test likes. Start number ``i`` is incarnation ``i``; ``spans[i]`` is its wall-clock
    span, from before it was started until every process of it was gone (``inf`` while it
    runs). The incarnations never overlap: a new one starts only once the last is gone."""

    def __init__(self, root: Path, port: int, log: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.port = port
        self.log = log
        self.env = dict(env)
        self.spans: list[tuple[float, float]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.problems: list[str] = []  # contract breaches seen while starting and stopping

    @property
    def incarnation(self) -> int:
        return len(self.spans) - 1

    @property
    def running(self) -> bool:
        return self.proc is not None

    def start(self, crash_at: str | None = None) -> None:
        assert self.proc is None, "the previous incarnation is still running"
        env = {**self.env, INCARNATION_ENV: str(len(self.spans))}
        if crash_at:
            env[CRASH_ENV] = crash_at
        with self.log.open("ab") as out:
            out.write(f"=== incarnation {len(self.spans)}, crash at {crash_at}\n".encode())
            self.spans.append((time.time(), math.inf))
            self.proc = subprocess.Popen(
                [*SERVE, "--project", str(self.root), "--port", str(self.port),
                 "--processes", "1", "--log-format", "json"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 60, *, may_exit: bool = False) -> bool:
        """True once ``/readyz`` answers 200. When the node exits first: False if
        ``may_exit`` (an armed node may die at its point before it is ready), else
        RuntimeError; RuntimeError too when it is not ready in time."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as client:
            while True:
                if self.proc.poll() is not None:
                    if may_exit:
                        return False
                    raise RuntimeError(
                        f"serve exited with {self.proc.returncode} while starting:\n{self.tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{self.port}/readyz").status_code == 200:
                        return True
                if time.monotonic() > deadline:
                    raise RuntimeError(f"serve not ready after {timeout:g} s:\n{self.tail()}")
                time.sleep(0.05)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status once the node (every process of it) is gone, or None if it still
        runs after ``timeout`` seconds."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._gone()
        return code

    def kill(self) -> int:
        """``kill -9`` of every process of the node at once; its exit status."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        self._gone()
        return code

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM to the supervisor (it drains every process); the exit status, or None
        when the node did not stop within ``timeout`` seconds (it is still running then)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def _gone(self, timeout: float = 10) -> None:
        """Wait until no process of the node is left (children die with the supervisor); then
        the incarnation's span ends."""
        assert self.proc is not None
        pgid = self.proc.pid
        deadline = time.monotonic() + timeout
        while members := group_members(pgid):
            if time.monotonic() > deadline:
                self.problems.append(
                    f"incarnation {self.incarnation}: processes {members} outlived serve by "
                    f"{timeout:g} s; killed"
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                deadline = math.inf
            time.sleep(0.02)
        self.spans[-1] = (self.spans[-1][0], time.time())
        self.proc = None

    def incarnation_at(self, when: float) -> int | None:
        """The incarnation that was running at the wall-clock time ``when``."""
        for i, (start, end) in enumerate(self.spans):
            if start <= when <= end:
                return i
        return None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        """Kill the node if it still runs (a test's cleanup)."""
        if self.proc is not None:
            self.kill()


# -- after the faults --------------------------------------------------------------------------
async def drained(
    root: Path,
    env: Mapping[str, str],
    expected: Collection[str],
    timeout: float = 60,
    limit: int = 100_000,
) -> bool:
    """Whether everything settled: each ``expected`` delivery has its jobs, every job is final
    and neither queue holds a message (nothing is left to run, or to settle); polled until then
    or until ``timeout`` seconds have passed."""
    async with open_backends(load_config(root, env).config, root / ".ghapplets") as b:
        deadline = time.monotonic() + timeout
        while True:
            jobs = await b.store.list_jobs(limit=limit)
            mine = sum(1 for j in jobs if j.delivery_id in expected)
            if (
                mine == len(APPLETS) * len(expected)
                and all(j.status.final for j in jobs)
                and await b.broker.depth(EVENTS) == 0
                and await b.broker.depth(JOBS) == 0
            ):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)


def some(items: Collection[object], n: int = 5) -> str:
    """How many, and the first few (sorted), for a message."""
    shown = ", ".join(map(str, sorted(items, key=str)[:n]))
    return f"{len(items)} ({shown}{', ...' if len(items) > n else ''})"


@dataclass
class Verdict:
    """What :func:`inspect` found: counters for the report, and every breach of the promise."""

    acknowledged: int = 0
    stored: int = 0  # deliveries in the store
    processed: int = 0  # acknowledged deliveries stored with every job final
    lost: list[str] = field(default_factory=list)  # acknowledged, not processed
    runs: int = 0  # executions of the effect applet
    duplicates: int = 0  # executions beyond each effect job's first
    most_runs: int = 0  # executions of the effect job that ran most often
    jobs: list[JobRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def inspect(
    root: Path,
    env: Mapping[str, str],
    out: Path,
    node: Node,
    *,
    acknowledged: Collection[str],
    forged: Collection[str],
    limit: int = 100_000,
) -> Verdict:
    """Check the delivery promise once the work has drained (see :func:`drained`):

    - every acknowledged delivery is stored, once, with a job per applet, each final;
    - no job at all is left queued, running or retrying;
    - each job ended as its applet dictates, and each delivery's counters agree with its jobs;
    - each effect job ran at least once;
    - a job recorded as finished did not run again: a run of the effect applet in a later
      incarnation than the one that recorded the job's success (the incarnations never overlap,
      so that one had committed it before the run started). Runs within one incarnation cannot
      be told apart from a legitimate overlap (a lease that ran out), so they count only as
      duplicates;
    - a forged (badly signed) delivery left nothing.
    """
    v = Verdict(acknowledged=len(acknowledged))
    runs = read_runs(out)
    runs_of: defaultdict[str, list[Run]] = defaultdict(list)
    for r in runs:
        runs_of[r.job].append(r)
    async with open_backends(load_config(root, env).config, root / ".ghapplets") as b:
        deliveries = await b.store.list_deliveries(limit=limit)
        v.jobs = jobs = await b.store.list_jobs(limit=limit)
        again = {k: await b.store.list_attempts(k) for k, rs in runs_of.items() if len(rs) > 1}
    if len(deliveries) >= limit or len(jobs) >= limit:
        v.problems.append(f"more than {limit} records: raise the limit of the check")
    stored = {d.id for d in deliveries}
    jobs_of: defaultdict[str, list[JobRecord]] = defaultdict(list)
    for j in jobs:
        jobs_of[j.delivery_id].append(j)
    v.stored = len(stored)

    def complete(delivery: str) -> bool:
        mine = jobs_of.get(delivery, [])
        return sorted(j.applet for j in mine) == sorted(APPLETS) and all(
            j.status.final for j in mine
        )

    v.lost = sorted(d for d in acknowledged if not complete(d))
    v.processed = len(acknowledged) - len(v.lost)
    if v.lost:
        v.problems.append(f"acknowledged but not processed: {some(v.lost)}")
    unfinished = [f"{j.id} {j.status}" for j in jobs if not j.status.final]
    if unfinished:
        v.problems.append(f"jobs left unfinished: {some(unfinished)}")
    odd = [d for d in stored - set(acknowledged) if not complete(d)]  # stored, never answered
    if odd:
        v.problems.append(f"stored deliveries without all their jobs final: {some(odd)}")
    wrong = [
        f"{j.id} {j.status} (expected {expected_status(j.applet, j.delivery_id)})"
        for j in jobs
        if j.status.final and j.status != expected_status(j.applet, j.delivery_id)
    ]
    if wrong:
        v.problems.append(f"jobs that ended wrongly: {some(wrong)}")
    counters = []
    for d in deliveries:
        mine = Counter(j.status for j in jobs_of.get(d.id, []))
        status = DeliveryStatus.FAILED if mine[JobStatus.DEAD] else DeliveryStatus.SUCCEEDED
        seen = (d.jobs_total, d.jobs_succeeded, d.jobs_dead)
        counted = (len(APPLETS), mine[JobStatus.SUCCEEDED], mine[JobStatus.DEAD])
        if complete(d.id) and (seen != counted or d.status != status):
            counters.append(f"{d.id}: {d.status} {seen} for jobs {status} {counted}")
    if counters:
        v.problems.append(f"deliveries whose record disagrees with their jobs: {some(counters)}")
    effects = [j.id for j in jobs if j.applet == "effect" and j.status.final]
    missing = [k for k in effects if k not in runs_of]
    if missing:
        v.problems.append(f"effect jobs final but never run: {some(missing)}")
    v.runs = len(runs)
    v.duplicates = sum(len(rs) - 1 for rs in runs_of.values())
    v.most_runs = max((len(rs) for rs in runs_of.values()), default=0)
    reran = []
    for job, attempts in again.items():
        ok = [a for a in attempts if a.outcome == AttemptOutcome.OK]
        if not ok:
            continue  # not finished (reported above), or never recorded as finished
        finished_in = node.incarnation_at(ok[0].finished_at)
        if finished_in is None:
            v.notes.append(f"{job}: its success was recorded outside every incarnation (clock?)")
            continue
        later = [r for r in runs_of[job] if r.incarnation > finished_in]
        if later:
            reran.append(
                f"{job}: recorded succeeded (attempt {ok[0].number}) in incarnation "
                f"{finished_in}, ran again in " + ", ".join(
                    f"incarnation {r.incarnation} (attempt {r.attempt})" for r in later
                )
            )  # fmt: skip
    if reran:
        v.problems.append(f"jobs recorded as finished that ran again: {some(reran)}")
    left = sorted(set(forged) & (stored | {j.delivery_id for j in jobs}))
    if left:
        v.problems.append(f"forged deliveries left records: {some(left)}")
    return v


async def replay_dead_letter(
    root: Path, env: Mapping[str, str], dead: JobRecord, timeout: float = 30
) -> str | None:
    """Replay one dead letter with ``ghapplets replay --job`` and wait until it ran again (and
    ended again): None when it did, else what went wrong."""
    try:
        result = await asyncio.to_thread(
            ghapplets, "replay", "--job", dead.id, "-p", root, cwd=root, env=dict(env)
        )
    except AssertionError as exc:  # a traceback
        return f"replay --job {dead.id}: {exc}"
    if result.code != 0:
        return f"replay --job {dead.id} failed: {result}"
    async with open_backends(load_config(root, env).config, root / ".ghapplets") as b:
        deadline = time.monotonic() + timeout
        while True:
            now = await b.store.get_job(dead.id)
            if now.status.final and now.attempts > dead.attempts:
                return None
            if time.monotonic() > deadline:
                return (
                    f"replayed dead letter {dead.id} did not run again within {timeout:g} s "
                    f"(status {now.status}, attempts {now.attempts}, before {dead.attempts})"
                )
            await asyncio.sleep(0.1)


def dead_letters(jobs: Sequence[JobRecord]) -> list[JobRecord]:
    return sorted((j for j in jobs if j.status == JobStatus.DEAD), key=lambda j: j.id)
