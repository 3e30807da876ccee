"""What a Python applet handler receives: :class:`Context` (and its :class:`Secrets`).

Kept deliberately small, the gidgethub/Probot way: the event and its common attributes, a logger
bound to the delivery, the applet's declared secrets, its own HTTP client, and the idempotency
key and attempt number for writing safe, retryable side effects; and the connectors its
manifest lists: their catalog actions (:meth:`Context.action`) and, for anything beyond the
catalog, their authenticated clients (``ctx.github``, a githubkit client; ``ctx.jira``,
``ctx.servicenow``, ``ctx.splunk``; :meth:`Context.client`). It imports nothing heavy:
githubkit is loaded by the GitHub connector, not here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from ghapplets.connectors.config import ConnectorKind
from ghapplets.events.cloudevent import CloudEvent
from ghapplets.exceptions import ConnectorNotAllowed

if TYPE_CHECKING:
    import githubkit
    import httpx

    from ghapplets.connectors.http import VendorClient


# runs the catalog action NAME on INPUT for one applet, within its ``connectors:``
ActionCaller = Callable[[str, Any], Awaitable[Any]]


class ConnectorClients(Protocol):
    """The connectors' clients open to one run, within the applet's ``connectors:``
    (:class:`~ghapplets.connectors.clients.AppletClients`)."""

    def of_kind(self, kind: ConnectorKind) -> Any:
        """The client of the applet's one connector of ``kind``."""

    def named(self, name: str) -> Any:
        """The client of the connector ``name``."""


class Secrets(Mapping[str, str]):
    """The values of the secrets an applet declared in ``secrets:``. Reading a secret that
    was not declared (or has no value) raises :class:`KeyError` saying so. ``repr`` never
    shows values."""

    __slots__ = ("_applet", "_declared", "_values")

    def __init__(
        self, values: Mapping[str, str], declared: Iterable[str] | None = None, applet: str = ""
    ) -> None:
        self._declared = tuple(values if declared is None else declared)
        self._values = {k: values[k] for k in self._declared if k in values}
        self._applet = applet

    def __getitem__(self, name: str) -> str:
        try:
            return self._values[name]
        except KeyError:
            who = f"applet {self._applet!r}" if self._applet else "this applet"
            if name not in self._declared:
                raise KeyError(
                    f"secret {name!r} is not declared by {who}; add it to 'secrets:' in applet.yaml"
                ) from None
            raise KeyError(
                f"secret {name!r} is declared by {who} but has no value in the secret store"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets({sorted(self._values)!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """The one argument of a handler.

    ``event`` the CloudEvent; ``data``/``type``/``id``/``subject`` its common attributes;
    ``log`` a structlog logger bound to ``delivery_id``, ``applet`` and ``job_id``;
    ``secrets`` the declared secrets; ``http`` the applet's own :class:`httpx.AsyncClient`;
    ``idempotency_key`` stable across the retries of one job (send it to APIs that accept
    one); ``attempt`` 1 for the first try; :meth:`action` runs a connector action;
    :attr:`github`, :attr:`jira`, :attr:`servicenow`, :attr:`splunk` and :meth:`client` are
    the connectors' authenticated clients.
    """

    event: CloudEvent
    log: Any = field(default_factory=structlog.get_logger)
    secrets: Mapping[str, str] = field(default_factory=lambda: Secrets({}))
    idempotency_key: str = ""
    attempt: int = 1
    delivery_id: str = ""
    applet: str = ""
    http_client: httpx.AsyncClient | None = None
    actions: ActionCaller | None = None
    clients: ConnectorClients | None = None

    async def action(self, name: str, input: Any) -> Any:
        """Run the catalog action ``name`` (``ghapplets actions``) on ``input``; the vendor's
        JSON. A vendor refusal raises :class:`~ghapplets.exceptions.ActionFailed` (the job is
        dead-lettered unless caught), an outage :class:`~ghapplets.exceptions.ActionUnavailable`
        (the job is retried); only the connectors in the manifest's ``connectors:`` are open to
        the applet."""
        if self.actions is None:
            raise ConnectorNotAllowed("no connectors are available to this run")
        return await self.actions(name, input)

    @property
    def github(self) -> githubkit.GitHub[Any]:
        """A githubkit client (use its async methods) of the applet's GitHub connector, as the
        App installation the event came from (else the connector's ``installation_id``, else,
        per request, the repository's), on the tokens ``ctx.action`` uses. GitHub's error
        answers raise githubkit's exceptions (``RequestFailed``, with ``.response``); one a
        handler does not catch ends the job as the same failed action would (dead-lettered,
        or retried after GitHub's ``Retry-After``)."""
        client: githubkit.GitHub[Any] = self._clients().of_kind(ConnectorKind.GITHUB)
        return client

    @property
    def jira(self) -> VendorClient:
        """The applet's Jira connector, authenticated: ``await ctx.jira.json("GET",
        "/rest/api/3/issue/OPS-1")``; ``request`` gives the :class:`httpx.Response`. Errors
        are the actions' (:class:`~ghapplets.exceptions.ActionFailed`, ...)."""
        client: VendorClient = self._clients().of_kind(ConnectorKind.JIRA)
        return client

    @property
    def servicenow(self) -> VendorClient:
        """The applet's ServiceNow connector, authenticated (as :attr:`jira`)."""
        client: VendorClient = self._clients().of_kind(ConnectorKind.SERVICENOW)
        return client

    @property
    def splunk(self) -> VendorClient:
        """The applet's Splunk HEC connector, authenticated (as :attr:`jira`)."""
        client: VendorClient = self._clients().of_kind(ConnectorKind.SPLUNK)
        return client

    def client(self, connector: str) -> Any:
        """The authenticated client of the connector named ``connector`` (in the manifest's
        ``connectors:``): as :attr:`github` for a GitHub connector, else as :attr:`jira`. For
        an applet that lists two connectors of a kind, where ``ctx.<kind>`` is ambiguous."""
        return self._clients().named(connector)

    def _clients(self) -> ConnectorClients:
        if self.clients is None:
            raise ConnectorNotAllowed("no connectors are available to this run")
        return self.clients

    @property
    def data(self) -> Any:
        """The event payload (the parsed webhook body)."""
        return self.event.data

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def subject(self) -> str | None:
        return self.event.subject

    @property
    def http(self) -> httpx.AsyncClient:
        """The applet's HTTP client (connection pooling, sane timeouts, a cookie jar no other
        applet shares). Do not close it."""
        if self.http_client is None:
            raise RuntimeError("this Context has no HTTP client (pass http_client=...)")
        return self.http_client
