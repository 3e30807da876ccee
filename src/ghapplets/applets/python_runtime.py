"""The ``python`` runtime: applet modules imported once and called in-process, warm.

This module owns loading an applet module (``entry: handler.py`` or ``handler.py:app``) and
calling its handlers. The module file is imported with :func:`importlib.util.
spec_from_file_location` under a unique name (``ghapplets_applet_<name>_<hash>``) as a package
whose ``__path__`` is the applet folder, so helper modules next to it are imported relatively
(``from . import helpers``) and two applets' ``helpers.py`` never collide; ``sys.path`` is not
touched. A module is imported once per process (cached by file path): discovery and the
runtime share it.

The entry object is the single :class:`~ghapplets.sdk.Applet` instance in the module, the one
named after ``:``, or a plain function named after ``:`` (then subscribed to the manifest's
``on:``). Every handler whose subscription matches the event runs, in registration order; one
handler gives its result, several a list of results.

``async def`` handlers run on the event loop. Plain (sync) handlers run in the applet's own
threads (:class:`HandlerThreads`, at most ``concurrency`` of them), never in a pool shared with
other applets or with the platform: a sync handler past its timeout cannot be stopped, so its
call is abandoned and its thread keeps one of the applet's slots until the handler returns
(see :class:`~ghapplets.applets.runtime.Slots`). A stuck applet stalls only itself.

A githubkit exception a handler lets out (``ctx.github``: GitHub refused, rate-limited, or was
unreachable) ends the run as the GitHub action's failure would
(:func:`~ghapplets.connectors.github_kit.action_error`): ``ActionFailed``, dead-lettered, or
``ActionUnavailable``, retried after GitHub's ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import importlib.util
import queue
import re
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ghapplets.applets.matching import CompiledSubscription, EventDocument
from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import Invocation, LogSink, Runtime, applet_logger, declared_secrets
from ghapplets.exceptions import AppletError, ErrorType, PermanentError
from ghapplets.sdk.app import Applet, Handler
from ghapplets.sdk.context import Context, Secrets

if TYPE_CHECKING:
    import httpx

    from ghapplets.metrics import Metrics

T = TypeVar("T")
_ENTRY = re.compile(r"^(?P<file>[^:]+\.py)(?::(?P<attr>[A-Za-z_][A-Za-z0-9_]*))?$")
_CACHE: dict[tuple[Path, str | None], Applet] = {}
_CACHE_LOCK = threading.Lock()
DEFAULT_HTTP_TIMEOUT = 30.0


class EntryError(Exception):
    """The entry point cannot be loaded (bad ``entry:``, import error, no Applet found)."""


def parse_entry(spec: AppletSpec) -> tuple[Path, str | None]:
    """The module file (absolute) and optional object name of ``spec.entry``."""
    entry = spec.entry or ""
    m = _ENTRY.match(entry)
    if not m:
        raise EntryError(f"'entry' must be 'module.py' or 'module.py:object', got {entry!r}")
    folder = (spec.folder or Path.cwd()).resolve()
    file = (folder / m["file"]).resolve()
    if not file.is_relative_to(folder):
        raise EntryError(f"'entry' {entry!r} points outside the applet folder {folder}")
    if not file.is_file():
        raise EntryError(f"'entry' file {file} not found")
    return file, m["attr"]


def _module_name(spec: AppletSpec, file: Path) -> str:
    digest = hashlib.sha256(str(file).encode()).hexdigest()[:10]
    return f"ghapplets_applet_{re.sub(r'[^A-Za-z0-9_]', '_', spec.name)}_{digest}"


def _import(spec: AppletSpec, file: Path) -> ModuleType:
    name = _module_name(spec, file)
    mspec = importlib.util.spec_from_file_location(
        name, file, submodule_search_locations=[str(file.parent)]
    )
    if mspec is None or mspec.loader is None:
        raise EntryError(f"cannot import {file}")
    module = importlib.util.module_from_spec(mspec)
    sys.modules[name] = module
    try:
        mspec.loader.exec_module(module)
    except BaseException as exc:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        if isinstance(exc, SyntaxError):
            where = f"{exc.filename}:{exc.lineno}"
            raise EntryError(
                f"cannot import {file.name}: SyntaxError at {where}: {exc.msg}"
            ) from exc
        if isinstance(exc, Exception | SystemExit):  # sys.exit() in a module is an error too
            raise EntryError(f"cannot import {file.name}: {type(exc).__name__}: {exc}") from exc
        raise
    return module


def _find_applet(spec: AppletSpec, module: ModuleType, file: Path, attr: str | None) -> Applet:
    if attr is not None:
        obj = getattr(module, attr, None)
        if isinstance(obj, Applet):
            return obj
        if callable(obj):
            if not spec.on:
                raise EntryError(
                    f"entry {spec.entry!r} is a plain function: list the events it handles "
                    "in 'on:' (or use an Applet and @app.on(...))"
                )
            app = Applet(spec.name)
            app.handle(obj, list(spec.on))
            return app
        raise EntryError(f"{file.name} has no Applet or function named {attr!r}")
    found = [(k, v) for k, v in vars(module).items() if isinstance(v, Applet)]
    if not found:
        raise EntryError(
            f"{file.name} defines no Applet: add `app = Applet({spec.name!r})` and "
            "decorate handlers with @app.on(...)"
        )
    if len({id(v) for _, v in found}) > 1:
        names = ", ".join(k for k, _ in found)
        raise EntryError(
            f"{file.name} defines several Applets ({names}); use 'entry: {file.name}:<name>'"
        )
    return found[0][1]


def load_applet(spec: AppletSpec) -> Applet:
    """Import ``spec.entry`` (once per process) and return its :class:`Applet`.
    Raises :class:`EntryError` with a readable message."""
    file, attr = parse_entry(spec)
    key = (file, attr)
    with _CACHE_LOCK:
        app = _CACHE.get(key)
        if app is None:
            module = sys.modules.get(_module_name(spec, file)) or _import(spec, file)
            app = _find_applet(spec, module, file, attr)
            if not app.handlers:
                raise EntryError(f"Applet {app.name!r} in {file.name} has no @on(...) handlers")
            _CACHE[key] = app
    return app


def _githubkit_error(exc: Exception) -> AppletError | None:
    """The action error a githubkit exception from a handler stands for, or None."""
    if "githubkit" not in sys.modules:  # not loaded: no GitHub connector, no such exception
        return None
    from githubkit.exception import GitHubException

    from ghapplets.connectors.github_kit import action_error

    return action_error(exc) if isinstance(exc, GitHubException) else None


def _jsonable(value: Any) -> Any:
    """A handler result as plain JSON data (dataclasses, datetimes, pydantic models...)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except TypeError as exc:
        raise PermanentError(
            f"the handler returned a value that is not JSON-serialisable: {exc}",
            type=ErrorType.BAD_OUTPUT,
        ) from None


