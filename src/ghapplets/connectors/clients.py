"""The connectors' clients a Python applet reaches through its Context, for what the action
catalog does not do: ``ctx.github`` (a githubkit client), ``ctx.jira``, ``ctx.servicenow`` and
``ctx.splunk`` (:class:`~ghapplets.connectors.http.VendorClient`), and ``ctx.client(name)``.

An applet reaches only the connectors its manifest lists in ``connectors:``, as with
``ctx.action``; ``ctx.<kind>`` is the one connector of that kind it lists (with two, it names
one with ``ctx.client``). A GitHub client acts as the App installation a GitHub action of the
job would: the connector's ``installation_id``, else the event's ``installation.id``, else,
for each request on a repository, the repository's. Its tokens are the connector's, from the
same cache as the actions': ``ctx.github`` and ``ctx.action`` share one token per installation.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ghapplets.connectors.config import ConnectorKind
from ghapplets.connectors.http import VendorClient
from ghapplets.connectors.registry import Unusable
from ghapplets.exceptions import ConnectorNotAllowed, ConnectorUnusable

if TYPE_CHECKING:
    from ghapplets.connectors.registry import Connectors


class AppletClients:
    """The clients open to one job of an applet: ``allowed`` is its manifest's
    ``connectors:`` (None: every connector), ``installation`` its event's GitHub App
    installation. Each client is made on first use and kept for the job."""

    def __init__(
        self,
        connectors: Connectors,
        *,
        allowed: Collection[str] | None,
        installation: int | None,
    ) -> None:
        self.connectors = connectors
        self.allowed = allowed
        self.installation = installation
        self._made: dict[str, Any] = {}

    def of_kind(self, kind: ConnectorKind) -> Any:
        """The client of the one connector of ``kind`` the applet may use (``ctx.github``)."""
        of_kind = [c for c in self.connectors.by_name.values() if c.kind == kind]
        usable = [c for c in of_kind if self.allowed is None or c.name in self.allowed]
        if len(usable) == 1:
            return self._client(usable[0])
        names = ", ".join(sorted(c.name for c in usable or of_kind))
        if usable:
            raise ConnectorNotAllowed(
                f"ctx.{kind} is ambiguous: the applet may use {len(usable)} {kind} connectors "
                f"({names}); pick one with ctx.client('NAME')"
            )
        if of_kind:
            raise ConnectorNotAllowed(
                f"no {kind} connector is in the applet's 'connectors:' list (the project has: "
                f"{names})"
            )
        raise ConnectorNotAllowed(f"the project has no {kind} connector in ghapplets.yaml")

    def named(self, name: str) -> Any:
        """The client of the connector ``name`` (``ctx.client(name)``)."""
        connector = self.connectors.by_name.get(name)
        if connector is None:
            known = ", ".join(sorted(self.connectors.by_name)) or "none"
            raise ConnectorNotAllowed(
                f"the project has no connector named {name!r} (it has: {known})"
            )
        if self.allowed is not None and name not in self.allowed:
            raise ConnectorNotAllowed(
                f"connector {name!r} is not in the applet's 'connectors:' list"
            )
        return self._client(connector)

    def _client(self, connector: Any) -> Any:
        if isinstance(connector, Unusable):
            raise ConnectorUnusable(f"connector {connector.name!r} cannot be used: {connector.why}")
        made = self._made.get(connector.name)
        if made is None:
            if connector.kind == ConnectorKind.GITHUB:
                # the connector's own installation_id wins over the event's, as for actions
                pinned = connector.config.installation_id is not None
                made = connector.client(None if pinned else self.installation)
            else:
                made = VendorClient(connector.api)
            self._made[connector.name] = made
        return made
