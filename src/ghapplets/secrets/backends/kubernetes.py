"""The Kubernetes backend: the files of a Secret volume, read only.

The kubelet mounts a Secret (or a projected volume of several) as a folder with one file per
key, swapped atomically on update: the real files live in a hidden, timestamped folder
(``..2024_05_01_10_00_00.123``), ``..data`` is a symlink to it, and each visible entry is a
symlink through ``..data``. This backend follows those symlinks, ignores every entry that
cannot be a secret's name (the ``..`` ones among them), and refuses a file whose real path is
outside the mounted folder (a symlink planted to reach elsewhere).

The layout is :mod:`ghapplets.secrets.backends.paths`'s: global secrets at the top, an applet's
under ``applets/<applet>/`` (an ``items[].path`` of the volume, e.g.
``applets/triage/jira-token``). A value is the file's bytes exactly, as UTF-8 text: nothing is
stripped, not even a trailing newline (Kubernetes keeps the bytes it was given, and a newline
may belong to the value, as at the end of a PEM key). An empty file is refused, like an empty
value anywhere. Files are read on every read, so an update of the Secret is seen as soon as
the kubelet has swapped it in.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ghapplets.exceptions import SecretBackendError, SecretsReadOnly
from ghapplets.secrets.backends.paths import FOLDERS, Listing, Parts, PathBackend, is_name
from ghapplets.secrets.config import BackendKind
from ghapplets.secrets.scopes import Scope

MAX_VALUE = 1024 * 1024  # a Kubernetes Secret holds at most 1 MiB


class KubernetesBackend(PathBackend):
    kind = BackendKind.KUBERNETES

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def where(self, parts: Parts) -> str:
        return str(self.folder.joinpath(*parts))

    @property
    def how_to_add(self) -> str:
        return f"add it to the Kubernetes Secret mounted at {self.folder}"

    def _root(self) -> Path:
        try:
            root = self.folder.resolve(strict=True)
        except OSError as exc:
            raise SecretBackendError(
                f"the secrets folder {self.folder} (secrets.path) cannot be read: "
                f"{exc.strerror or exc}"
            ) from None
        if not root.is_dir():
            raise SecretBackendError(f"the secrets folder {self.folder} is not a folder")
        return root

    def _read(self, parts: Parts) -> str | None:
        root = self._root()
        path = self.folder.joinpath(*parts)
        try:
            real = path.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:  # a symlink loop, no permission to look
            raise SecretBackendError(f"{path} cannot be read: {exc.strerror or exc}") from None
        if not real.is_relative_to(root):
            raise SecretBackendError(f"{path} leads outside {self.folder}: refused")
        if not real.is_file():
            raise SecretBackendError(f"{path} is not a file")
        try:
            with real.open("rb") as f:
                data = f.read(MAX_VALUE + 1)
        except OSError as exc:
            raise SecretBackendError(f"{path} cannot be read: {exc.strerror or exc}") from None
        if len(data) > MAX_VALUE:
            raise SecretBackendError(f"{path} is larger than {MAX_VALUE} bytes")
        if not data:
            raise SecretBackendError(f"{path} is empty: a secret value cannot be empty")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretBackendError(f"{path} is not UTF-8 text") from None

    async def _fetch(self, parts: Parts) -> str | None:
        return await asyncio.to_thread(self._read, parts)

    def _walk(self) -> Listing:
        root = self._root()
        found: Listing = []

        def add(folder: Path, parts: Parts) -> None:
            for entry in sorted(folder.iterdir()):
                try:
                    real = entry.resolve(strict=True)
                except OSError:
                    continue
                if is_name(entry.name) and real.is_file() and real.is_relative_to(root):
                    st = real.stat()
                    found.append(((*parts, entry.name), st.st_ctime, st.st_mtime))

        add(self.folder, ())
        for scoped in FOLDERS.values():
            top = self.folder / scoped
            if not top.is_dir():
                continue
            for owner in sorted(top.iterdir()):
                if is_name(owner.name) and owner.is_dir():
                    add(owner, (scoped, owner.name))
        return found

    async def _listing(self) -> Listing:
        return await asyncio.to_thread(self._walk)

    def _read_only(self) -> SecretsReadOnly:
        return SecretsReadOnly(
            f"the secrets backend is kubernetes (the files mounted at {self.folder}), which "
            "Ghapplets only reads: change the Kubernetes Secret instead (kubectl edit secret, "
            "or your manifests)"
        )

    async def set(self, name: str, value: str, scope: Scope | None = None) -> Scope:
        raise self._read_only()

    async def delete(self, name: str, scope: Scope | None = None) -> bool:
        raise self._read_only()
