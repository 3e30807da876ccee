"""Processes publishing into one SQLite file: the writer flock against SQLite's busy handler.

    python bench/sqlite_writers.py                       # 1, 2, 4 and 8 processes, both modes
    python bench/sqlite_writers.py -p 4 -m 4000 --mode flock --rounds 3
    python bench/sqlite_writers.py -p 4 --rate 2000      # open loop: 2,000 msg/s per process

Each of P processes opens the database (as a gateway process does: ``SqliteBroker(db,
consume=False)``) and publishes M messages of ``--size`` bytes (8 KB, an average webhook) as
fast as it can from ``--concurrency`` concurrent publishers, so publishes made in one event-loop
turn share a transaction (group commit). All processes start together (a barrier). ``flock``
mode is the default database: each transaction takes ``<file>.write.lock`` before
``BEGIN IMMEDIATE``. ``busy`` mode leaves waiting writers to SQLite's busy handler
(``Database(write_lock=False)``), which sleeps 1, 2, 5, 10, ... ms between tries.

With ``--rate R`` each process publishes open loop instead: message i is due at start + i/R,
and its latency counts from that due time (so a writer that falls behind is charged for it,
not hidden by coordinated omission), which is how gateways below their peak see it.

Printed per run: messages per second (all processes, from the barrier to the last commit),
publish latency p50 / p99 / max (from the call, or the due time, to its return, i.e. to its
commit), commits, and failed publishes. Standard library plus Ghapplets.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from ghapplets.broker.base import OutboundMessage
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.store.database import Database


def writer(
    path: str,
    name: str,
    count: int,
    size: int,
    lanes: int,
    flock: bool,
    rate: float,
    barrier: Barrier,
) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        db = Database(Path(path), write_lock=flock)
        broker = SqliteBroker(db, consume=False)
        await broker.start()
        body = os.urandom(size)
        latencies: list[float] = []
        errors: list[str] = []

        async def lane(k: int) -> None:
            for i in range(k, count, lanes):
                message = OutboundMessage("events", f"{name}-{i}", {"n": str(i)}, body)
                started = time.perf_counter()
                if rate:
                    started = origin + i / rate
                    await asyncio.sleep(max(0.0, started - time.perf_counter()))
                try:
                    await broker.publish(message)
                except Exception as exc:
                    errors.append(str(exc))
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.to_thread(barrier.wait)
        began = time.time()
        origin = time.perf_counter()
        await asyncio.gather(*(lane(k) for k in range(lanes)))
        ended = time.time()
        commits = db.commits
        await broker.close()
        db.close()
        return {
            "began": began,
            "ended": ended,
            "latencies": latencies,
            "errors": errors,
            "commits": commits,
        }

    return asyncio.run(main())


def _run(args: tuple[Any, ...]) -> dict[str, Any]:
    return writer(*args)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_run(
    folder: Path, processes: int, messages: int, size: int, lanes: int, flock: bool, rate: float
) -> dict[str, Any]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "bench.db"
    db = Database(path)  # created and migrated before the race
    db.open()
    db.close()
    ctx = mp.get_context("spawn")
    barrier = ctx.Manager().Barrier(processes)
    jobs = [
        (str(path), f"p{n}", messages, size, lanes, flock, rate, barrier) for n in range(processes)
    ]
    with ctx.Pool(processes) as pool:
        results = pool.map(_run, jobs)
    latencies = [x for r in results for x in r["latencies"]]
    errors = [e for r in results for e in r["errors"]]
    began = min(r["began"] for r in results)
    ended = max(r["ended"] for r in results)
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT count(*) FROM broker_messages").fetchone()[0]
    return {
        "mode": "flock" if flock else "busy",
        "processes": processes,
        "msgs_per_s": len(latencies) / (ended - began),
        "p50_ms": quantile(latencies, 0.50) * 1000 if latencies else float("nan"),
        "p90_ms": quantile(latencies, 0.90) * 1000 if latencies else float("nan"),
        "p99_ms": quantile(latencies, 0.99) * 1000 if latencies else float("nan"),
        "max_ms": max(latencies) * 1000 if latencies else float("nan"),
        "commits": sum(r["commits"] for r in results),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "stored": stored,
        "expected": processes * messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-p", "--processes", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("-m", "--messages", type=int, default=2000, help="per process")
    parser.add_argument("--size", type=int, default=8192, help="bytes per message")
    parser.add_argument("--concurrency", type=int, default=32, help="publishers per process")
    parser.add_argument("--mode", choices=["both", "flock", "busy"], default="both")
    parser.add_argument("--rate", type=float, default=0, help="msg/s per process (open loop)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per setting (interleaved)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the database")
    args = parser.parse_args()
    modes = {"both": [True, False], "flock": [True], "busy": [False]}[args.mode]
    base = args.dir or Path(tempfile.mkdtemp(prefix="ghapplets-writers-"))
    print(
        f"# {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {base}"
    )
    pace = f"open loop at {args.rate:.0f} msg/s each" if args.rate else "closed loop"
    print(
        f"# {args.messages} messages of {args.size} B per process, "
        f"{args.concurrency} concurrent publishers each, {pace}, synchronous=NORMAL, WAL"
    )
    header = (
        f"{'mode':>5} {'procs':>5} {'msgs/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} "
        f"{'commits':>7} {'errors':>6}"
    )
    print(header)
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        for _ in range(args.rounds):
            for processes in args.processes:
                for flock in modes:
                    r = one_run(
                        base / "run",
                        processes,
                        args.messages,
                        args.size,
                        args.concurrency,
                        flock,
                        args.rate,
                    )
                    rows.setdefault((r["mode"], processes), []).append(r)
                    lost = r["expected"] - r["stored"] - r["errors"]
                    print(
                        f"{r['mode']:>5} {processes:>5} {r['msgs_per_s']:>8.0f} "
                        f"{r['p50_ms']:>7.1f} {r['p90_ms']:>7.1f} {r['p99_ms']:>7.1f} "
                        f"{r['max_ms']:>7.1f} "
                        f"{r['commits']:>7} {r['errors']:>6}"
                        + (f"  first error: {r['first_error']}" if r["errors"] else "")
                        + (f"  MISSING {lost}" if lost else ""),
                        flush=True,
                    )
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    if args.rounds > 1:
        print("# medians over rounds")
        for (mode, processes), runs in rows.items():
            print(
                f"{mode:>5} {processes:>5} "
                f"{statistics.median(r['msgs_per_s'] for r in runs):>8.0f} "
                f"{statistics.median(r['p50_ms'] for r in runs):>7.1f} "
                f"{statistics.median(r['p90_ms'] for r in runs):>7.1f} "
                f"{statistics.median(r['p99_ms'] for r in runs):>7.1f} "
                f"{statistics.median(r['max_ms'] for r in runs):>7.1f}"
            )


if __name__ == "__main__":
    main()
