"""``ghapplets serve``, ``gateway`` and ``worker``: run the platform in one or both roles.

- ``gateway``: HTTP ingest, health and metrics; stateless, any number of replicas.
- ``worker``: the dispatcher and the applets; any number of replicas on NATS + PostgreSQL.
- ``serve``: both on one machine: ``--processes`` gateway processes sharing the port, plus one
  worker process whose applet work yields the CPU to the acknowledgement path under a burst.

On the embedded backends each of them holds the data folder (:func:`ghapplets.datadir.hold`):
one server per data folder; a supervisor's children adopt its lock.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import typer
import uvicorn

from ghapplets import datadir
from ghapplets.backends import embedded, open_backends
from ghapplets.cli.project import DataDirOpt, ProjectOpt, data_dir, fail, load, run
from ghapplets.config.loader import LoadedConfig
from ghapplets.exceptions import ConfigError, DataFolderBusy
from ghapplets.logging import configure, get_logger
from ghapplets.logsink import SplunkHecSink
from ghapplets.metrics import MULTIPROC_ENV
from ghapplets.platform import BOTH, Platform, Role
from ghapplets.secrets.scopes import Reader
from ghapplets.sources.registry import build_sources
from ghapplets.supervisor import PARENT_ENV, Child, Supervisor, die_with_parent, listen

log = get_logger("ghapplets.serve")
WORKER_NICE = 10  # serve's worker: applets get the CPU the gateways leave
LogFormatOpt = typer.Option(None, "--log-format", help="auto | console | json")
HostOpt = typer.Option(None, help="Interface to listen on (default from config).")
PortOpt = typer.Option(None, help="Port to listen on (default from config).")
ProcessesOpt = typer.Option(
    None, "--processes", min=1, max=256, help="Gateway processes sharing the port (default: cores)."
)


async def _check_startup(loaded: LoadedConfig, data: Path, sink: SplunkHecSink | None) -> None:
    """Open the backends once (creating streams and tables, migrating) and resolve every
    source's secret references, so an unset ``${env:X}``, an unknown ``${secret:x}`` or an
    unreachable backend stops us with a message instead of a traceback in every process.
    The log sink's token is resolved too, and this process (a supervisor, or a lone gateway)
    starts shipping its lines."""
    async with open_backends(loaded.config, data) as backends:
        await build_sources(loaded.sources, backends.secrets.lookup)
        if sink is not None:
            await sink.start(backends.secrets.lookup(Reader.platform("logging.splunk_hec")))


def _log_sink(loaded: LoadedConfig, roles: frozenset[Role]) -> SplunkHecSink | None:
    """The process's Splunk log sink, if ``logging.splunk_hec`` is set; its default source is
    ``ghapplets:serve``, ``ghapplets:gateway`` or ``ghapplets:worker``."""
    cfg = loaded.config
    if cfg.logging.splunk_hec is None:
        return None
    command = "serve" if roles == BOTH else next(iter(roles)).value
    return SplunkHecSink(cfg.logging.splunk_hec, source=f"ghapplets:{command}", root=cfg.root)


def _prepare(
    project: Path | None, data: Path | None, log_format: str | None, roles: frozenset[Role]
) -> tuple[LoadedConfig, Path, Platform]:
    if log_format not in (None, "auto", "console", "json"):
        fail(f"--log-format must be auto, console or json, not {log_format!r}", 2)
    loaded = load(project)
    cfg = loaded.config
    sink = _log_sink(loaded, roles)
    configure(log_format or cfg.logging.format, cfg.logging.level, sink=sink)
    if not os.environ.get(PARENT_ENV):  # said once, by the supervisor
        for note in cfg.deprecations():
            log.warning(note)
    target = data_dir(project, data)
    platform = Platform(loaded, target, roles=roles, log_sink=sink)
    if Role.WORKER in roles:
        try:
            _ = platform.specs  # discover applets now, so manifest errors stop us before binding
        except ConfigError as exc:
            fail(str(exc), 3)
    return loaded, target, platform


def _hold_data_folder(loaded: LoadedConfig, data: Path) -> int | None:
    """On the embedded backends, hold the data folder for this process (and the children it
    hands the descriptor to), or exit 1 naming the process that holds it. None on NATS and
    PostgreSQL, whose processes are stateless."""
    if not embedded(loaded.config):
        return None
    try:
        return datadir.hold(data)
    except DataFolderBusy as exc:
        fail(str(exc), 1)


def _bind(host: str, port: int, what: str) -> socket.socket:
    try:
        return listen(host, port)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        fail(f"the {what} did not start on {host}:{port}: {reason}", 1)


class ClosingServer(uvicorn.Server):
    """uvicorn's server, telling the application's long-lived answers (the dashboard's live
    streams) to end when it shuts down: it waits for every open connection's answer, up to
    ``server.drain_timeout``, before it stops."""

    def __init__(self, config: uvicorn.Config, closing: Sequence[Callable[[], None]]) -> None:
        super().__init__(config)
        self.closing = list(closing)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for close in self.closing:
            close()
        await super().shutdown(sockets)


def _uvicorn(
    platform: Platform,
    host: str,
    port: int,
    sock: socket.socket | None,
    metrics_sock: socket.socket | None = None,
    admin_sock: socket.socket | None = None,
    *,
    admin: bool = False,
) -> None:
    """Serve ``platform`` on ``sock`` (or ``host:port``), ``/metrics`` on ``metrics_sock`` (or
    ``server.metrics_address``) when metrics have a listener of their own, and, with
    ``admin``, the admin API on ``admin_sock`` (or ``server.admin_address``)."""
    cfg = platform.config
    app = platform.asgi()
    extra: list[socket.socket] = []
    closing: list[Callable[[], None]] = []
    metrics_at = cfg.server.metrics_listener
    if metrics_sock is None and metrics_at is not None:
        metrics_sock = _bind(*metrics_at, "metrics listener")
    if metrics_sock is not None:
        bound = metrics_sock.getsockname()
        app.serve_metrics_on(bound[0], bound[1])
        extra.append(metrics_sock)
    admin_at = cfg.server.admin_listener
    if admin and admin_sock is None and admin_at is not None:
        admin_sock = _bind(*admin_at, "admin API listener")
    if admin and admin_sock is not None:
        bound = admin_sock.getsockname()
        site = platform.admin_site()
        app.serve_admin_on(bound[0], bound[1], site)
        closing.append(site.close)  # its live streams end first: uvicorn waits for them
        extra.append(admin_sock)
        dashboard = site.dashboard is not None
        log.info("admin API listening", host=bound[0], port=bound[1], dashboard=dashboard)
    sockets: list[socket.socket] | None = None
    if extra:
        sock = sock if sock is not None else _bind(host, port, "server")
        sockets = [sock, *extra]
    elif sock is not None:
        sockets = [sock]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=platform.http_protocol(),  # the server.* limits: header deadline and size, ...
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # client addresses come from server.trusted_proxies only
        timeout_graceful_shutdown=int(cfg.server.drain_timeout) or None,
        limit_concurrency=None,  # server.max_connections, with Retry-After: see the protocol
        backlog=2048,
    )
    server = ClosingServer(config, closing)
    try:
        server.run(sockets=sockets)
    except SystemExit as exc:  # uvicorn exits 3 (our "bad config") when it cannot bind
        if exc.code:
            fail(f"the server did not start on {host}:{port} (see the error above)", 1)
        raise
    if not server.started:
        fail(f"the server did not start on {host}:{port} (see the error above)", 1)


def _child(role: Role, loaded: LoadedConfig, data: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ghapplets",
        role.value,
        "--project",
        str(loaded.path),
        "--data-dir",
        str(data),
        *extra,
    ]


def _supervise(
    loaded: LoadedConfig,
    data: Path,
    host: str,
    port: int,
    processes: int,
    log_format: str | None,
    *,
    with_worker: bool,
    lock_fd: int | None,
    sink: SplunkHecSink | None,
) -> None:
    sock = _bind(host, port, "server")
    # /metrics of its own: one socket too, shared by the gateways like the webhook port
    metrics_at = loaded.config.server.metrics_listener
    metrics_sock = _bind(*metrics_at, "metrics listener") if metrics_at else None
    # the admin API: one listening socket, shared by the gateways the same way
    admin_at = loaded.config.server.admin_listener
    admin_sock = _bind(*admin_at, "admin API listener") if admin_at else None
    fmt = ["--log-format", log_format] if log_format else []
    # one /metrics for the node: every process writes its values into one folder (the one
    # the environment names, so other processes of the node can share it too)
    chosen = os.environ.get(MULTIPROC_ENV)
    metrics_dir = Path(chosen) if chosen else data / "metrics"
    if not chosen:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    shared = {MULTIPROC_ENV: str(metrics_dir)}
    fds = ["--fd", str(sock.fileno())]
    passed = [sock.fileno()]
    if metrics_sock is not None:
        fds += ["--metrics-fd", str(metrics_sock.fileno())]
        passed.append(metrics_sock.fileno())
    if admin_sock is not None:
        fds += ["--admin-fd", str(admin_sock.fileno())]
        passed.append(admin_sock.fileno())
    held: tuple[int, ...] = ()
    if lock_fd is not None:  # the children adopt the data folder's lock we hold
        shared[datadir.LOCK_FD_ENV] = str(lock_fd)
        held = (lock_fd,)
        passed.append(lock_fd)
    children = [
        Child(
            f"gateway-{i + 1}",
            _child(Role.GATEWAY, loaded, data, "--processes", "1", *fds, *fmt),
            pass_fds=tuple(passed),
            env=shared,
        )
        for i in range(processes)
    ]
    if with_worker:
        children.append(
            Child(
                "worker",
                _child(Role.WORKER, loaded, data, "--nice", str(WORKER_NICE), *fmt),
                pass_fds=held,
                env=shared,
            )
        )
    bound = sock.getsockname()
    log.info("listening", host=bound[0], port=bound[1], gateways=processes, worker=with_worker)
    if admin_sock is not None:
        at = admin_sock.getsockname()
        log.info("admin API listening", host=at[0], port=at[1])
    code = Supervisor(children, drain_timeout=loaded.config.server.drain_timeout).run()
    sock.close()
    for extra in (metrics_sock, admin_sock):
        if extra is not None:
            extra.close()
    if sink is not None:  # the supervisor's own lines, "all processes stopped" last
        sink.close()
    raise typer.Exit(code)


def serve(
    host: str | None = HostOpt,
    port: int | None = PortOpt,
    processes: int | None = ProcessesOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
    log_format: str | None = LogFormatOpt,
) -> None:
    """Serve the project on this machine: gateway processes on every core, and one worker.
    The admin API (/api/v1) listens on server.admin_address (default 127.0.0.1:8081)."""
    loaded, target, platform = _prepare(project, data, log_format, BOTH)
    run(_check_startup(loaded, target, platform.log_sink))  # exits 3 on an unresolvable secret
    lock_fd = _hold_data_folder(loaded, target)
    cfg = loaded.config
    _supervise(
        loaded,
        target,
        host or cfg.server.host,
        cfg.server.port if port is None else port,
        processes or os.cpu_count() or 1,
        log_format,
        with_worker=True,
        lock_fd=lock_fd,
        sink=platform.log_sink,
    )


def gateway(
    host: str | None = HostOpt,
    port: int | None = PortOpt,
    processes: int | None = ProcessesOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
    log_format: str | None = LogFormatOpt,
    fd: int | None = typer.Option(None, "--fd", hidden=True, help="Inherited listening socket."),
    metrics_fd: int | None = typer.Option(
        None, "--metrics-fd", hidden=True, help="Inherited metrics listening socket."
    ),
    admin_fd: int | None = typer.Option(
        None, "--admin-fd", hidden=True, help="Inherited admin API listening socket."
    ),
) -> None:
    """Accept webhooks: POST /hooks/{source}, /healthz, /readyz, /metrics; and serve the admin
    API (/api/v1) on server.admin_address. Stateless."""
    die_with_parent()
    loaded, target, platform = _prepare(project, data, log_format, frozenset({Role.GATEWAY}))
    cfg = loaded.config
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port
    if fd is not None:  # a child of serve or gateway --processes N: it adopts their lock
        _hold_data_folder(loaded, target)
        metrics_sock = socket.socket(fileno=metrics_fd) if metrics_fd is not None else None
        admin_sock = socket.socket(fileno=admin_fd) if admin_fd is not None else None
        # the supervisor bound the admin listener (or there is none): never bind another
        _uvicorn(
            platform,
            host,
            port,
            socket.socket(fileno=fd),
            metrics_sock,
            admin_sock,
            admin=admin_sock is not None,
        )
        return
    run(_check_startup(loaded, target, platform.log_sink))
    lock_fd = _hold_data_folder(loaded, target)
    count = processes or os.cpu_count() or 1
    if count == 1:
        _uvicorn(platform, host, port, None, admin=True)
        return
    _supervise(
        loaded,
        target,
        host,
        port,
        count,
        log_format,
        with_worker=False,
        lock_fd=lock_fd,
        sink=platform.log_sink,
    )


async def _run_until_signalled(platform: Platform) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await platform.start()
    try:
        await stop.wait()
    finally:
        await platform.stop()


def worker(
    host: str | None = HostOpt,
    port: int | None = typer.Option(
        None,
        help="Serve /healthz, /readyz and /metrics on this port (default: none); /metrics on "
        "server.metrics_address instead when that is set.",
    ),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
    log_format: str | None = LogFormatOpt,
    nice: int = typer.Option(0, min=0, max=19, help="Lower this process's CPU priority."),
) -> None:
    """Run the dispatcher and the applets: consume events, run jobs, retry, dead-letter."""
    die_with_parent()
    if nice:
        os.nice(nice)
    loaded, target, platform = _prepare(project, data, log_format, frozenset({Role.WORKER}))
    _hold_data_folder(loaded, target)
    if port is not None:
        _uvicorn(platform, host or loaded.config.server.host, port, None)
        return
    run(_run_until_signalled(platform))
