"""The project's open connectors, and running an action on one of them.

:meth:`Connectors.open` resolves each connector's ``${secret:…}``/``${env:…}`` values (global
secrets only, read as ``connector:<name>``), registers them for redaction, and builds the vendor
clients; a connector class that caches short-lived tokens (``uses_token_cache``: GitHub's
installation tokens, ServiceNow's OAuth tokens) is given the store's
:class:`~ghapplets.secrets.tokens.TokenCache`, shared by every process.
:meth:`act` is the one path every runtime takes to an action: the name is looked up, the input
checked against its schema, the connector chosen (the input's ``connector``, else the only one
of the kind), and the applet's ``connectors:`` list enforced, all before the vendor is called.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ghapplets.connectors.catalog import lookup
from ghapplets.connectors.config import ConnectorConfig, ConnectorKind
from ghapplets.connectors.vendors import CONNECTORS
from ghapplets.exceptions import ConnectorNotAllowed, ConnectorUnusable, UnresolvedReference
from ghapplets.logging import get_logger, register_secret
from ghapplets.secrets.refs import Lookup, LookupFor, resolve
from ghapplets.secrets.scopes import Reader

log = get_logger("ghapplets.connectors")

if TYPE_CHECKING:
    from ghapplets.connectors.clients import AppletClients
    from ghapplets.events.cloudevent import CloudEvent
    from ghapplets.sdk.context import ActionCaller
    from ghapplets.secrets.tokens import TokenCache


async def resolved(config: ConnectorConfig, lookup_secret: Lookup) -> Any:
    """A copy of ``config`` with every reference resolved; each value is registered as a
    secret for redaction when it came from a reference."""
    values: dict[str, Any] = {}
    for key, value in config.model_dump().items():
        if isinstance(value, str):
            plain = await resolve(value, lookup_secret)
            if plain != value:
                register_secret(plain)
            value = plain
        values[key] = value
    return type(config).model_validate(values)


class Unusable:
    """A connector that could not be opened, in place of one (see ``Connectors.open``)."""

    def __init__(self, name: str, kind: ConnectorKind, why: str) -> None:
        self.name, self.kind, self.why = name, kind, why

    async def aclose(self) -> None:
        pass


def installation_of(event: CloudEvent) -> int | None:
    """The GitHub App installation a webhook came from (its payload's ``installation.id``)."""
    data = event.data
    found = data.get("installation") if isinstance(data, dict) else None
    number = found.get("id") if isinstance(found, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) else None


class Connectors:
    """The project's connectors by name, open."""

    def __init__(self, connectors: Mapping[str, Any]) -> None:
        self.by_name = dict(connectors)

    @classmethod
    async def open(
        cls,
        configs: Mapping[str, ConnectorConfig],
        lookup_for: LookupFor,
        *,
        tokens: TokenCache | None = None,
        tolerant: bool = False,
    ) -> Connectors:
        """``lookup_for(Reader.connector(name))`` reads the ``${secret:…}`` of the connector
        ``name``; ``tokens``: the store's token cache (None: each connector keeps its tokens in
        memory). A connector whose credentials cannot be resolved is an error, unless
        ``tolerant`` (the worker): then it is logged, and its actions fail with
        :class:`ConnectorUnusable`, while the other connectors work."""
        opened: dict[str, Any] = {}
        try:
            for name, config in configs.items():
                try:
                    plain = await resolved(config, lookup_for(Reader.connector(name)))
                except UnresolvedReference as exc:
                    if not tolerant:
                        raise
                    log.warning("connector not usable", connector=name, error=str(exc))
                    opened[name] = Unusable(name, config.kind, str(exc))
                    continue
                kind = CONNECTORS[config.kind]
                if getattr(kind, "uses_token_cache", False):
                    opened[name] = kind(name, plain, tokens=tokens)
                else:
                    opened[name] = kind(name, plain)
        except BaseException:
            await cls(opened).aclose()
            raise
        return cls(opened)

    def pick(self, kind: str, name: str | None, allowed: Collection[str] | None) -> Any:
        """The connector an action of ``kind`` runs on."""
        if name is not None:
            connector = self.by_name.get(name)
            if connector is None or connector.kind != kind:
                raise ConnectorNotAllowed(f"the project has no {kind} connector named {name!r}")
        else:
            of_kind = [c for c in self.by_name.values() if c.kind == kind]
            if len(of_kind) != 1:
                problem = "no" if not of_kind else "more than one"
                raise ConnectorNotAllowed(
                    f"the project has {problem} {kind} connector"
                    + ("; name one with 'connector'" if of_kind else " in ghapplets.yaml")
                )
            connector = of_kind[0]
        if allowed is not None and connector.name not in allowed:
            raise ConnectorNotAllowed(
                f"connector {connector.name!r} is not in the applet's 'connectors:' list"
            )
        return connector

    async def act(
        self,
        name: str,
        data: Any,
        *,
        allowed: Collection[str] | None = None,
        installation: int | None = None,
    ) -> Any:
        """Run the action ``name`` on ``data``; its output (the vendor's JSON). ``allowed``:
        the connectors the calling applet may use (None: any, as for the CLI outside a job);
        ``installation``: the GitHub App installation of the event being handled, which a
        GitHub action acts as unless its input or the connector's settings name one."""
        action = lookup(name)
        data = action.check(data)
        connector = self.pick(action.kind, data.get("connector"), allowed)
        if isinstance(connector, Unusable):
            raise ConnectorUnusable(f"connector {connector.name!r} cannot be used: {connector.why}")
        payload = {k: v for k, v in data.items() if k != "connector"}
        if (
            installation is not None
            and action.kind == ConnectorKind.GITHUB
            and connector.config.installation_id is None
        ):
            payload.setdefault("installation_id", installation)
        return await action.run(connector, payload)

    def caller(self, allowed: Collection[str], event: CloudEvent) -> ActionCaller:
        """What ``ctx.action`` calls in a job of an applet that may use the connectors
        ``allowed``, handling ``event``: a GitHub action acts as the event's App installation."""
        installation = installation_of(event)

        async def act(name: str, data: Any) -> Any:
            return await self.act(name, data, allowed=allowed, installation=installation)

        return act

    def clients(self, allowed: Collection[str], event: CloudEvent) -> AppletClients:
        """What ``ctx.github``, ``ctx.jira``... give in a job of an applet that may use the
        connectors ``allowed``, handling ``event`` (a GitHub client acts as its installation)."""
        from ghapplets.connectors.clients import AppletClients  # it imports this module

        return AppletClients(self, allowed=allowed, installation=installation_of(event))

    async def aclose(self) -> None:
        for connector in self.by_name.values():
            await connector.aclose()
