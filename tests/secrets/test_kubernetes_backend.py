"""The Kubernetes backend on a folder laid out as the kubelet lays out a Secret volume: the real
files in a timestamped ``..`` folder, ``..data`` pointing at it, each key a symlink through
``..data``; read through the symlinks, scoped by path, exact bytes, never outside the folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ghapplets.exceptions import InvalidSecret, NotFound, SecretBackendError, SecretsReadOnly
from ghapplets.secrets.backends.kubernetes import KubernetesBackend
from ghapplets.secrets.scopes import GLOBAL, Scope, ScopeKind


def kubelet_volume(folder: Path, files: dict[str, bytes], stamp: str = "1") -> Path:
    """``files`` (relative paths, ``applets/x/name`` for scoped ones) mounted at ``folder`` as
    the kubelet's atomic writer does it; called again, it swaps in a new version."""
    folder.mkdir(parents=True, exist_ok=True)
    version = folder / f"..2026_01_0{stamp}_10_00_00.{stamp}23456789"
    for rel, data in files.items():
        (version / rel).parent.mkdir(parents=True, exist_ok=True)
        (version / rel).write_bytes(data)
    staged = folder / "..data_tmp"
    staged.symlink_to(version.name)
    os.replace(staged, folder / "..data")  # the atomic swap
    for top in {rel.split("/")[0] for rel in files}:
        link = folder / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    return folder


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    return kubelet_volume(
        tmp_path / "secrets",
        {
            "hook": b"global-hook-value",
            "jira-token": b"global-jira-value",
            "pem": b"-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
            "applets/triage/jira-token": b"triage-jira-value",
            "applets/other/only-theirs": b"theirs-value-1",
        },
    )


async def test_global_and_scoped_secrets_are_read_through_the_symlinks(volume: Path) -> None:
    backend = KubernetesBackend(volume)
    assert (volume / "hook").is_symlink() and (volume / "..data").is_symlink()
    found = await backend.read("hook", GLOBAL)
    assert (found.value, found.scope) == ("global-hook-value", "global")
    # an applet's own secret shadows the global one of the same name
    mine = await backend.read("jira-token", Scope.applet("triage"))
    assert (mine.value, mine.scope) == ("triage-jira-value", "applet:triage")
    # another applet gets the global one, and never triage's
    other = await backend.read("jira-token", Scope.applet("other"))
    assert (other.value, other.scope) == ("global-jira-value", "global")
    # the settings (global readers) never look under applets/
    assert (await backend.read("jira-token", GLOBAL)).value == "global-jira-value"
    # the operator names the scope
    assert (await backend.get("jira-token", Scope.applet("triage"))).value == "triage-jira-value"


async def test_another_applets_secret_is_not_found_and_the_message_says_where(
    volume: Path,
) -> None:
    backend = KubernetesBackend(volume)
    with pytest.raises(NotFound) as exc:
        await backend.read("only-theirs", Scope.applet("triage"))
    message = str(exc.value)
    assert str(volume / "applets" / "triage" / "only-theirs") in message
    assert str(volume / "only-theirs") in message
    assert "Kubernetes Secret" in message and "theirs-value" not in message
    with pytest.raises(NotFound):
        await backend.read("only-theirs", GLOBAL)


async def test_values_are_the_exact_bytes(volume: Path) -> None:
    # Kubernetes keeps the bytes it was given: a trailing newline is part of the value
    pem = await KubernetesBackend(volume).read("pem", GLOBAL)
    assert pem.value == "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"


async def test_an_update_swapped_in_by_the_kubelet_is_read(volume: Path) -> None:
    backend = KubernetesBackend(volume)
    assert (await backend.read("hook", GLOBAL)).value == "global-hook-value"
    kubelet_volume(volume, {"hook": b"rotated-hook-value"}, stamp="2")
    assert (await backend.read("hook", GLOBAL)).value == "rotated-hook-value"


async def test_the_listing_shows_names_and_scopes_and_skips_the_kubelets_entries(
    volume: Path,
) -> None:
    infos = await KubernetesBackend(volume).list()
    assert [(i.name, i.scope) for i in infos] == [
        ("hook", "global"),
        ("jira-token", "applet:triage"),
        ("jira-token", "global"),
        ("only-theirs", "applet:other"),
        ("pem", "global"),
    ]
    assert all(i.updated_at > 0 and i.key_id is None for i in infos)


@pytest.mark.parametrize(
    "name", ["../hook", "..data", "..", ".", "a/b", "/etc/passwd", "applets/triage/jira-token"]
)
async def test_a_name_that_is_a_path_is_refused_before_the_folder_is_touched(
    tmp_path: Path, name: str
) -> None:
    backend = KubernetesBackend(tmp_path / "does-not-exist")  # never looked at
    with pytest.raises(InvalidSecret, match="invalid secret name"):
        await backend.read(name, GLOBAL)
    with pytest.raises(InvalidSecret, match="invalid secret name"):
        await backend.read(name, Scope.applet("triage"))


@pytest.mark.parametrize("owner", ["..", "../..", "a/b", "Upper", ""])
async def test_a_scope_that_is_a_path_is_refused(volume: Path, owner: str) -> None:
    with pytest.raises(InvalidSecret, match="invalid scope"):
        await KubernetesBackend(volume).read("hook", Scope(ScopeKind.APPLET, owner))


async def test_a_symlink_out_of_the_folder_is_refused(volume: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not-a-secret-of-ours")
    (volume / "escape").symlink_to(outside)
    (volume / "applets" / "triage" / "escape").symlink_to("../../../outside.txt")
    backend = KubernetesBackend(volume)
    for scope in (GLOBAL, Scope.applet("triage")):
        with pytest.raises(SecretBackendError, match="leads outside") as exc:
            await backend.read("escape", scope)
        assert "not-a-secret-of-ours" not in str(exc.value)
    assert "escape" not in [i.name for i in await backend.list()]


async def test_unusable_files_are_clear_errors(volume: Path) -> None:
    (volume / "empty").write_bytes(b"")
    (volume / "binary").write_bytes(b"\xff\xfe\x00")
    (volume / "folder").mkdir()
    backend = KubernetesBackend(volume)
    with pytest.raises(SecretBackendError, match="empty"):
        await backend.read("empty", GLOBAL)
    with pytest.raises(SecretBackendError, match="not UTF-8"):
        await backend.read("binary", GLOBAL)
    with pytest.raises(SecretBackendError, match="not a file"):
        await backend.read("folder", GLOBAL)
    with pytest.raises(SecretBackendError, match=r"secrets folder .* \(secrets.path\)"):
        await KubernetesBackend(volume / "missing").read("hook", GLOBAL)


async def test_writes_are_refused_with_what_to_do_instead(volume: Path) -> None:
    backend = KubernetesBackend(volume)
    with pytest.raises(SecretsReadOnly, match="only reads: change the Kubernetes Secret"):
        await backend.set("hook", "new-value-123")
    with pytest.raises(SecretsReadOnly):
        await backend.delete("hook")
    assert (await backend.read("hook", GLOBAL)).value == "global-hook-value"
