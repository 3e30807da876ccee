"""Serving the fakes: build them from a :class:`FakesConfig` and run each on its own port with
uvicorn, on a background thread with its own event loop.

>>> with serve_fakes(FakesConfig()) as fakes:        # doctest: +SKIP
...     fakes.github.base_url                         # http://127.0.0.1:<port>
...     fakes.github.exchanges(2001)

The sockets are bound before the servers start (port 0 picks a free one, with no race), the
servers run without an access log (recorded requests hold credentials, and a query string can
carry a Splunk token), and :meth:`FakeServers.stop` ends them. The CLI (``ghapplets fakes``) and
the pytest fixture (``ghapplets_fakes``) both use this.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn

from ghapplets.exceptions import NotFound
from ghapplets.fakes.config import FakeName, FakesConfig, with_generated_keys
from ghapplets.fakes.core import Clock, Fake
from ghapplets.fakes.github import GitHubFake
from ghapplets.fakes.github_jwt import sign_app_jwt
from ghapplets.fakes.jira import JiraFake
from ghapplets.fakes.servicenow import ServiceNowFake
from ghapplets.fakes.splunk import SplunkFake

F = TypeVar("F", bound=Fake)
START_TIMEOUT = 10.0


@dataclass
class FakeSet:
    """The fakes built from one configuration, sharing one :class:`Clock`. ``private_keys``:
    the PEM private keys generated for GitHub Apps configured without a public key, by App id.
    """

    fakes: dict[FakeName, Fake]
    clock: Clock
    private_keys: dict[int, str] = field(default_factory=dict)

    def _get(self, name: FakeName, kind: type[F]) -> F:
        fake = self.fakes.get(name)
        if not isinstance(fake, kind):
            raise NotFound(f"the {name} fake is not running")
        return fake

    @property
    def github(self) -> GitHubFake:
        return self._get(FakeName.GITHUB, GitHubFake)

    @property
    def jira(self) -> JiraFake:
        return self._get(FakeName.JIRA, JiraFake)

    @property
    def jira_dc(self) -> JiraFake:
        return self._get(FakeName.JIRA_DC, JiraFake)

    @property
    def servicenow(self) -> ServiceNowFake:
        return self._get(FakeName.SERVICENOW, ServiceNowFake)

    @property
    def splunk(self) -> SplunkFake:
        return self._get(FakeName.SPLUNK, SplunkFake)

    def app_jwt(self, app_id: int | None = None, **claims: Any) -> str:
        """A valid JWT for a GitHub App whose key was generated here (default: the first),
        signed as a client would, at the fakes' time; ``claims`` go to
        :func:`~ghapplets.fakes.github_jwt.sign_app_jwt` (``iat_offset``, ``lifetime``...)."""
        if not self.private_keys:
            raise NotFound("no GitHub App key was generated (the Apps have public keys)")
        chosen = app_id if app_id is not None else next(iter(self.private_keys))
        return sign_app_jwt(self.private_keys[chosen], chosen, now=self.clock.now(), **claims)

    def connectors(self) -> dict[str, dict[str, Any]]:
        """Connector settings for the running fakes, as ``connectors:`` in ``ghapplets.yaml``
        takes them, with the fakes' development credentials: ``github`` (the first App with a
        generated key, acting as its first installation), ``jira`` (Cloud), ``jira-dc``,
        ``servicenow`` (basic auth) and ``splunk`` (HEC), each present when its fake runs."""
        found: dict[str, dict[str, Any]] = {}
        if FakeName.GITHUB in self.fakes and self.private_keys:
            gh = self.github
            app = next(a for a in gh.config.apps if a.id in self.private_keys)
            installation = next(
                (i for i in gh.config.installations if i.app_id in (None, app.id)), None
            )
            found["github"] = {
                "kind": "github",
                "base_url": gh.base_url,
                "app_id": app.id,
                "private_key": self.private_keys[app.id],
                **({"installation_id": installation.id} if installation else {}),
            }
        for name, key in ((FakeName.JIRA, "jira"), (FakeName.JIRA_DC, "jira-dc")):
            if name in self.fakes:
                jira = self._get(name, JiraFake)
                user = jira.config.users[0]
                settings: dict[str, Any] = {
                    "kind": "jira",
                    "flavor": str(jira.flavor),
                    "base_url": jira.base_url,
                }
                if user.email and user.api_token:
                    settings.update(email=user.email, token=user.api_token)
                else:
                    settings.update(token=user.token)
                found[key] = settings
        if FakeName.SERVICENOW in self.fakes:
            sn = self.servicenow
            sn_user = sn.config.users[0]
            found["servicenow"] = {
                "kind": "servicenow",
                "base_url": sn.base_url,
                "username": sn_user.username,
                "password": sn_user.password,
            }
        if FakeName.SPLUNK in self.fakes:
            splunk = self.splunk
            found["splunk"] = {
                "kind": "splunk",
                "url": splunk.base_url,
                "token": splunk.config.tokens[0].token,
            }
        return found

    def reset(self) -> None:
        """Every fake back to its configuration, with no recorded requests or faults, and the
        clock back to the wall clock."""
        self.clock.offset = 0.0
        for fake in self.fakes.values():
            fake.reset()


def build_fakes(
    config: FakesConfig, only: Sequence[FakeName] | None = None, clock: Clock | None = None
) -> FakeSet:
    """The fakes of ``config`` (all, or ``only`` these); keys generated where none is given."""
    config, private_keys = with_generated_keys(config)
    clock = clock or Clock()
    wanted = list(FakeName) if only is None else [FakeName(n) for n in only]
    fakes: dict[FakeName, Fake] = {}
    for name in FakeName:
        if name not in wanted:
            continue
        if name == FakeName.GITHUB:
            fakes[name] = GitHubFake(config.github, clock=clock)
        elif name == FakeName.JIRA:
            fakes[name] = JiraFake(config.jira, clock=clock)
        elif name == FakeName.JIRA_DC:
            fakes[name] = JiraFake(config.jira_dc, clock=clock)
        elif name == FakeName.SERVICENOW:
            fakes[name] = ServiceNowFake(config.servicenow, clock=clock)
        else:
            fakes[name] = SplunkFake(config.splunk, clock=clock)
    return FakeSet(fakes, clock, private_keys)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class FakeServers:
    """The fakes of a :class:`FakeSet` served on ``host``: fake ``i`` on ``ports[name]``, or on
    ``base_port + i`` (in :class:`FakeName` order), or on a free port when neither is given."""

    def __init__(
        self,
        fakes: FakeSet,
        host: str = "127.0.0.1",
        *,
        base_port: int | None = None,
        ports: Mapping[FakeName, int] | None = None,
    ) -> None:
        self.fakes = fakes
        self.host = host
        self.base_port = base_port
        self.ports = dict(ports or {})
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _port_for(self, name: FakeName) -> int:
        if name in self.ports:
            return self.ports[name]
        if self.base_port is not None:
            return self.base_port + list(FakeName).index(name)
        return 0

    def start(self) -> FakeServers:
        sockets: list[tuple[Fake, socket.socket]] = []
        try:
            for name, fake in self.fakes.fakes.items():
                sock = _bind(self.host, self._port_for(name))
                sockets.append((fake, sock))
                fake.base_url = _url(self.host, sock.getsockname()[1])
        except OSError:
            for _, sock in sockets:
                sock.close()
            raise
        for fake, _ in sockets:
            config = uvicorn.Config(
                fake.app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                loop="asyncio",
                http="h11",
            )
            self._servers.append(uvicorn.Server(config))
        self._thread = threading.Thread(
            target=self._run, args=([s for _, s in sockets],), name="ghapplets-fakes", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the fakes did not start: {self._error}")
        return self

    def _run(self, sockets: list[socket.socket]) -> None:
        async def main() -> None:
            tasks = [
                asyncio.create_task(server.serve(sockets=[sock]))
                for server, sock in zip(self._servers, sockets, strict=True)
            ]
            while not all(s.started for s in self._servers):
                done = [t for t in tasks if t.done()]
                if done:
                    self._error = done[0].exception() or RuntimeError("a fake server stopped")
                    self._ready.set()
                    break
                await asyncio.sleep(0.005)
            self._ready.set()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to start(); the thread ends either way
            self._error = exc
            self._ready.set()
        finally:
            for sock in sockets:
                sock.close()

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_fakes(
    config: FakesConfig | None = None,
    *,
    host: str = "127.0.0.1",
    only: Sequence[FakeName] | None = None,
    base_port: int | None = None,
) -> Iterator[FakeSet]:
    """Build and serve the fakes of ``config`` (default: the defaults) until the block ends."""
    fakes = build_fakes(config or FakesConfig(), only)
    with FakeServers(fakes, host, base_port=base_port):
        yield fakes
