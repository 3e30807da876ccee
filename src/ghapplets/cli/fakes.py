"""``ghapplets fakes``: serve the vendor fakes locally for offline development.

Each fake gets its own port, ``--port`` and the next ones in :class:`FakeName` order (``0``:
any free port), so each base URL is what a connector is configured with: GitHub's API root
(GHES: ``<url>/api/v3``), the Jira and ServiceNow instance URLs, the Splunk HEC URL. A GitHub
App configured without a public key gets a throwaway key pair; its private key is written to a
new owner-only (0600) file, ``--key-file`` or one in a new temporary folder, and its path
printed. Runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.table import Table

from ghapplets.cli.project import (
    EXIT_CONFIG,
    EXIT_USAGE,
    JsonOpt,
    console,
    fail,
    literal,
    print_json_lines,
    print_problems,
)
from ghapplets.exceptions import ConfigError
from ghapplets.fakes.config import FakeName, FakesConfig, load_fakes_config, write_private_key
from ghapplets.fakes.runner import FakeServers, FakeSet, build_fakes

DEFAULT_PORT = 8900


def _only(value: str | None) -> list[FakeName] | None:
    if not value:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    known = [n.value for n in FakeName]
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(f"unknown fake {', '.join(unknown)}; known: {', '.join(known)}", EXIT_USAGE)
    return [FakeName(n) for n in names]


def _write_keys(fakes: FakeSet, key_file: Path | None) -> dict[int, Path]:
    if not fakes.private_keys or FakeName.GITHUB not in fakes.fakes:
        return {}
    folder = key_file.parent if key_file else Path(tempfile.mkdtemp(prefix="ghapplets-fakes-"))
    written: dict[int, Path] = {}
    for app_id, pem in fakes.private_keys.items():
        if key_file and len(fakes.private_keys) == 1:
            path = key_file
        else:
            stem = key_file.stem if key_file else "github-app"
            path = folder / f"{stem}-{app_id}.pem"
        try:
            written[app_id] = write_private_key(path, pem)
        except FileExistsError:
            fail(f"{path} exists: give --key-file a new path", EXIT_USAGE)
    return written


def _credentials(name: FakeName, config: FakesConfig, keys: dict[int, Path]) -> dict[str, Any]:
    """What a connector needs to talk to the fake (development values from the config)."""
    if name == FakeName.GITHUB:
        return {
            "apps": [
                {"app_id": a.id, "client_id": a.client_id, "private_key_file": str(keys[a.id])
                 if a.id in keys else None, "webhook_secret": a.webhook_secret}
                for a in config.github.apps
            ],
            "installations": [i.id for i in config.github.installations],
        }  # fmt: skip
    if name in (FakeName.JIRA, FakeName.JIRA_DC):
        jira = config.jira if name == FakeName.JIRA else config.jira_dc
        return {
            "flavor": str(jira.flavor),
            "users": [u.model_dump(exclude_none=True) for u in jira.users],
        }
    if name == FakeName.SERVICENOW:
        return {
            "users": [u.model_dump() for u in config.servicenow.users],
            "oauth_clients": [c.model_dump() for c in config.servicenow.oauth_clients],
        }
    return {"tokens": [t.token for t in config.splunk.tokens]}


def _summary(creds: dict[str, Any]) -> str:
    if "apps" in creds:
        parts = [
            f"App {a['app_id']} ({a['client_id']}), key {a['private_key_file'] or '(configured)'}"
            for a in creds["apps"]
        ]
        return "; ".join(parts) + f"; installations {', '.join(map(str, creds['installations']))}"
    if "flavor" in creds:
        users = [
            f"{u['email']} / {u.get('api_token')}" if "email" in u
            else f"{u.get('username')} / {u.get('password')}, PAT {u.get('token')}"
            for u in creds["users"]
        ]  # fmt: skip
        return "; ".join(users)
    if "oauth_clients" in creds:
        users = [f"{u['username']} / {u['password']}" for u in creds["users"]]
        clients = [f"{c['client_id']} / {c['client_secret']}" for c in creds["oauth_clients"]]
        return "; ".join(users) + "; OAuth " + "; ".join(clients)
    return "Authorization: Splunk " + ", ".join(creds["tokens"])


def fakes(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(
        DEFAULT_PORT,
        min=0,
        max=65535,
        help="First port: github on it, then jira, jira-dc, servicenow, splunk (0: free ports).",
    ),
    only: str | None = typer.Option(
        None, help="Comma-separated fakes to run: github, jira, jira-dc, servicenow, splunk."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="Fakes configuration (YAML)."),
    key_file: Path | None = typer.Option(
        None, help="Where to write a generated GitHub App private key (a new file, mode 0600)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Serve local fakes of GitHub, Jira, ServiceNow and Splunk HEC until Ctrl-C."""
    wanted = _only(only)
    try:
        loaded = load_fakes_config(config)
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    try:
        built = build_fakes(loaded, wanted)
    except (OSError, ValueError) as exc:
        fail(f"cannot build the fakes: {exc}", EXIT_CONFIG)
    keys = _write_keys(built, key_file)
    servers = FakeServers(built, host, base_port=port or None)
    try:
        servers.start()
    except (OSError, RuntimeError) as exc:
        fail(f"cannot serve the fakes on {host}: {exc}")
    try:
        rows: list[dict[str, Any]] = [
            {"name": str(name), "base_url": fake.base_url,
             "credentials": _credentials(name, loaded, keys)}
            for name, fake in built.fakes.items()
        ]  # fmt: skip
        if as_json:
            print_json_lines(rows)
        else:
            table = Table("fake", "base URL", "development credentials", title="ghapplets fakes")
            for row in rows:
                table.add_row(
                    row["name"], literal(row["base_url"]), literal(_summary(row["credentials"]))
                )
            console.print(table)
            console.print(
                "Control API on each: /_fakes/requests, /_fakes/faults, /_fakes/reset, "
                "/_fakes/state. Ctrl-C stops.",
                soft_wrap=True,
            )
        _wait_for_signal()
    finally:
        servers.stop()


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
