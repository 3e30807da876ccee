"""Benchmark blueprint orchestration: one webhook starts a run of 400 sequential applet calls.

    python bench/blueprints.py                 # both modes, 3 runs each
    python bench/blueprints.py --only embedded --runs 5
    python bench/blueprints.py --profile       # also profile the engine in process

The project has one Python applet, ``fibo`` (fibo(10) per call), and one blueprint whose
``schedule.on`` takes GitHub's ``issues.opened`` and whose 400 tasks each ``call: fibo``, every
task checkpointed in the store. For each mode it starts the real processes (``ghapplets serve``
on the embedded SQLite default; ``ghapplets gateway`` + ``ghapplets worker`` on NATS JetStream
and PostgreSQL), sends a signed webhook, and times it until the run is recorded completed,
reading the store directly. Targets (the blueprints issue): 2 s embedded, 8 s on NATS+PG, on a
2-core machine; Windmill's published figure is about 50 ms a task (19.7 s for 400).

Prints machine, settings and figures with PASS/FAIL, and writes bench/.work/blueprints.json.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import io
import json
import os
import pstats
import shutil
import sqlite3
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (
    WORK,
    Backends,
    BenchError,
    find_ghapplets,
    free_port,
    launch,
    machine_info,
    say,
)

TASKS = 400
TARGET_S = {"embedded": 2.0, "nats-pg": 8.0}
SECRET = "ghapplets-bench-secret"  # a throwaway secret used only by the benchmark
FIBO = """from ghapplets import Applet, Context

app = Applet("fibo")


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


@app.on("ghapplets.blueprint.call")
def handle(ctx: Context) -> dict:
    return {"n": ctx.data["n"], "fib": fib(ctx.data["n"])}