class HandlerThreads:
    """The threads that run one applet's sync handlers: at most ``size``, started on demand.

    Daemon threads: a handler that never returns must not keep the process from exiting (a
    ``concurrent.futures`` pool's threads are joined at exit, and ``asyncio.run`` waits for the
    default executor's). A thread is counted free from the moment its handler returns, before
    its future resolves, so a slot freed by that future always finds a thread.
    """

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads = 0
        self._busy = 0  # submitted and not finished
        self._closed = False

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the threads of applet {self.name!r} are closed")
            self._busy += 1
            if self._busy > self._threads and self._threads < self.size:
                self._threads += 1
                threading.Thread(
                    target=self._serve,
                    name=f"applet-{self.name}-{self._threads}",
                    daemon=True,
                ).start()
            self._work.put((future, fn))
        return future

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, fn = item
            ok, value = False, None
            run = future.set_running_or_notify_cancel()
            if run:
                try:
                    value, ok = fn(), True
                except BaseException as exc:  # handed to the awaiting call, as run_in_executor
                    value = exc
            with self._lock:
                self._busy -= 1
            if run and ok:
                future.set_result(value)
            elif run:
                future.set_exception(value)  # type: ignore[arg-type]
            del item, future, fn, value

    def close(self) -> None:
        """Let every thread end once its handler returns (a stuck one ends with the process)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in range(self._threads):
                self._work.put(None)


class PythonRuntime(Runtime):
    """Calls the handlers of an in-process :class:`Applet`."""

    kind = "python"

    def __init__(
        self,
        spec: AppletSpec,
        *,
        http: httpx.AsyncClient | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(spec, metrics=metrics)
        self._http = http
        self._own_http: httpx.AsyncClient | None = None
        self._handlers: list[tuple[Handler, list[CompiledSubscription]]] | None = None
        self._threads: HandlerThreads | None = None

    async def start(self) -> None:
        if self._threads is None:
            self._threads = HandlerThreads(self.spec.name, self.spec.concurrency)
        if self._handlers is not None:
            return
        try:
            app = load_applet(self.spec)
        except EntryError as exc:
            raise PermanentError(str(exc), type=ErrorType.ENTRY_ERROR) from exc
        if app.name != self.spec.name:
            self._log.warning("Applet name differs from the manifest's", module_name=app.name)
        self._handlers = [
            (h, [CompiledSubscription(s, f"{self.spec.name}:{h.name}") for s in h.subscriptions])
            for h in app.handlers
        ]

    async def close(self) -> None:
        if self._threads is not None:
            self._threads.close()
            self._threads = None
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None

    async def _call_sync(self, func: Callable[[Context], Any], ctx: Context) -> Any:
        """``func(ctx)`` in one of the applet's threads, with this task's context variables.
        Cancelled (the timeout) while it runs, the call is abandoned: see :class:`Slots`."""
        assert self._threads is not None
        work = self._threads.submit(functools.partial(contextvars.copy_context().run, func, ctx))
        try:
            return await asyncio.wrap_future(work)
        except asyncio.CancelledError:
            if not work.cancel() and not work.done():  # running: it cannot be stopped
                self._abandon(work)
            raise

    def _client(self) -> httpx.AsyncClient:
        if self._http is not None:
            return self._http
        if self._own_http is None:
            import httpx

            self._own_http = httpx.AsyncClient(
                timeout=httpx.Timeout(DEFAULT_HTTP_TIMEOUT, connect=10.0),
                headers={"User-Agent": f"ghapplets-applet/{self.spec.name}"},
            )
        return self._own_http

    async def _run(self, inv: Invocation, sink: LogSink) -> AppletOutcome:
        await self.start()
        assert self._handlers is not None
        doc = EventDocument(inv.event)
        chosen = [h for h, subs in self._handlers if any(s.matches(doc) for s in subs)]
        if not chosen:
            raise PermanentError(
                f"no handler of applet {self.spec.name!r} matches event type {inv.event.type!r}",
                type=ErrorType.NO_HANDLER,
            )
        ctx = Context(
            event=inv.event,
            log=applet_logger(self.spec, inv, sink),
            secrets=Secrets(declared_secrets(self.spec, inv), self.spec.secrets, self.spec.name),
            idempotency_key=inv.job_id,
            attempt=inv.attempt,
            delivery_id=inv.delivery_id,
            applet=self.spec.name,
            http_client=self._client(),
            actions=inv.actions,
            clients=inv.clients,
        )
        results = []
        for handler in chosen:
            try:
                result = await self._call(handler, ctx)
            except Exception as exc:
                error = _githubkit_error(exc)
                if error is None:
                    raise
                raise error from None
            results.append(_jsonable(result))
        return AppletOutcome.success(results[0] if len(results) == 1 else results)

    async def _call(self, handler: Handler, ctx: Context) -> Any:
        if handler.is_async:
            return await handler.func(ctx)
        result = await self._call_sync(handler.func, ctx)
        if asyncio.iscoroutine(result):
            result = await result
        return result
