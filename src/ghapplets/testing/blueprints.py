"""Testing blueprints like code: :class:`BlueprintHarness`, behind the ``ghapplets_blueprint``
fixture.

A harness runs a blueprint in this process on a virtual clock (waits, retry delays and timeouts
pass at once), with mocked applets, actions and HTTP endpoints (each call recorded in
:attr:`BlueprintHarness.calls`), events injected for its listeners, and crash injection::

    def test_change_request(ghapplets_blueprint):
        bp = ghapplets_blueprint
        bp.mock_action("servicenow.create_change", {"sys_id": "CHG1"})
        bp.event({"type": "com.servicenow.change.approved", "source": "/sn", "data": {...}})
        report = bp.run("blueprints/change.yaml", input={"pr": 7})
        assert report.status == "completed"
        assert [t.name for t in report.tasks] == ["open", "waitForApproval", "deploy"]

``bp.run(..., crash_after=N)`` stops the run dead right after its N-th completed task is
checkpointed, then runs it again on the same journal, as a restarted worker would: the report
is the resumed run's, and ``bp.calls`` shows whether any effect happened twice.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ghapplets.blueprints.effects import call_action
from ghapplets.blueprints.host import HttpRequest, HttpResponse, MemoryJournal, VirtualClock
from ghapplets.blueprints.loader import Blueprint, load_blueprint, parse_blueprint
from ghapplets.blueprints.local import Crashed, LocalHost, Report, execute
from ghapplets.blueprints.program import Program
from ghapplets.connectors.registry import Connectors
from ghapplets.exceptions import BlueprintError
from ghapplets.testing.invoke import open_connectors


@dataclass(frozen=True)
class Call:
    """One effect the run had: ``kind`` is ``applet``, ``action`` or ``http``."""

    kind: str
    name: str
    data: Any
    key: str = ""


@dataclass
class _Route:
    method: str
    pattern: str
    answer: Any
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class BlueprintHarness:
    def __init__(
        self, folder: Path | None = None, *, on_run: Callable[[Blueprint], None] | None = None
    ) -> None:
        """``folder``: what relative blueprint paths are relative to (default: the current
        folder); ``on_run``: called with each blueprint before it runs (the pytest plugin
        records its name in the test's report)."""
        self.folder = folder or Path.cwd()
        self._on_run = on_run
        self.clock = VirtualClock()
        self.calls: list[Call] = []
        self.secrets: dict[str, Any] = {}
        self._applets: dict[str, Any] = {}
        self._actions: dict[str, Any] = {}
        self._routes: list[_Route] = []
        self._events: list[Mapping[str, Any]] = []
        self._subflows: list[Program] = []
        self._hosts: list[LocalHost] = []
        self._waiting: list[Callable[[], bool]] = []
        self._connector_settings: Mapping[str, Any] | None = None
        self._connectors: Connectors | None = None

    # -- what the run meets -------------------------------------------------------------
    def mock_applet(self, name: str, answer: Any) -> None:
        """``call: <name>`` answers ``answer``, or ``answer(data)`` if it is callable (which
        may raise a :class:`BlueprintError` or an applet error)."""
        self._applets[name] = answer

    def mock_action(self, name: str, answer: Any) -> None:
        """Like :meth:`mock_applet`, for ``call: <connector>.<action>``."""
        self._actions[name] = answer

    def mock_http(
        self,
        method: str,
        url: str,
        answer: Any = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Requests ``method url`` (``*`` wildcards in the URL, query ignored) answer
        ``answer`` (JSON, ``bytes`` or ``str``; or ``answer(request)`` returning one)."""
        self._routes.append(_Route(method.upper(), url, answer, status, dict(headers or {})))

    def connect(self, settings: Mapping[str, Any]) -> None:
        """Actions that are not mocked run on these connectors (settings as under
        ``connectors:`` in ``ghapplets.yaml``; ``ghapplets_fakes.connectors()`` gives those of
        the local vendor fakes)."""
        self._connector_settings = settings

    def event(self, event: Mapping[str, Any]) -> None:
        """An event that arrives for the run's listeners (CloudEvent attributes and data)."""
        full = {"specversion": "1.0", "id": f"event-{len(self._events)}", "source": "/test"}
        full.update(event)
        self._events.append(full)
        if self._hosts:  # a run under way gets it now
            self._hosts[-1].inject(full)

    def when_waiting(self, send: Callable[[], bool]) -> None:
        """``send()`` is called when the run waits for events and nothing else can happen; it
        may send some (with :meth:`event`) and says whether it did. Without one that does, the
        run is left waiting (reported ``waiting``)."""
        self._waiting.append(send)

    def subflow(self, blueprint: str | Path) -> None:
        """Another blueprint that ``run.workflow`` tasks may run."""
        loaded = self.load(blueprint)
        self._subflows.append(Program(loaded.definition))

    def load(self, blueprint: str | Path) -> Blueprint:
        """A blueprint file (relative to the project folder), or a YAML text."""
        if isinstance(blueprint, str) and "\n" in blueprint:
            return parse_blueprint(blueprint, "<test>")
        path = Path(blueprint)
        return load_blueprint(path if path.is_absolute() else self.folder / path)

    # -- running ------------------------------------------------------------------------
    def run(
        self, blueprint: str | Path, input: Any = None, *, crash_after: int | None = None
    ) -> Report:
        """Run to the end (see :meth:`arun`), from synchronous test code."""
        return asyncio.run(self.arun(blueprint, input, crash_after=crash_after))

    async def arun(
        self, blueprint: str | Path, input: Any = None, *, crash_after: int | None = None
    ) -> Report:
        loaded = self.load(blueprint)
        if self._on_run is not None:
            self._on_run(loaded)
        program = Program(loaded.definition)
        journal = MemoryJournal()
        started = self.clock.now()
        self._connectors = await open_connectors(self._connector_settings)
        try:
            try:
                return await execute(
                    program, self._host(journal, crash_after), input, started_at=started
                )
            except Crashed:
                return await execute(program, self._host(journal, None), input, started_at=started)
        finally:
            if self._connectors is not None:
                await self._connectors.aclose()
                self._connectors = None

    def _host(self, journal: MemoryJournal, crash_after: int | None) -> LocalHost:
        host = LocalHost(
            run_id="test-run",
            journal=journal,
            clock=self.clock,
            applets=self._caller("applet", self._applets),
            actions=self._caller("action", self._actions),
            http=self._http,
            blueprints=self._subflows,
            secrets=self.secrets,
            crash_after=crash_after,
            when_waiting=self._wake,
        )
        self._hosts.append(host)
        for event in self._events:
            host.inject(event)
        return host

    def _wake(self) -> bool:
        before = len(self._events)
        for send in self._waiting:
            send()
        return len(self._events) > before

    def _caller(self, kind: str, answers: Mapping[str, Any]) -> Callable[[str, Any, str], Any]:
        async def call(name: str, data: Any, key: str) -> Any:
            self.calls.append(Call(kind, name, data, key))
            if name not in answers and kind == "action" and self._connectors is not None:
                return await call_action(self._connectors, name, data)
            if name not in answers:
                raise AssertionError(f"the blueprint called the {kind} {name!r}, not mocked")
            answer = answers[name]
            return answer(data) if callable(answer) else answer

        return call

    async def _http(self, request: HttpRequest) -> HttpResponse:
        self.calls.append(Call("http", f"{request.method} {request.uri}", request.body))
        for route in self._routes:
            if route.method in (request.method, "*") and fnmatch.fnmatchcase(
                request.uri.split("?")[0], route.pattern
            ):
                answer = route.answer(request) if callable(route.answer) else route.answer
                return _response(route, answer)
        raise AssertionError(f"the blueprint sent {request.method} {request.uri}, not mocked")

    def count(self, kind: str, name: str | None = None) -> int:
        """How many effects of ``kind`` (and ``name``) the runs had."""
        return sum(1 for c in self.calls if c.kind == kind and name in (None, c.name))


def _response(route: _Route, answer: Any) -> HttpResponse:
    headers = dict(route.headers)
    if isinstance(answer, bytes):
        body = answer
    elif isinstance(answer, str):
        body = answer.encode()
        headers.setdefault("content-type", "text/plain")
    elif answer is None:
        body = b""
    else:
        body = orjson.dumps(answer)
        headers.setdefault("content-type", "application/json")
    return HttpResponse(route.status, headers, body)


__all__ = ["BlueprintError", "BlueprintHarness", "Call", "Report"]