"""


def blueprint(tasks: int) -> str:
    body = "\n".join(f"  - t{i}:\n      call: fibo\n      with: {{n: 10}}" for i in range(tasks))
    return (
        "document: {dsl: '1.0.0', namespace: bench, name: chain, version: '1.0.0'}\n"
        "schedule:\n  on:\n    one:\n      with:\n        type: com.github.issues.opened\n"
        f"do:\n{body}\n"
    )


def write_project(root: Path, tasks: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    (root / "applets" / "fibo").mkdir(parents=True)
    (root / "applets" / "fibo" / "applet.yaml").write_text(
        "name: fibo\nruntime: python\nentry: handler.py\n"
    )
    (root / "applets" / "fibo" / "handler.py").write_text(FIBO)
    (root / "blueprints").mkdir()
    (root / "blueprints" / "chain.yaml").write_text(blueprint(tasks))
    (root / "ghapplets.yaml").write_text(
        "# written by bench/blueprints.py\nproject: bench\nsources:\n  github:\n"
        "    kind: github\n    secret: ${env:GITHUB_WEBHOOK_SECRET}\n"
        "applets:\n  - applets\nblueprints:\n  - blueprints\nlogging:\n  level: warning\n"
    )


def webhook(delivery: str, number: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "action": "opened",
            "issue": {"number": number, "title": "bench", "user": {"login": "u"}},
            "repository": {"full_name": "o/r", "name": "r", "owner": {"login": "o"}},
            "sender": {"login": "u"},
        }
    ).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "content-type": "application/json",
        "x-github-event": "issues",
        "x-github-delivery": delivery,
        "x-hub-signature-256": sig,
    }


def run_state(backends: Backends, run_id: str) -> str | None:
    if backends.mode == "embedded":
        db = backends.data / "ghapplets.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute(
                "SELECT status FROM blueprint_runs WHERE id = ?", (run_id,)
            ).fetchone()
        return row[0] if row else None
    found = backends._sql(
        backends.db_url, "SELECT status FROM blueprint_runs WHERE id = $1", run_id
    )
    return str(found) if found else None


def bench_mode(cli: Path, mode: str, runs: int, tasks: int, pg_url: str) -> dict[str, Any]:
    project = WORK / "blueprint-project"
    data = WORK / f"blueprint-data-{mode}"
    write_project(project, tasks)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    backends = Backends(mode, data, pg_url)
    backends.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPPLETS_")}
    env.update(backends.env, GITHUB_WEBHOOK_SECRET=SECRET)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    common = ["-p", str(project), "--data-dir", str(data)]
    servers = []
    try:
        if mode == "embedded":
            servers.append(
                launch(
                    "bp-serve",
                    [str(cli), "serve", "--port", str(port), *common],
                    env,
                    project,
                    base,
                    "/readyz",
                )
            )
        else:
            servers.append(
                launch(
                    "bp-gateway",
                    [str(cli), "gateway", "--port", str(port), *common],
                    env,
                    project,
                    base,
                    "/readyz",
                )
            )
            wport = free_port()
            servers.append(
                launch(
                    "bp-worker",
                    [str(cli), "worker", "--port", str(wport), *common],
                    env,
                    project,
                    f"http://127.0.0.1:{wport}",
                    "/readyz",
                )
            )
        seconds = []
        for i in range(runs + 1):  # the first one warms up (imports, connections)
            delivery = f"bp-{uuid.uuid4().hex[:12]}"
            body, headers = webhook(delivery, i + 1)
            started = time.perf_counter()
            r = httpx.post(base + "/hooks/github", content=body, headers=headers, timeout=10)
            if r.status_code != 202:
                raise BenchError(f"the webhook was answered {r.status_code}: {r.text}")
            run_id = f"github:{delivery}:bench/chain"
            while (state := run_state(backends, run_id)) not in ("completed", "faulted"):
                if time.perf_counter() - started > 120:
                    raise BenchError(f"run {run_id} did not finish in 120 s ({state})")
                time.sleep(0.002)
            elapsed = time.perf_counter() - started
            if state != "completed":
                raise BenchError(f"run {run_id} {state}")
            if i:
                seconds.append(elapsed)
            say(f"{mode}: run {i} ({'warm-up' if not i else 'measured'}) {elapsed:.3f} s")
    finally:
        for server in servers:
            server.stop()
        backends.stop()
    best, median = min(seconds), statistics.median(seconds)
    return {
        "mode": mode,
        "tasks": tasks,
        "runs_s": [round(s, 3) for s in seconds],
        "best_s": round(best, 3),
        "median_s": round(median, 3),
        "ms_per_task": round(median / tasks * 1000, 2),
        "target_s": TARGET_S[mode],
        "pass": median <= TARGET_S[mode],
    }


def profile(tasks: int) -> str:
    """The engine in process on the embedded backends, under cProfile: where the time goes."""
    import asyncio

    from ghapplets.testing.gateway import running_gateway

    root = WORK / "blueprint-profile"
    write_project(root, tasks)
    os.environ["GITHUB_WEBHOOK_SECRET"] = SECRET

    async def once() -> None:
        data = WORK / "blueprint-profile-data"
        shutil.rmtree(data, ignore_errors=True)
        async with running_gateway(root, data) as gw:
            store = gw.platform.backends.store
            await gw.send("github", "issues.opened")
            while True:  # polled: the store has no notification to wait on
                runs = await store.list_runs(name="chain")
                if runs and runs[0].status.final:
                    return
                await asyncio.sleep(0.002)

    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(once())
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=sorted(TARGET_S))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=TASKS)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--ghapplets", help="the ghapplets command (default: next to this Python)")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args(argv)
    cli = find_ghapplets(args.ghapplets)
    results: dict[str, Any] = {"machine": machine_info(), "modes": []}
    for mode in [args.only] if args.only else sorted(TARGET_S):
        results["modes"].append(bench_mode(cli, mode, args.runs, args.tasks, args.pg_url))
    if args.profile:
        results["profile"] = profile(args.tasks)
    print(json.dumps(results["machine"], indent=1))
    for row in results["modes"]:
        verdict = "PASS" if row["pass"] else "FAIL"
        print(
            f"{row['mode']:>9}: {row['tasks']} tasks in {row['median_s']} s (median of "
            f"{len(row['runs_s'])}; best {row['best_s']} s), {row['ms_per_task']} ms a task; "
            f"target {row['target_s']} s: {verdict}"
        )
    if args.profile:
        print(results["profile"])
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "blueprints.json").write_text(json.dumps(results, indent=1))
    return 0 if all(r["pass"] for r in results["modes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
