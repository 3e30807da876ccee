"""The OpenBao backend (HashiCorp Vault too): secrets in a KV version 2 engine, through hvac.

Each secret is the field ``secrets.field`` (``value``) of the entry at
``<prefix>/<layout path>`` in the engine mounted at ``secrets.mount``
(:mod:`ghapplets.secrets.backends.paths`): ``ghapplets/jira-token`` is global,
``ghapplets/applets/triage/jira-token`` is the applet ``triage``'s.

hvac is synchronous: every call runs in a thread (:func:`asyncio.to_thread`), within
``secrets.timeout`` seconds, so a server that does not answer is an error, never a hang.
Errors say what was asked of which server and never carry a value:

- the server cannot be reached, times out, is sealed or fails (5xx, 429):
  :class:`~ghapplets.exceptions.SecretBackendUnavailable` (retryable);
- it refuses the token (403), has no such mount, or the entry has no string ``field``:
  :class:`~ghapplets.exceptions.SecretBackendError`;
- there is no such entry (or its latest version is deleted): not found.

Logging in happens at the first request. With ``token_file`` or ``kubernetes_role``, a refused
token is renewed once (the file read again, or a new Kubernetes login) and the request made
again; a token from ``token`` has no other to try. The token is registered for redaction.
Values read are kept for ``secrets.cache_ttl`` seconds (per process), so a worker does not ask
the server once per job; ``secrets set`` and ``rm`` drop this process's copy at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import hvac
import requests
from hvac import exceptions as bao

from ghapplets.exceptions import (
    InvalidSecret,
    SecretBackendError,
    SecretBackendUnavailable,
    UnresolvedReference,
)
from ghapplets.logging import register_secret
from ghapplets.secrets.backends.paths import (
    FOLDERS,
    Listing,
    Parts,
    PathBackend,
    is_name,
    layout,
    scope_of,
)
from ghapplets.secrets.config import BackendKind, OpenBaoSecrets
from ghapplets.secrets.refs import parse_ref
from ghapplets.secrets.scopes import GLOBAL, Scope

T = TypeVar("T")
_DENIED = (bao.Forbidden, bao.Unauthorized)
_NOT_NOW = (
    bao.VaultDown,
    bao.InternalServerError,
    bao.BadGateway,
    bao.RateLimitExceeded,
    bao.VaultNotInitialized,
)


def _epoch(text: Any) -> float:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return 0.0


class OpenBaoBackend(PathBackend):
    kind = BackendKind.OPENBAO

    def __init__(self, settings: OpenBaoSecrets, root: Path) -> None:
        """``root``: the project folder, which relative file settings are relative to."""
        self.settings = settings
        self.root = root
        ca = settings.ca_cert
        self.client = hvac.Client(
            url=settings.address,
            namespace=settings.namespace,
            timeout=settings.timeout,  # type: ignore[arg-type]  # requests takes a float
            verify=str(root / ca) if ca is not None else True,
        )
        self._logged_in = False
        self._login_lock = asyncio.Lock()
        self._cache: dict[Parts, tuple[float, str]] = {}

    # -- places ----------------------------------------------------------------------------
    def _path(self, parts: Parts) -> str:
        return "/".join((self.settings.prefix, *parts))

    def where(self, parts: Parts) -> str:
        return f"{self.settings.mount}/{self._path(parts)} (field {self.settings.field!r})"

    @property
    def how_to_add(self) -> str:
        s = self.settings
        return (
            f"add it with 'ghapplets secrets set NAME [--scope applet:APPLET]' or 'bao kv put "
            f"-mount={s.mount} {s.prefix}/NAME {s.field}=...'"
        )

    # -- calls -----------------------------------------------------------------------------
    async def _in_thread(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` in a thread within the timeout; errors as Ghapplets errors (a refused
        token and a missing path are let through as hvac's, for the caller to decide)."""
        address, timeout = self.settings.address, self.settings.timeout
        try:
            return await asyncio.wait_for(asyncio.to_thread(call), timeout)
        except (TimeoutError, requests.exceptions.Timeout):
            raise SecretBackendUnavailable(
                f"OpenBao at {address} did not answer {what} within {timeout:g}s"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise SecretBackendError(
                f"OpenBao at {address}: TLS failed {what} (secrets.ca_cert?): {exc}"
            ) from None
        except requests.exceptions.ConnectionError:
            raise SecretBackendUnavailable(
                f"OpenBao at {address} cannot be reached {what}: connection failed"
            ) from None
        except _NOT_NOW as exc:
            raise SecretBackendUnavailable(
                f"OpenBao at {address} cannot serve {what} now: {exc}"
            ) from None
        except (*_DENIED, bao.InvalidPath):
            raise
        except (bao.VaultError, requests.exceptions.RequestException) as exc:
            raise SecretBackendError(f"OpenBao at {address} refused {what}: {exc}") from None

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` logged in; a refused token renewed once where it can be."""
        if not self._logged_in:
            await self._login()
        try:
            return await self._in_thread(what, call)
        except _DENIED as exc:
            if self.settings.token is not None:  # no other token to try
                raise self._denied(what, exc) from None
        await self._login()
        try:
            return await self._in_thread(what, call)
        except _DENIED as exc:
            raise self._denied(what, exc) from None

    def _denied(self, what: str, exc: Exception) -> SecretBackendError:
        s = self.settings
        how = (
            f"the Kubernetes role {s.kubernetes_role!r}"
            if s.kubernetes_role is not None
            else "the token"
        )
        return SecretBackendError(
            f"OpenBao at {s.address} denied {what} ({exc}): check {how} and its policy "
            f"(it needs read on {s.mount}/data/{s.prefix}/*)"
        )

    # -- logging in ------------------------------------------------------------------------
    def _file(self, path: Path, setting: str) -> str:
        try:
            text = (self.root / path).read_text().strip()
        except OSError as exc:
            raise SecretBackendError(
                f"cannot read {self.root / path} (secrets.{setting}): {exc.strerror or exc}"
            ) from None
        if not text:
            raise SecretBackendError(f"{self.root / path} (secrets.{setting}) is empty")
        return text

    def _token(self) -> str:
        s = self.settings
        if s.token_file is not None:
            return self._file(s.token_file, "token_file")
        assert s.token is not None  # the config has exactly one way to log in
        ref = parse_ref(s.token)
        if ref is None:
            return s.token
        found = os.environ.get(ref[1])
        if not found:
            raise UnresolvedReference(
                f"environment variable {ref[1]} is not set (from secrets.token: {s.token})"
            )
        return found

    async def _login(self) -> None:
        s = self.settings
        async with self._login_lock:
            if s.kubernetes_role is None:
                self.client.token = self._token()
            else:
                jwt = await asyncio.to_thread(
                    self._file, s.kubernetes_token_file, "kubernetes_token_file"
                )
                role = s.kubernetes_role
                try:
                    await self._in_thread(
                        f"to log in as the Kubernetes role {role!r}",
                        lambda: self.client.auth.kubernetes.login(
                            role, jwt, mount_point=s.kubernetes_mount
                        ),
                    )
                except (*_DENIED, bao.InvalidPath) as exc:
                    raise SecretBackendError(
                        f"OpenBao at {s.address} refused the Kubernetes login as role {role!r} "
                        f"(auth mount {s.kubernetes_mount!r}): {exc}"
                    ) from None
            register_secret(self.client.token)
            self._logged_in = True

    # -- reads -----------------------------------------------------------------------------
    async def _fetch(self, parts: Parts) -> str | None:
        cached = self._cache.get(parts)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        s, where = self.settings, self.where(parts)
        try:
            answer = await self._call(
                f"reading {where}",
                lambda: self.client.secrets.kv.v2.read_secret_version(
                    path=self._path(parts), mount_point=s.mount, raise_on_deleted_version=True
                ),
            )
        except bao.InvalidPath as exc:
            if exc.errors:  # "no handler for route": the mount is not there
                raise SecretBackendError(
                    f"OpenBao at {s.address} has no KV version 2 engine at {s.mount!r} "
                    f"(secrets.mount): {exc}"
                ) from None
            return None
        data = (answer.get("data") or {}).get("data") or {}
        value = data.get(s.field)
        if not isinstance(value, str) or not value:
            fields = ", ".join(sorted(map(str, data))) or "none"
            raise SecretBackendError(
                f"{where} has no non-empty text in field {s.field!r} (its fields: {fields}); "
                "store the value there, or set secrets.field"
            )
        if s.cache_ttl:
            self._cache[parts] = (time.monotonic() + s.cache_ttl, value)
        return value

    async def _keys(self, parts: Parts) -> list[str]:
        s = self.settings
        try:
            answer = await self._call(
                f"listing {s.mount}/{self._path(parts)}",
                lambda: self.client.secrets.kv.v2.list_secrets(
                    path=self._path(parts), mount_point=s.mount
                ),
            )
        except bao.InvalidPath:
            return []
        return [str(k) for k in (answer.get("data") or {}).get("keys") or []]

    async def _times(self, parts: Parts) -> tuple[Parts, float, float]:
        s = self.settings
        answer = await self._call(
            f"reading the metadata of {s.mount}/{self._path(parts)}",
            lambda: self.client.secrets.kv.v2.read_secret_metadata(
                path=self._path(parts), mount_point=s.mount
            ),
        )
        meta = answer.get("data") or {}
        return parts, _epoch(meta.get("created_time")), _epoch(meta.get("updated_time"))

    async def _listing(self) -> Listing:
        top = await self._keys(())
        found: list[Parts] = [(k,) for k in top if is_name(k)]
        for folder in FOLDERS.values():
            if f"{folder}/" not in top:
                continue
            for owner in await self._keys((folder,)):
                owner = owner.rstrip("/")
                if scope_of(folder, owner) is not None:
                    names = await self._keys((folder, owner))
                    found += [(folder, owner, n) for n in names if is_name(n)]
        return list(await asyncio.gather(*(self._times(parts) for parts in found)))

    # -- writes ----------------------------------------------------------------------------
    async def set(self, name: str, value: str, scope: Scope | None = None) -> Scope:
        """A new version of the entry, holding the field ``secrets.field`` alone."""
        scope = scope or GLOBAL
        parts, s = layout(name, scope), self.settings
        if not value:
            raise InvalidSecret("a secret value cannot be empty")
        await self._call(
            f"writing {self.where(parts)}",
            lambda: self.client.secrets.kv.v2.create_or_update_secret(
                path=self._path(parts), secret={s.field: value}, mount_point=s.mount
            ),
        )
        self._cache.pop(parts, None)
        register_secret(value)
        return scope

    async def delete(self, name: str, scope: Scope | None = None) -> bool:
        """The entry with every version and its metadata (as ``bao kv metadata delete``)."""
        parts, s = layout(name, scope or GLOBAL), self.settings
        self._cache.pop(parts, None)
        try:
            await self._times(parts)
        except bao.InvalidPath:
            return False
        await self._call(
            f"deleting {s.mount}/{self._path(parts)}",
            lambda: self.client.secrets.kv.v2.delete_metadata_and_all_versions(
                path=self._path(parts), mount_point=s.mount
            ),
        )
        return True

    async def close(self) -> None:
        self.client.adapter.close()
