"""``ghapplets serve``: gateway, dispatcher and workers in one process on the embedded backends."""

from __future__ import annotations

from pathlib import Path

import typer
import uvicorn

from ghapplets.broker.sqlite import BrokerBusy, ensure_no_consumer
from ghapplets.cli.project import DataDirOpt, ProjectOpt, data_dir, fail, load, run
from ghapplets.config.loader import LoadedConfig
from ghapplets.config.located import ConfigError
from ghapplets.logging import configure
from ghapplets.platform import DB_FILE, Platform, build_sources, open_backends


async def _check_sources(loaded: LoadedConfig, data: Path) -> None:
    """Resolve every source's secret references now, so an unset ``${env:X}``, an unknown
    ``${secret:x}`` or a wrong key stops us with a message instead of a lifespan traceback."""
    async with open_backends(data) as backends:
        await build_sources(loaded, backends.vault)


def serve(
    host: str | None = typer.Option(None, help="Interface to listen on (default from config)."),
    port: int | None = typer.Option(None, help="Port to listen on (default from config)."),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
    log_format: str | None = typer.Option(None, "--log-format", help="auto | console | json"),
) -> None:
    """Serve the project: POST /hooks/{source}, /healthz, /readyz, /metrics, and run applets."""
    if log_format not in (None, "auto", "console", "json"):
        fail(f"--log-format must be auto, console or json, not {log_format!r}", 2)
    loaded = load(project)
    cfg = loaded.config
    configure(log_format or cfg.logging.format, cfg.logging.level)
    target = data_dir(project, data)
    platform = Platform(loaded, target)
    try:
        _ = platform.specs  # discover applets now, so manifest errors stop us before binding
    except ConfigError as exc:
        fail(str(exc), 3)
    run(_check_sources(loaded, target))  # exits 3 on an unresolvable secret
    try:  # one worker per data folder: say so plainly rather than in a lifespan traceback
        ensure_no_consumer(target / DB_FILE)
    except BrokerBusy as exc:
        fail(str(exc), 1)
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port
    config = uvicorn.Config(
        platform.asgi(),
        host=host,
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # client IPs come from X-Forwarded-For only if the config says so
        timeout_graceful_shutdown=int(cfg.server.drain_timeout) or None,
        limit_concurrency=None,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 3 (our "bad config") when it cannot bind
        if exc.code:
            fail(f"the server did not start on {host}:{port} (see the error above)", 1)
        raise
    if not server.started:
        fail(f"the server did not start on {host}:{port} (see the error above)", 1)
