"""The random fault soak: the real platform under a continuous signed load, hit by random faults.

``python3 tasks.py soak --seconds N --seed S [--backend embedded|nats-postgresql|both]`` runs
it (or, with the project's Python, ``python -m tests.soak`` from the repository root);
``tests/test_soak.py`` runs a short one on both backends in CI. docs/testing.md describes it.

For ``--seconds`` seconds, several senders post signed GitHub webhooks (unique delivery ids,
one in ten badly signed; a request that gets no answer is sent again with the same id, as
GitHub's redelivery would) to ``ghapplets serve``, whose project has the crash matrix's applets
(tests/faults.py): ``effect`` records every run, ``flaky`` fails its first attempt, ``doomed``
dead-letters every third issue. Meanwhile a fault loop driven by ``random.Random(seed)`` waits
a random moment, then injects one of:

- ``crash``: serve is restarted (SIGTERM, then started again) with
  ``GHAPPLETS_CRASH_AT=<random point>:<random n>`` and dies there under the load (SIGKILL of the
  whole node; if the point is not reached in time, the node is killed with ``kill -9``);
- ``kill -9``: SIGKILL of the whole serve process group, at once;
- ``sigterm``: a graceful stop (the node drains its work in flight);

and starts serve again without the variable. Then the load stops, the work drains, and the
crash matrix's invariants are checked (:func:`tests.faults.inspect`), a dead letter is replayed,
and a summary is printed. Every failure names the seed and the command that reproduces it; the
seed fixes the faults (kinds, points, counts, moments), not the interleaving with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from ghapplets.logging import configure
from tests.conftest import ProjectBuilder
from tests.faults import (
    FLOW_POINTS,
    GRACEFUL,
    Node,
    Verdict,
    build_project,
    dead_letters,
    drained,
    forge,
    inspect,
    replay_dead_letter,
    serve_env,
    signed,
    some,
)
from tests.servers import NatsServer, PostgresServer, free_port, postgres_server

Backend = Literal["embedded", "nats-postgresql"]
BACKENDS: tuple[Backend, ...] = ("embedded", "nats-postgresql")
KINDS = ("crash", "kill -9", "sigterm")
WEIGHTS = (2, 1, 1)  # a crash at a named point is the most telling fault
SENDERS = 4
FORGED_EVERY = 10  # delivery n is badly signed when n % FORGED_EVERY == FORGED_EVERY // 2
RESENDS = 4  # a request without an answer is sent again, with the same id, up to this often
MAX_COUNT = 20  # a crash point's arrival count n is drawn from 1..MAX_COUNT
FAULT_GAP = (0.5, 2.0)  # seconds of normal service before each fault (uniform)
# a fault (a stop and a start, about 3 s) begins only with this much of --seconds left
FAULT_ROOM = 3.0
ARMED_TIMEOUT = 8.0  # seconds an armed node may take to reach its point (about 1 s under load)
STOP_TIMEOUT = 40.0  # seconds a SIGTERM'd node may take to drain and exit
NATS_ACK_WAIT = "5"  # a job held by a killed worker is delivered again this soon


@dataclass(frozen=True)
class Options:
    seconds: float
    seed: int
    backend: Backend
    rate: float = 40.0  # deliveries a second, all senders together
    drain_timeout: float = 120.0  # seconds the work may take to settle after the load stops

    def command(self) -> str:
        """The command that runs this soak again (same seed: the same faults)."""
        extra = f" --rate {self.rate:g}" if self.rate != Options.rate else ""
        return (
            f"python3 tasks.py soak --seconds {self.seconds:g} --seed {self.seed} "
            f"--backend {self.backend}{extra}"
        )


@dataclass
class Report:
    options: Options
    elapsed: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    missed: list[str] = field(default_factory=list)  # points not reached (killed instead)
    points: list[str] = field(default_factory=list)  # the crash points that fired
    sent: int = 0
    requests: int = 0
    acknowledged: int = 0
    rejected: int = 0
    unanswered: int = 0
    verdict: Verdict | None = None
    problems: list[str] = field(default_factory=list)
    workdir: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        o, v = self.options, self.verdict or Verdict()
        faults = ", ".join(f"{k} {self.faults[k]}" for k in KINDS) or "none"
        missed = f" ({len(self.missed)} killed instead)" if self.missed else ""
        lines = [
            f"== soak summary ({o.backend}) ==",
            f"seconds       {o.seconds:g} (whole run {self.elapsed:.1f})",
            f"seed          {o.seed}",
            f"faults        {sum(self.faults.values())}: {faults}{missed}",
            f"crash points  {', '.join(self.points) or 'none'}",
            f"not reached   {', '.join(self.missed) or 'none'}",
            f"sent          {self.sent} deliveries in {self.requests} requests",
            f"acknowledged  {self.acknowledged} (rejected, badly signed: {self.rejected}; "
            f"never answered: {self.unanswered})",
            f"processed     {v.processed} (deliveries stored: {v.stored})",
            f"duplicates    {v.duplicates} (effect runs {v.runs}, at most {v.most_runs} of a job)",
            f"lost          {len(v.lost)}",
        ]
        lines += [f"note          {n}" for n in v.notes]
        if self.ok:
            lines.append("result        OK")
            return "\n".join(lines)
        lines.append("result        FAILED")
        lines += [f"  - {p}" for p in self.problems]
        lines.append(f"reproduce     {o.command()}")
        if self.workdir is not None:
            lines.append(f"logs          {self.workdir} (serve.log, runs in effects/runs.log)")
        return "\n".join(lines)


class Load:
    """Senders posting signed webhooks to the node until :meth:`stop`."""

    def __init__(self, port: int, prefix: str, rate: float, seed: int) -> None:
        self.url = f"http://127.0.0.1:{port}/hooks/github"
        self.prefix = prefix
        self.rate = rate
        self.seed = seed
        self.numbers = itertools.count(1)
        self.sent = 0
        self.requests = 0
        self.acked: set[str] = set()
        self.rejected: set[str] = set()
        self.forged: set[str] = set()
        self.unanswered: set[str] = set()
        self.accepted_forged: set[str] = set()
        self.refused_good: set[str] = set()
        self.odd_answers: set[str] = set()
        self._stop = asyncio.Event()

    def problems(self) -> list[str]:
        found = []
        if self.accepted_forged:
            found.append(f"badly signed deliveries accepted: {some(self.accepted_forged)}")
        if self.refused_good:
            found.append(f"well signed deliveries refused: {some(self.refused_good)}")
        if self.odd_answers:
            found.append(f"unexpected answers: {some(self.odd_answers)}")
        return found

    async def run(self) -> None:
        await asyncio.gather(*(self._sender(i) for i in range(SENDERS)))

    def stop(self) -> None:
        self._stop.set()

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _sender(self, index: int) -> None:
        pace = random.Random(f"{self.seed}-{index}")  # spacing only; the faults have their own
        loop = asyncio.get_running_loop()
        due = loop.time()
        async with httpx.AsyncClient(timeout=5) as client:
            while not self._stop.is_set():
                await self._deliver(client, next(self.numbers))
                # a Poisson stream of ``rate / SENDERS`` a second, whatever the answers took;
                # after a long wait (the node was down) it starts afresh rather than bursting
                due = max(due, loop.time() - 1.0) + pace.expovariate(self.rate / SENDERS)
                await self._pause(due - loop.time())

    async def _deliver(self, client: httpx.AsyncClient, n: int) -> None:
        delivery = f"{self.prefix}-{n}"
        body, headers = signed(delivery, n)
        bad = n % FORGED_EVERY == FORGED_EVERY // 2
        if bad:
            headers = forge(headers)
            self.forged.add(delivery)
        self.sent += 1
        for attempt in range(RESENDS + 1):
            if attempt:  # no answer: the node is down or restarting; send it again shortly
                await asyncio.sleep(0.25 * 2 ** (attempt - 1))
            self.requests += 1
            try:
                r = await client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError:
                continue
            if r.status_code == 202:
                self.acked.add(delivery)
                if bad:
                    self.accepted_forged.add(delivery)
                return
            if r.status_code == 401:
                self.rejected.add(delivery)
                if not bad:
                    self.refused_good.add(delivery)
                return
            if r.status_code < 500:
                self.odd_answers.add(f"{delivery}: {r.status_code} {r.text[:200]}")
                return
        self.unanswered.add(delivery)


class Soak:
    def __init__(self, options: Options, workdir: Path, env: dict[str, str]) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.workdir = workdir
        self.out = workdir / "effects"
        self.root = build_project(ProjectBuilder(workdir / "project"), self.out)
        self.env = env
        self.node = Node(self.root, free_port(), workdir / "serve.log", env)
        self.load = Load(self.node.port, f"s{options.seed}", options.rate, options.seed)
        self.report = Report(options, workdir=workdir)
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{self.o.backend} {time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def progress(self) -> str:
        load, faults = self.load, self.report.faults
        return (
            f"faults {sum(faults.values())} ({', '.join(f'{k} {faults[k]}' for k in KINDS)}); "
            f"sent {load.sent}, acknowledged {len(load.acked)}, rejected {len(load.rejected)}, "
            f"unanswered {len(load.unanswered)}"
        )

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(2)
            self.say(self.progress())

    # -- faults --------------------------------------------------------------------------------
    async def _start(self, crash_at: str | None = None) -> bool:
        """Start the node; True once ready, False if an armed node died first."""
        await asyncio.to_thread(self.node.start, crash_at)
        return await asyncio.to_thread(self.node.wait_ready, 60, may_exit=crash_at is not None)

    async def _stop(self) -> None:
        """SIGTERM: the node drains and exits cleanly (else that is a finding)."""
        code = await asyncio.to_thread(self.node.terminate, STOP_TIMEOUT)
        if code is None:
            self.report.problems.append(
                f"incarnation {self.node.incarnation} did not stop within {STOP_TIMEOUT:g} s "
                "of SIGTERM"
            )
            await asyncio.to_thread(self.node.kill)
        elif code not in GRACEFUL:
            self.report.problems.append(
                f"incarnation {self.node.incarnation} exited with {code} after SIGTERM"
            )

    def _still_running(self) -> None:
        """Serve must not stop by itself (a child that dies is restarted by the supervisor)."""
        proc = self.node.proc
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"incarnation {self.node.incarnation} exited by itself with {proc.returncode}:\n"
                f"{self.node.tail()}"
            )

    async def _crash(self) -> str:
        point, n = self.rng.choice(FLOW_POINTS), self.rng.randint(1, MAX_COUNT)
        armed = f"{point}:{n}"
        await self._stop()  # a restart with the variable set
        await self._start(armed)
        code = await asyncio.to_thread(self.node.wait_exit, ARMED_TIMEOUT)
        if code is None:
            self.report.missed.append(armed)
            await asyncio.to_thread(self.node.kill)
            return f"crash at {armed}: not reached in {ARMED_TIMEOUT:g} s, killed"
        if code != -signal.SIGKILL:
            self.report.problems.append(f"armed with {armed}, serve exited with {code}")
        self.report.points.append(armed)
        return f"crash at {armed}: died"

    async def _faults(self) -> None:
        end = self.started + self.o.seconds
        while True:
            gap = self.rng.uniform(*FAULT_GAP)
            left = end - time.monotonic()
            if gap + FAULT_ROOM > left:
                await asyncio.sleep(max(0.0, left))
                return
            await asyncio.sleep(gap)  # a random moment of normal service under the load
            self._still_running()
            kind = self.rng.choices(KINDS, WEIGHTS)[0]
            began = time.monotonic()
            if kind == "crash":
                what = await self._crash()
            elif kind == "kill -9":
                code = await asyncio.to_thread(self.node.kill)
                what = f"kill -9 of incarnation {self.node.incarnation} (exit {code})"
            else:
                await self._stop()
                what = f"sigterm: incarnation {self.node.incarnation} drained and stopped"
            self.report.faults[kind] += 1
            await self._start()
            took = time.monotonic() - began
            count = sum(self.report.faults.values())
            self.say(f"fault {count}: {what}; up again after {took:.1f} s")

    # -- the whole run -------------------------------------------------------------------------
    async def run(self) -> Report:
        r = self.report
        self.say(f"seed {self.o.seed}, {self.o.seconds:g} s; project in {self.workdir}")
        await self._start()
        load = asyncio.create_task(self.load.run())
        ticker = asyncio.create_task(self._ticker())
        try:
            await self._faults()
        finally:
            self.load.stop()
            await load
            ticker.cancel()
        r.sent, r.requests = self.load.sent, self.load.requests
        r.acknowledged, r.rejected = len(self.load.acked), len(self.load.rejected)
        r.unanswered = len(self.load.unanswered)
        r.problems += self.load.problems()
        self._still_running()
        self.say(f"load stopped; {self.progress()}; waiting for the work to drain")
        limit = 4 * self.load.sent + 1000
        settled = await drained(self.root, self.env, self.load.acked, self.o.drain_timeout, limit)
        if not settled:
            r.problems.append(f"the work did not drain within {self.o.drain_timeout:g} s")
        v = r.verdict = await inspect(
            self.root,
            self.env,
            self.out,
            self.node,
            acknowledged=self.load.acked,
            forged=self.load.forged,
            limit=limit,
        )
        r.problems += v.problems
        dead = dead_letters(v.jobs)
        if dead:
            problem = await replay_dead_letter(self.root, self.env, self.rng.choice(dead))
            if problem:
                r.problems.append(problem)
        elif r.acknowledged:
            r.problems.append("no dead letter: the doomed applet's jobs did not die")
        return r


@contextlib.contextmanager
def backends(
    backend: Backend, workdir: Path, pg: PostgresServer | None = None
) -> Iterator[dict[str, str]]:
    """The ``GHAPPLETS_*`` overrides of ``backend``: nothing for the embedded one; for
    nats-postgresql a private nats-server and a fresh database (on ``pg``, or on the local or
    a private embedded PostgreSQL server), removed afterwards."""
    if backend == "embedded":
        yield {}
        return
    nats = NatsServer(workdir / "nats").start()
    server = pg or postgres_server()
    database = server.create_database()
    try:
        yield {
            "GHAPPLETS_BROKER__BACKEND": "nats",
            "GHAPPLETS_BROKER__URL": nats.url,
            "GHAPPLETS_BROKER__ACK_WAIT": NATS_ACK_WAIT,
            "GHAPPLETS_STORAGE__BACKEND": "postgresql",
            "GHAPPLETS_STORAGE__URL": server.url(database),
        }
    finally:
        nats.kill()
        server.drop_database(database)
        if pg is None:
            server.close()


def run(options: Options, workdir: Path, pg: PostgresServer | None = None) -> Report:
    """One soak on one backend, in ``workdir``; the report (its summary is not printed)."""
    started = time.monotonic()
    with backends(options.backend, workdir, pg) as overrides:
        env = serve_env({**overrides, "GHAPPLETS_SERVER__DRAIN_TIMEOUT": "10"})
        soak = Soak(options, workdir, env)
        report = soak.report
        try:
            asyncio.run(soak.run())
        except Exception as exc:  # the node would not start, a check crashed...
            report.problems.append(f"the soak stopped: {exc}")
        finally:
            if soak.node.running:
                code = soak.node.terminate(STOP_TIMEOUT)
                if code is None:
                    soak.node.kill()
                    report.problems.append("the last incarnation did not stop after SIGTERM")
                elif code not in GRACEFUL:
                    report.problems.append(f"the last incarnation exited with {code}")
        report.problems += soak.node.problems
    report.elapsed = time.monotonic() - started
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to inject faults")
    parser.add_argument("--seed", type=int, help="the faults' random seed (default: a new one)")
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--rate", type=float, default=Options.rate, help="deliveries a second")
    parser.add_argument("--keep", action="store_true", help="keep the work folder on success")
    args = parser.parse_args(argv)
    configure("console", "error")  # this process's own store connections: errors only
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    chosen = BACKENDS if args.backend == "both" else (args.backend,)
    reports = []
    for backend in chosen:
        options = Options(args.seconds, seed, backend, rate=args.rate)
        workdir = Path(tempfile.mkdtemp(prefix=f"ghapplets-soak-{backend}-"))
        report = run(options, workdir)
        print(report.summary(), flush=True)
        if report.ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        reports.append(report)
    failed = [r for r in reports if not r.ok]
    for r in failed:
        print(
            f"FAILED on {r.options.backend} with seed {r.options.seed}; "
            f"reproduce with: {r.options.command()}",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
