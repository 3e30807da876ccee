"""The layout of the backends that keep each secret at a path: OpenBao and Kubernetes files.

A secret's scope is part of where it is, below the backend's root (OpenBao's ``prefix``, the
Kubernetes folder)::

    <name>                       global
    applets/<applet>/<name>      scope applet:<applet>
    blueprints/<blueprint>/<name>  scope blueprint:<blueprint>

So the same name may exist in several scopes. A reader of scope ``applet:x`` gets
``applets/x/<name>`` if it exists, else the global ``<name>``: its own secret shadows a global
one of the same name, and it never looks anywhere else, so another applet's secret is not
found rather than refused. A source's or connector's settings read the global one only.

Every part of a path is checked before it is used: a name as any secret name
(:func:`~ghapplets.secrets.names.check_name`: no ``/``, never ``.`` or ``..``, never a leading
``.``), an owner as an applet name. A name such as ``../x`` or ``a/b`` is refused
(:class:`~ghapplets.exceptions.InvalidSecret`), never joined into a path.
"""

from __future__ import annotations

from abc import abstractmethod

from ghapplets.exceptions import InvalidSecret, NotFound
from ghapplets.secrets.backends import Secret, SecretBackend, SecretInfo
from ghapplets.secrets.names import NAME_RE, check_name
from ghapplets.secrets.scopes import GLOBAL, OWNER_RE, Scope, ScopeKind

Parts = tuple[str, ...]
FOLDERS = {ScopeKind.APPLET: "applets", ScopeKind.BLUEPRINT: "blueprints"}
_KINDS = {folder: kind for kind, folder in FOLDERS.items()}


def layout(name: str, scope: Scope) -> Parts:
    """Where the secret ``name`` of ``scope`` is, below the backend's root."""
    check_name(name)
    if scope.kind is ScopeKind.GLOBAL:
        return (name,)
    if not OWNER_RE.match(scope.owner):
        raise InvalidSecret(
            f"invalid scope {str(scope)!r}: its name must be lower case letters, digits, "
            "'.', '_' or '-'"
        )
    return (FOLDERS[scope.kind], scope.owner, name)


def scope_of(folder: str, owner: str) -> Scope | None:
    """The scope of the secrets in ``<folder>/<owner>/``, or None if that is no scope's."""
    kind = _KINDS.get(folder)
    return Scope(kind, owner) if kind is not None and OWNER_RE.match(owner) else None


def is_name(entry: str) -> bool:
    """Can ``entry`` (a file or key found in the backend) be a secret's name?"""
    return bool(NAME_RE.match(entry))


Listing = list[tuple[Parts, float, float]]  # each secret's parts, created_at, updated_at


class PathBackend(SecretBackend):
    """A backend whose secrets are at :func:`layout` paths; subclasses fetch one path."""

    @abstractmethod
    async def _fetch(self, parts: Parts) -> str | None:
        """The value at ``parts``, or None when nothing is there."""

    @abstractmethod
    async def _listing(self) -> Listing:
        """Every secret at a layout path (others are left out)."""

    @abstractmethod
    def where(self, parts: Parts) -> str:
        """``parts`` as the backend names the place (for messages)."""

    @property
    @abstractmethod
    def how_to_add(self) -> str:
        """How an operator adds a secret here (ends a NotFound message)."""

    async def read(self, name: str, reader: Scope) -> Secret:
        scopes = [reader] if reader == GLOBAL else [reader, GLOBAL]
        return await self._first(name, scopes)

    async def get(self, name: str, scope: Scope | None = None) -> Secret:
        return await self._first(name, [scope or GLOBAL])

    async def _first(self, name: str, scopes: list[Scope]) -> Secret:
        places = [layout(name, scope) for scope in scopes]  # every part checked first
        for scope, parts in zip(scopes, places, strict=True):
            value = await self._fetch(parts)
            if value is not None:
                return Secret(value, str(scope))
        looked = " or ".join(self.where(parts) for parts in places)
        raise NotFound(f"no secret named {name!r} at {looked}: {self.how_to_add}")

    async def list(self) -> list[SecretInfo]:
        out = []
        for parts, created, updated in await self._listing():
            scope = GLOBAL if len(parts) == 1 else scope_of(parts[0], parts[1])
            if scope is not None:
                out.append(SecretInfo(parts[-1], str(scope), created, updated))
        return sorted(out, key=lambda i: (i.name, i.scope))
