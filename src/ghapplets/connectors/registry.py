"""The project's open connectors, and running an action on one of them.

:meth:`Connectors.open` resolves each connector's ``${secret:…}``/``${env:…}`` values (global
secrets only, read as ``connector:<name>``), registers them for redaction, and builds the vendor
clients; a connector class that caches short-lived tokens (``uses_token_cache``: GitHub's
installation tokens) is given the store's :class:`~ghapplets.secrets.tokens.TokenCache`, shared
by every process.
:meth:`act` is the one path every runtime takes to an action: the name is looked up, the input
checked against its schema, the connector chosen (the input's ``connector``, else the only one
of the kind), and the applet's ``connectors:`` list enforced, all before the vendor is called.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ghapplets.connectors.catalog import lookup
from ghapplets.connectors.config import ConnectorConfig
from ghapplets.connectors.vendors import CONNECTORS
from ghapplets.exceptions import ConnectorNotAllowed
from ghapplets.logging import register_secret
from ghapplets.secrets.refs import Lookup, LookupFor, resolve
from ghapplets.secrets.scopes import Reader

if TYPE_CHECKING:
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
    ) -> Connectors:
        """``lookup_for(Reader.connector(name))`` reads the ``${secret:…}`` of the connector
        ``name``; ``tokens``: the store's token cache (None: each connector keeps its tokens in
        memory)."""
        opened: dict[str, Any] = {}
        try:
            for name, config in configs.items():
                plain = await resolved(config, lookup_for(Reader.connector(name)))
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

    async def act(self, name: str, data: Any, *, allowed: Collection[str] | None = None) -> Any:
        """Run the action ``name`` on ``data``; its output (the vendor's JSON). ``allowed``:
        the connectors the calling applet may use (None: any, as for the CLI outside a job)."""
        action = lookup(name)
        data = action.check(data)
        connector = self.pick(action.kind, data.get("connector"), allowed)
        payload = {k: v for k, v in data.items() if k != "connector"}
        return await action.run(connector, payload)

    async def aclose(self) -> None:
        for connector in self.by_name.values():
            await connector.aclose()
