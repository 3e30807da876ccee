"""How fast the admin API lists deliveries out of 1,000,000, on SQLite and on PostgreSQL.

    python bench/admin_list.py                       # both backends, 1,000,000 deliveries
    python bench/admin_list.py --backends sqlite --rows 200000 --runs 30
    python bench/admin_list.py --url postgresql://postgres@db:5432/postgres

It fills a fresh store (the schema of the migrations, indexes and all) with ``--rows``
deliveries through SQLAlchemy Core bulk inserts (``executemany`` of 5,000-row chunks; on
SQLite with ``synchronous=OFF`` while filling): four sources, twelve event types, four
statuses (90 % succeeded, 2 % failed), subjects ``org-N/repo-M#K`` over 50 organisations and
200 repositories, a 512-byte body each, received over the last 10 days. PostgreSQL gets
``VACUUM ANALYZE`` after the fill (autovacuum would do it on a live system), SQLite ``ANALYZE``
(the store's ``PRAGMA optimize`` does it on a live one).

Then it asks the admin API itself (the Starlette application in-process, through httpx's ASGI
transport: bearer token check, parameter validation, the store's query, JSON answer) for
typical pages, ``--runs`` times each, and prints p50 and p95 in milliseconds:

- ``first page``: ``GET /api/v1/deliveries`` (50, newest first);
- ``filtered``: ``?source=jira``, ``?status=failed``, ``?type=<one type>``;
- ``deep cursor``: the page after a cursor 90 % of the way down;
- ``search``: ``?q=`` a substring that matches 1 in 200 subjects, one that matches about 20
  of the million (the scan finds them all), and one that matches none.

The PostgreSQL database ``ghapplets_bench_admin_<random>`` is created next to the one in
``--url`` and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import create_engine, insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from ghapplets.admin.app import AdminApi
from ghapplets.admin.auth import Authenticator
from ghapplets.admin.context import AdminContext
from ghapplets.admin.params import encode_cursor
from ghapplets.admin.tokens import TokenStore
from ghapplets.backends import Backends
from ghapplets.config.loader import load_config
from ghapplets.gateway.forwarded import TrustedProxies
from ghapplets.store.records import DeliveryStatus, Role
from ghapplets.store.schema import deliveries

SOURCES = [("github", 0.6), ("jira", 0.2), ("gitlab", 0.15), ("splunk", 0.05)]
TYPES = {
    "github": [
        "com.github.issues.opened",
        "com.github.push",
        "com.github.pull_request.opened",
        "com.github.pull_request.closed",
        "com.github.issue_comment.created",
    ],
    "jira": [
        "com.atlassian.jira.issue_updated",
        "com.atlassian.jira.issue_created",
        "com.atlassian.jira.comment_created",
    ],
    "gitlab": ["com.gitlab.push", "com.gitlab.merge_request.open", "com.gitlab.pipeline"],
    "splunk": ["com.splunk.alert"],
}
STATUSES = [
    (DeliveryStatus.SUCCEEDED, 0.90),
    (DeliveryStatus.UNMATCHED, 0.07),
    (DeliveryStatus.FAILED, 0.02),
    (DeliveryStatus.DISPATCHED, 0.01),
]
BODY = b'{"padding": "' + b"x" * 496 + b'"}'
CHUNK = 5000
# one organisation's one repository (1 in 10,000 subjects), issues numbered 1, 1x, 1xx, 1xxx
# (1,111 of the 5,000 numbers): about 22 subjects in 1,000,000
RARE = "org-7/repo-13#1"


def pick(rng: random.Random, weighted: list[tuple[Any, float]]) -> Any:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = time.time()
    out = []
    for i in range(count):
        source = pick(rng, SOURCES)
        org, repo = rng.randrange(50), rng.randrange(200)
        subject = f"org-{org}/repo-{repo}#{rng.randrange(5000)}"
        out.append(
            {
                "source": source,
                "id": f"{i:08d}-{rng.getrandbits(32):08x}",
                "type": rng.choice(TYPES[source]),
                "subject": subject,
                "time": "2024-01-01T00:00:00Z",
                "received_at": now - 864_000 + i * (864_000 / count) + rng.random() * 0.01,
                "status": pick(rng, STATUSES).value,
                "jobs_total": 1,
                "jobs_succeeded": 1,
                "jobs_dead": 0,
                "attributes": '{"specversion":"1.0"}',
                "headers": '{"x-github-event":"issues"}',
                "body": BODY,
            }
        )
    return out


def fill_sqlite(path: Path, data: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA synchronous=OFF")
        for i in range(0, len(data), CHUNK):
            conn.execute(insert(deliveries), data[i : i + CHUNK])
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


async def fill_postgres(url: str, data: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    async with engine.begin() as conn:
        for i in range(0, len(data), CHUNK):
            await conn.execute(insert(deliveries), data[i : i + CHUNK])
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE deliveries"))
    await engine.dispose()
    return time.perf_counter() - started


def project(folder: Path, storage: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ghapplets.yaml").write_text(f"project: bench\n{storage}")
    return folder


async def measure(
    backends: Backends, root: Path, runs: int, data: list[dict[str, Any]]
) -> dict[str, tuple[float, float]]:
    loaded = load_config(root)

    async def ready() -> dict[str, str]:
        return {"store": "ok"}

    ctx = AdminContext(loaded, backends, ready)
    tokens = TokenStore(backends.store)
    token = (await tokens.create(f"bench-{secrets.token_hex(3)}", Role.VIEWER)).token
    api = AdminApi(ctx, Authenticator(tokens, proxies=TrustedProxies([])))
    ordered = sorted(data, key=lambda r: (r["received_at"], r["source"], r["id"]), reverse=True)
    deep = ordered[int(len(ordered) * 0.9)]
    cursor = encode_cursor("deliveries", (deep["received_at"], deep["source"], deep["id"]))
    common = "repo-42#"  # 1 subject in 200
    cases: dict[str, dict[str, Any]] = {
        "first page": {},
        "filtered: source=jira": {"source": "jira"},
        "filtered: status=failed": {"status": "failed"},
        "filtered: type=com.gitlab.push": {"type": "com.gitlab.push"},
        "deep cursor (90 %)": {"cursor": cursor},
        "search: q common (1/200)": {"q": common},
        "search: q rare (~22 in 1M)": {"q": RARE},
        "search: q no match": {"q": "no-such-subject"},
    }
    transport = httpx.ASGITransport(app=api)  # type: ignore[arg-type]
    results: dict[str, tuple[float, float]] = {}
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://admin",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        for name, params in cases.items():
            times = []
            for i in range(runs + 2):
                started = time.perf_counter()
                answer = await client.get("/api/v1/deliveries", params={"limit": 50, **params})
                spent = (time.perf_counter() - started) * 1000
                assert answer.status_code == 200, answer.text
                if i >= 2:  # two warm-up calls
                    times.append(spent)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            results[name] = (statistics.median(times), p95)
            found = len(answer.json()["items"])
            print(f"  {name:34} p50 {results[name][0]:7.1f} ms  p95 {p95:7.1f} ms  ({found} rows)")
    return results


async def bench_sqlite(data: list[dict[str, Any]], runs: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory(prefix="ghapplets-bench-") as tmp:
        root = project(Path(tmp) / "project", "")
        backends = Backends(load_config(root).config, Path(tmp) / "data")
        await backends.start()  # migrates: the schema and indexes of the migrations
        try:
            assert backends.db is not None
            spent = fill_sqlite(backends.db.path, data)
            print(f"sqlite: filled {len(data):,} deliveries in {spent:.1f} s")
            return await measure(backends, root, runs, data)
        finally:
            await backends.close()


async def bench_postgres(
    url: str, data: list[dict[str, Any]], runs: int
) -> dict[str, tuple[float, float]]:
    name = f"ghapplets_bench_admin_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    target = f"{url.rpartition('/')[0]}/{name}"
    try:
        with tempfile.TemporaryDirectory(prefix="ghapplets-bench-") as tmp:
            storage = f"storage:\n  backend: postgresql\n  url: {target}\n"
            root = project(Path(tmp) / "project", storage)
            backends = Backends(load_config(root).config, Path(tmp) / "data")
            await backends.start()
            try:
                spent = await fill_postgres(target, data)
                print(f"postgresql: filled {len(data):,} deliveries in {spent:.1f} s")
                return await measure(backends, root, runs, data)
            finally:
                await backends.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.rows:,} deliveries, {args.runs} runs a query"
    )
    started = time.perf_counter()
    data = rows(args.rows)
    print(f"made the rows in {time.perf_counter() - started:.1f} s")
    runners: dict[str, Callable[[], Any]] = {
        "sqlite": lambda: bench_sqlite(data, args.runs),
        "postgresql": lambda: bench_postgres(args.url, data, args.runs),
    }
    for backend in args.backends.split(","):
        asyncio.run(runners[backend.strip()]())


if __name__ == "__main__":
    main()
