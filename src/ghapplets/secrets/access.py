"""Every read of a secret value, whatever backend keeps it: scope, audit, redaction.

:class:`SecretAccess` is the one way a value leaves a backend (:mod:`ghapplets.secrets.backends`):

- :meth:`SecretAccess.for_applet`: an applet's declared secrets, each its own or global (the
  worker, ``ghapplets invoke``, and through the worker the test kit's gateway);
- :meth:`SecretAccess.lookup`: ``${secret:name}`` in a source's or a connector's settings,
  global secrets only (resolved with :func:`ghapplets.secrets.refs.resolve`);
- :meth:`SecretAccess.get`: any secret, for the operator (``ghapplets secrets get``) only.

Each read names its :class:`~ghapplets.secrets.scopes.Reader`, is checked against the reader's
scope, recorded in the audit log (:mod:`ghapplets.secrets.audit`) with how it ended, and each
value handed out is registered for redaction from logs and results. A name that cannot be a
secret's (``../x``, ``a/b``) is refused before any backend sees it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from ghapplets.exceptions import GhappletsError, InvalidSecret, NotFound, SecretScopeError
from ghapplets.logging import register_secret
from ghapplets.secrets.audit import SecretAudit
from ghapplets.secrets.backends import Secret, SecretBackend
from ghapplets.secrets.names import check_name
from ghapplets.secrets.refs import Lookup
from ghapplets.secrets.scopes import CLI, GLOBAL, Reader, Scope
from ghapplets.store.records import ReadOutcome


def _outcome(exc: GhappletsError) -> ReadOutcome:
    if isinstance(exc, InvalidSecret):
        return ReadOutcome.INVALID
    if isinstance(exc, NotFound):
        return ReadOutcome.NOT_FOUND
    if isinstance(exc, SecretScopeError):
        return ReadOutcome.DENIED
    return ReadOutcome.FAILED


class SecretAccess:
    """Reads from ``backend`` on behalf of readers, each recorded in ``audit``."""

    def __init__(self, backend: SecretBackend, audit: SecretAudit) -> None:
        self.backend = backend
        self.audit = audit

    def lookup(self, reader: Reader) -> Lookup:
        """How ``reader`` (a source's or a connector's settings) reads ``${secret:name}``:
        global secrets only."""
        return functools.partial(self._read, reader)

    async def for_applet(self, applet: str, names: Sequence[str]) -> Mapping[str, str]:
        """The values of ``names`` for ``applet``: each global or of ``applet:<applet>``
        (:class:`SecretScopeError` or NotFound otherwise)."""
        return await self._all(Reader.applet(applet), names)

    async def for_blueprint(self, blueprint: str, names: Sequence[str]) -> Mapping[str, str]:
        """The values of ``names`` for the runs of ``blueprint``: each global or of
        ``blueprint:<blueprint>`` (:class:`SecretScopeError` or NotFound otherwise)."""
        return await self._all(Reader.blueprint(blueprint), names)

    async def _all(self, reader: Reader, names: Sequence[str]) -> Mapping[str, str]:
        return {name: await self._read(reader, name) for name in names}

    async def get(self, name: str, scope: Scope | None = None) -> str:
        """Any secret, for the operator: ``name`` of ``scope`` (see
        :meth:`~ghapplets.secrets.backends.SecretBackend.get`)."""
        return await self._read(CLI, name, scope)

    async def _read(self, reader: Reader, name: str, scope: Scope | None = None) -> str:
        as_scope = reader.scope
        try:
            check_name(name)
            secret: Secret = await (
                self.backend.get(name, scope)
                if as_scope is None
                else self.backend.read(name, as_scope)
            )
        except GhappletsError as exc:
            self.audit.record(reader, name, _outcome(exc))
            if isinstance(exc, SecretScopeError) and as_scope is not None:
                mine = "" if as_scope == GLOBAL else f" and those of {as_scope}"
                raise SecretScopeError(
                    f"{exc}: {reader.describe()} may read only global secrets{mine}"
                ) from None
            raise
        register_secret(secret.value)
        self.audit.record(reader, name, ReadOutcome.OK, secret.scope)
        return secret.value
