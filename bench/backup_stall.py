"""Measure the longest acknowledgement stall while ``ghapplets backup`` runs beside ``serve``.

    python bench/backup_stall.py                   # 100,000 deliveries in the store, 100 req/s
    python bench/backup_stall.py --events 10000 --backups 1    # a quick run
    python bench/backup_stall.py --rate 200 --body-bytes 4096

1. **Fill.** A fresh data folder of the embedded mode is filled through the store's own API
   (``record_dispatch`` and ``job_finished``, as the worker writes them) with ``--events``
   deliveries of the benchmark's signed ~8 KB GitHub ``issues.opened`` payload
   (``bench/payload.py``), each with an issue text of its own (random words: real bodies
   differ, and one body stored 100,000 times would compress to nothing in the archive), its
   job succeeded and its attempt, and the embedded broker's settled messages for the event
   and the job (ids and headers, no bodies: what the broker keeps of acknowledged messages).
   That is the shape of a folder that has taken that many webhooks, made in seconds.
2. **Serve and send.** ``ghapplets serve`` (default processes: a gateway per core and the
   worker) runs the generated project (one GitHub source, one no-op Python applet) on that
   folder, and an open-loop sender (``--connections`` keep-alive connections) posts signed
   webhooks at ``--rate`` per second with new delivery ids, each due at its slot: a request's
   latency counts from its due time to its answer, so a stalled server is charged for the
   requests that queued up behind it.
3. **Back up.** After ``--warmup`` seconds, ``--backups`` times: ``ghapplets backup FILE``
   runs to its end while the sender goes on, then ``--settle`` seconds, then a window without
   a backup as long as the backup took (at least ``--baseline`` seconds). Meanwhile the frames
   of the write-ahead log in use are read from the ``-shm`` wal-index twice a second: the
   checkpointer's ``RESTART`` at ``WAL_RESTART_PAGES`` waits for the backup's reader, and
   holds the write lock while it waits (see docs/benchmark.md).
4. **Restore.** With the server stopped, the archive is restored into a new folder, timed
   (the restore time is the embedded mode's RTO), and ``serve`` is started on it until
   ``/readyz`` answers.

Printed and written to ``bench/.work/backup-stall.json``: for each backup, the longest
acknowledgement (and p50, p99, p99.9) during it, just after it and without it, non-2xx
answers, its duration and size, when its slowest answers were due and the log's frames; the
longest during the backups against the longest without; and the restore's time. Standard
library plus httpx and Ghapplets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
import payload  # bench/payload.py, next to this file
from run import (
    WORK,
    BenchError,
    find_ghapplets,
    folder_bytes,
    free_port,
    machine_info,
    say,
    versions,
)

from ghapplets.broker.base import EVENTS, JOBS
from ghapplets.store.database import WAL_RESTART_PAGES, Database
from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
)
from ghapplets.store.schema import broker_messages
from ghapplets.store.sqlite import SqliteHistoryStore

HERE = WORK / "backup-stall"
SEED = 20261204
APPLET = "noop"
SETTLED = 1  # broker_messages.state of an acknowledged message
BATCH = 500


def write_project(root: Path) -> None:
    noop = root / "applets" / APPLET
    noop.mkdir(parents=True)
    (noop / "applet.yaml").write_text(payload.NOOP_MANIFEST)
    (noop / "handler.py").write_text(payload.NOOP_HANDLER)
    (root / "ghapplets.yaml").write_text(
        "# written by bench/backup_stall.py: one GitHub source, one no-op applet\n"
        "project: backup-stall\n"
        "sources:\n"
        "  github:\n"
        "    kind: github\n"
        "    secret: ${env:GITHUB_WEBHOOK_SECRET}\n"
        "    replay_protection: false  # one body is sent under new delivery ids\n"
        "applets:\n"
        "  - applets\n"
        "logging:\n"
        "  format: json\n"
        "  level: info\n"
    )


# -- fill ----------------------------------------------------------------------------------------
class Bodies:
    """The payload with its issue's number and text made unique per delivery."""

    def __init__(self, body: bytes) -> None:
        self.doc = json.loads(body)
        self.room = len(self.doc["issue"]["body"])
        rng = random.Random(SEED)
        letters = "etaoinshrdlucmfwypvbgkjqxz"
        self.words = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(2000)]
        self.rng = rng

    def __call__(self, i: int) -> bytes:
        text = " ".join(self.rng.choices(self.words, k=self.room // 4))[: self.room]
        issue = {**self.doc["issue"], "number": i + 1, "id": 2_000_000_000 + i, "body": text}
        return json.dumps({**self.doc, "issue": issue}, separators=(",", ":")).encode()


def _records(i: int, body: bytes, now: float) -> tuple[DeliveryRecord, JobRecord, dict[str, Any]]:
    did = str(uuid.UUID(int=i, version=4))
    event_headers = {
        "ce-specversion": "1.0",
        "ce-id": did,
        "ce-source": "/github",
        "ce-type": "com.github.issues.opened",
        "ce-time": "2026-12-04T10:00:00.000Z",
        "content-type": "application/json",
        "ce-subject": "octo-org/hello-world#1347",
        "ce-githubevent": "issues",
        "ghapplets-source": "github",
        "ghapplets-received-at": repr(now),
    }
    vendor = {
        "x-github-delivery": did,
        "x-github-event": "issues",
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/bench",
        "content-length": str(len(body)),
    }
    attributes = {k[3:]: v for k, v in event_headers.items() if k.startswith("ce-")}
    delivery = DeliveryRecord(
        source="github",
        id=did,
        type="com.github.issues.opened",
        subject="octo-org/hello-world#1347",
        time="2026-12-04T10:00:00.000Z",
        received_at=now,
        status=DeliveryStatus.DISPATCHED,
        attributes=attributes,
        headers=vendor,
        body=body,
        jobs_total=1,
    )
    job_id = f"github:{did}:{APPLET}"
    job = JobRecord(job_id, "github", did, APPLET, JobStatus.QUEUED, now, now)
    return delivery, job, {"event": event_headers, "vendor": vendor}


def _broker_rows(
    did: str, job_id: str, headers: dict[str, Any], now: float
) -> list[dict[str, Any]]:
    event = {
        **headers["event"],
        "ghapplets-vendor-headers": orjson.dumps(headers["vendor"]).decode(),
    }
    job = {
        **headers["event"],
        "ghapplets-delivery-id": did,
        "ghapplets-applet": APPLET,
        "ghapplets-job-id": job_id,
    }
    common = {"data": None, "created_at": now, "available_at": now, "delivered": 1}
    return [
        {
            **common,
            "stream": EVENTS,
            "msg_id": f"github:{did}",
            "headers": orjson.dumps(event).decode(),
            "state": SETTLED,
        },
        {
            **common,
            "stream": JOBS,
            "msg_id": job_id,
            "headers": orjson.dumps(job).decode(),
            "state": SETTLED,
        },
    ]


async def fill(db_path: Path, events: int, bodies: Bodies) -> float:
    """Write ``events`` finished deliveries into a new store at ``db_path``; the seconds taken."""
    t0 = time.monotonic()
    db = Database(db_path)
    db.open()
    store = SqliteHistoryStore(db)
    start = time.time() - events * 0.01  # received over the last while, 100 a second
    try:
        for first in range(0, events, BATCH):
            made = [
                _records(i, bodies(i), start + i * 0.01)
                for i in range(first, min(events, first + BATCH))
            ]
            await store.record_dispatch([d for d, _, _ in made], [j for _, j, _ in made])
            updates = []
            rows: list[dict[str, Any]] = []
            for d, j, headers in made:
                at = d.received_at + 0.002
                attempt = AttemptRecord(j.id, 1, at, at + 0.001, AttemptOutcome.OK)
                updates.append(store.job_finished(JobUpdate(j.id, JobStatus.SUCCEEDED, attempt)))
                rows += _broker_rows(d.id, j.id, headers, d.received_at)
            await asyncio.gather(*updates)  # one group commit for the batch
            await db.write(lambda conn, rows=rows: conn.execute(insert(broker_messages), rows))
            if (first // BATCH) % 20 == 0:
                say(f"fill: {first + len(made):,} of {events:,} deliveries")
    finally:
        db.close()
    return time.monotonic() - t0


# -- the sender ----------------------------------------------------------------------------------
@dataclass
class Sample:
    due: float  # monotonic time the request was due to be sent
    sent: float
    done: float
    status: int  # 0: no answer (an error)

    @property
    def latency(self) -> float:
        return self.done - self.due


class Sender:
    """Signed webhooks at a steady rate, open loop: request i is due at start + i / rate.

    A scheduler hands each due request to a queue; ``connections`` workers, each on a
    keep-alive HTTP/1.1 connection of its own (plain asyncio streams: a general client's
    connection pool costs more CPU per request the more requests wait, which would make the
    sender the bottleneck exactly when the server stalls), take them in order. A request
    waiting for a free connection is charged for the wait."""

    def __init__(self, port: int, body: bytes, sig: str, rate: float, connections: int) -> None:
        self.port, self.body, self.sig, self.rate = port, body, sig, rate
        self.connections = connections
        self.samples: list[Sample] = []
        self.stop = asyncio.Event()
        self.prefix = uuid.uuid4().hex[:8]
        self.queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
        self.started = time.monotonic()

    def request(self, i: int) -> bytes:
        head = (
            "POST /hooks/github HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.port}\r\n"
            "Content-Type: application/json\r\n"
            "User-Agent: GitHub-Hookshot/bench\r\n"
            "X-GitHub-Event: issues\r\n"
            f"X-GitHub-Delivery: {self.prefix}-{i:08d}\r\n"
            f"X-Hub-Signature-256: {self.sig}\r\n"
            f"Content-Length: {len(self.body)}\r\n\r\n"
        )
        return head.encode() + self.body

    async def _worker(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (slot := await self.queue.get()) is not None:
            i, due = slot
            sent = time.monotonic()
            status = 0
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(self.request(i))
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                if writer is not None:
                    writer.close()
                reader = writer = None
            self.samples.append(Sample(due, sent, time.monotonic(), status))
        if writer is not None:
            writer.close()

    async def run(self) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self.connections)]
        start = self.started = time.monotonic()
        i = 0
        while not self.stop.is_set():
            due = start + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self.stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            self.queue.put_nowait((i, due))
            i += 1
        for _ in workers:
            self.queue.put_nowait(None)
        await asyncio.wait(workers, timeout=120)


class WalWatch:
    """The frames of the write-ahead log in use, twice a second, read from the wal-index header
    in ``-shm`` (``mxFrame``, at byte 16): a reader that holds one snapshot (the backup) keeps
    the checkpoints from copying past it, so the log grows, and once it reaches
    ``WAL_RESTART_PAGES`` the checkpointer's ``RESTART`` waits for that reader."""

    def __init__(self, shm: Path) -> None:
        self.shm = shm
        self.frames: list[tuple[float, int]] = []

    def read(self) -> int:
        try:
            with self.shm.open("rb") as f:
                return int(struct.unpack_from("=I", f.read(20), 16)[0])
        except (OSError, struct.error):
            return 0

    async def run(self) -> None:
        while True:
            self.frames.append((time.monotonic(), await asyncio.to_thread(self.read)))
            await asyncio.sleep(0.5)

    def largest(self, lo: float, hi: float) -> int:
        return max((n for t, n in self.frames if lo <= t < hi), default=0)


def window(samples: list[Sample], lo: float, hi: float) -> dict[str, Any]:
    """The requests due in [lo, hi): how many, their latencies, the non-2xx ones."""
    inside = [s for s in samples if lo <= s.due < hi]
    lat = sorted(s.latency * 1000 for s in inside)
    if not lat:
        return {"requests": 0, "seconds": round(hi - lo, 1)}

    def q(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1)

    return {
        "seconds": round(hi - lo, 1),
        "requests": len(lat),
        "non_2xx": sum(1 for s in inside if not 200 <= s.status < 300),
        "max_ms": round(lat[-1], 1),
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "p999_ms": q(0.999),
        "mean_ms": round(statistics.fmean(lat), 1),
    }


# -- processes -----------------------------------------------------------------------------------
def start_serve(
    cli: Path, project: Path, data: Path, port: int, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(cli),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data),
            ],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return proc


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise BenchError(f"serve exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise BenchError(f"serve was not ready after {timeout:.0f} s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def backup_once(
    cli: Path, env: dict[str, str], project: Path, data: Path, archive: Path
) -> tuple[float, float, int]:
    """Run ``ghapplets backup``; (start, end) in monotonic time and the archive's size."""
    b0 = time.monotonic()
    done = await asyncio.create_subprocess_exec(
        str(cli),
        "backup",
        str(archive),
        "--data-dir",
        str(data),
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await done.communicate()
    b1 = time.monotonic()
    if done.returncode != 0:
        raise BenchError(f"backup failed ({done.returncode}): {err.decode()}{out.decode()}")
    return b0, b1, await asyncio.to_thread(lambda: archive.stat().st_size)


async def measure(
    args: argparse.Namespace,
    cli: Path,
    env: dict[str, str],
    project: Path,
    data: Path,
    archive: Path,
    body: bytes,
    sig: str,
) -> dict[str, Any]:
    port = free_port()
    log = HERE / "serve.log"
    proc = start_serve(cli, project, data, port, env, log)
    phases: list[tuple[float, float, float, float, int]] = []
    try:
        await asyncio.to_thread(wait_ready, proc, port, 120, log)
        sender = Sender(port, body, sig, args.rate, args.connections)
        sending = asyncio.create_task(sender.run())
        wal = WalWatch(data / "ghapplets.db-shm")
        watching = asyncio.create_task(wal.run())
        say(f"sending {args.rate:g} webhooks/s; {args.backups} backup(s), the first in "
            f"{args.warmup:g} s")  # fmt: skip
        await asyncio.sleep(args.warmup)
        for n in range(args.backups):
            b0, b1, size = await backup_once(cli, env, project, data, archive)
            quiet = max(b1 - b0, args.baseline)
            say(f"backup {n + 1}: {b1 - b0:.1f} s, {size / 1e6:.0f} MB; {quiet:.0f} s without")
            await asyncio.sleep(args.settle)
            s1 = time.monotonic()
            await asyncio.sleep(quiet)
            phases.append((b0, b1, s1, time.monotonic(), size))
        sender.stop.set()
        await sending
        watching.cancel()
    finally:
        stop(proc)
    samples = sender.samples
    runs = []
    for b0, b1, s1, q1, size in phases:
        during, without = window(samples, b0, b1), window(samples, s1, q1)
        # when the slowest answers were due, from the backup's start: which part of it stalls
        slowest = sorted((s for s in samples if b0 <= s.due < s1), key=lambda s: -s.latency)[:5]
        runs.append(
            {
                "seconds": round(b1 - b0, 1),
                "archive_bytes": size,
                "during_backup": during,
                "just_after": window(samples, b1, s1),
                "without_backup": without,
                "longest_stall_ratio": round(
                    during.get("max_ms", 0) / max(0.1, without.get("max_ms", 0.1)), 2
                ),
                "slowest": [
                    {"due_after_start_s": round(s.due - b0, 2), "ms": round(s.latency * 1000, 1)}
                    for s in sorted(slowest, key=lambda s: s.due)
                ],
                "wal_frames": {
                    "at_start": wal.largest(b0 - 0.6, b0),
                    "most_during": wal.largest(b0, b1),
                    "restart_at": WAL_RESTART_PAGES,
                },
            }
        )
    worst = max(r["during_backup"].get("max_ms", 0) for r in runs)
    calm = max(r["without_backup"].get("max_ms", 0) for r in runs)
    return {
        "backups": runs,
        "warmup": window(samples, sender.started, phases[0][0]),
        "longest_ack_during_backups_ms": worst,
        "longest_ack_without_ms": calm,
        "longest_stall_ratio": round(worst / max(0.1, calm), 2),
    }


def restore(cli: Path, env: dict[str, str], project: Path, archive: Path) -> dict[str, Any]:
    target = HERE / "restored"
    key = HERE / "data" / "secret.key"
    t0 = time.monotonic()
    res = subprocess.run(
        [str(cli), "restore", str(archive), "--data-dir", str(target)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - t0
    if res.returncode != 0:
        raise BenchError(f"restore failed ({res.returncode}): {res.stderr}{res.stdout}")
    if key.exists():
        shutil.copy2(key, target / "secret.key")
    port = free_port()
    log = HERE / "serve-restored.log"
    proc = start_serve(cli, project, target, port, env, log)
    try:
        ready = wait_ready(proc, port, 300, log)
    finally:
        stop(proc)
    return {
        "seconds": round(took, 1),
        "serve_ready_after_s": round(ready, 1),
        "output": res.stdout.strip().splitlines(),
        "data_bytes": folder_bytes(target),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="deliveries in the store")
    ap.add_argument("--rate", type=float, default=100.0, help="webhooks per second meanwhile")
    ap.add_argument(
        "--connections", type=int, default=32, help="keep-alive connections of the sender"
    )
    ap.add_argument("--body-bytes", type=int, default=payload.TARGET_BYTES)
    ap.add_argument("--backups", type=int, default=3, help="backups, one after the other")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds before the backup")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds just after the backup")
    ap.add_argument(
        "--baseline",
        type=float,
        default=20.0,
        help="least seconds of the window without a backup (default: as long as "
        "the backup took, at least this)",
    )
    ap.add_argument("--ghapplets", help="path of the ghapplets command")
    ap.add_argument("--out", type=Path, default=WORK / "backup-stall.json")
    args = ap.parse_args(argv)
    try:
        cli = find_ghapplets(args.ghapplets)
        if HERE.exists():
            shutil.rmtree(HERE)
        project, data = HERE / "project", HERE / "data"
        write_project(project)
        body = payload.build_body(args.body_bytes)
        sig = payload.signature(body)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPPLETS_")}
        env["GITHUB_WEBHOOK_SECRET"] = payload.SECRET
        results: dict[str, Any] = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine_info(),
            "versions": {
                k: v
                for k, v in versions(cli, None).items()
                if k in ("python", "sqlite", "ghapplets", "ghapplets_commit")
            },
            "settings": {
                "events": args.events,
                "rate": args.rate,
                "body_bytes": len(body),
                "warmup_s": args.warmup,
                "backups": args.backups,
                "settle_s": args.settle,
            },
            "load_before": os.getloadavg()[0],
        }
        say(f"filling a data folder with {args.events:,} deliveries of {len(body):,} B")
        filled = asyncio.run(fill(data / "ghapplets.db", args.events, Bodies(body)))
        results["fill"] = {"seconds": round(filled, 1), "data_bytes": folder_bytes(data)}
        archive = HERE / "backup.tgz"
        results.update(asyncio.run(measure(args, cli, env, project, data, archive, body, sig)))
        say("restoring the archive into a new folder")
        results["restore"] = restore(cli, env, project, archive)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    return 0


def render(res: dict[str, Any]) -> str:
    m, s = res["machine"], res["settings"]
    rows = [("", "requests", "non-2xx", "p50 ms", "p99 ms", "p99.9 ms", "max ms")]
    for n, b in enumerate(res["backups"], 1):
        for label, key in (
            (f"backup {n}: during ({b['seconds']} s)", "during_backup"),
            ("  just after", "just_after"),
            ("  without a backup", "without_backup"),
        ):
            w = b[key]
            rows.append(
                (
                    f"{label}",
                    str(w.get("requests", 0)),
                    str(w.get("non_2xx", "-")),
                    str(w.get("p50_ms", "-")),
                    str(w.get("p99_ms", "-")),
                    str(w.get("p999_ms", "-")),
                    str(w.get("max_ms", "-")),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    r = res["restore"]
    notes = []
    for n, b in enumerate(res["backups"], 1):
        f = b["wal_frames"]
        slow = ", ".join(f"+{x['due_after_start_s']} s: {x['ms']} ms" for x in b["slowest"])
        notes.append(
            f"backup {n}: WAL frames in use {f['at_start']} at its start, at most "
            f"{f['most_during']} during it (RESTART at {f['restart_at']}); slowest answers "
            f"(due after its start): {slow}"
        )
    return "\n".join(
        [
            "",
            "== Acknowledgement stall during `ghapplets backup` (embedded serve) ==",
            f"machine   {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}",
            f"load      1-min load average before: {res['load_before']:.2f}",
            f"versions  {res['versions']}",
            f"store     {s['events']:,} deliveries of {s['body_bytes']:,} B, filled in "
            f"{res['fill']['seconds']} s ({res['fill']['data_bytes'] / 1e6:.0f} MB on disk)",
            f"load      {s['rate']:g} signed webhooks/s, open loop (latency from each request's "
            "due time to its answer)",
            f"archive   {res['backups'][0]['archive_bytes'] / 1e6:.0f} MB",
            "",
            table,
            "",
            *notes,
            f"longest ack during the backups / without: {res['longest_ack_during_backups_ms']} / "
            f"{res['longest_ack_without_ms']} ms = {res['longest_stall_ratio']}x",
            f"restore   {r['seconds']} s into a new folder ({r['data_bytes'] / 1e6:.0f} MB), then "
            f"serve ready in {r['serve_ready_after_s']} s",
            f"results: {res.get('results_file', WORK / 'backup-stall.json')}",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
