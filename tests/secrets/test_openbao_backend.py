"""The OpenBao backend against a real ``bao server -dev`` (tests/servers/openbao.py): global and
scoped secrets at their paths, clear errors for a missing secret, a refused token, a server
that is down or does not answer, names that try to leave the prefix, writes, and logging in
with a token file or Kubernetes auth (OpenBao's own auth method, against a fake TokenReview
API)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import hvac
import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ghapplets.exceptions import (
    InvalidSecret,
    NotFound,
    SecretBackendError,
    SecretBackendUnavailable,
    UnresolvedReference,
)
from ghapplets.secrets.backends.openbao import OpenBaoBackend
from ghapplets.secrets.config import OpenBaoSecrets
from ghapplets.secrets.refs import resolve
from ghapplets.secrets.scopes import GLOBAL, Scope, ScopeKind
from tests.servers import OpenBaoServer, free_port

MOUNT = "secret"


@pytest.fixture
def root(openbao_server: OpenBaoServer) -> hvac.Client:
    """The server as its operator: to seed entries and look at what the backend wrote."""
    return hvac.Client(url=openbao_server.address, token=openbao_server.token)


@pytest.fixture
def prefix() -> str:
    """A prefix of this test's own on the session's server."""
    return f"t-{uuid.uuid4().hex[:12]}/ghapplets"


def put(client: hvac.Client, path: str, **data: Any) -> None:
    client.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point=MOUNT)


def settings(server: OpenBaoServer | str, prefix: str, **kw: Any) -> OpenBaoSecrets:
    address = server if isinstance(server, str) else server.address
    values: dict[str, Any] = {"backend": "openbao", "address": address, "prefix": prefix}
    values.setdefault("cache_ttl", 0)
    if not {"token", "token_file", "kubernetes_role"} & set(kw):
        values["token"] = server.token if isinstance(server, OpenBaoServer) else "unused"
    return OpenBaoSecrets.model_validate({**values, **kw})


@pytest.fixture
def backend(openbao_server: OpenBaoServer, prefix: str, tmp_path: Path) -> Iterator[OpenBaoBackend]:
    yield OpenBaoBackend(settings(openbao_server, prefix), tmp_path)


async def test_global_and_scoped_secrets_are_read_from_their_paths(
    backend: OpenBaoBackend, root: hvac.Client, prefix: str
) -> None:
    put(root, f"{prefix}/hook", value="global-hook-value")
    put(root, f"{prefix}/jira-token", value="global-jira-value")
    put(root, f"{prefix}/applets/triage/jira-token", value="triage-jira-value")
    put(root, f"{prefix}/applets/other/only-theirs", value="theirs-value-1")

    found = await backend.read("hook", GLOBAL)
    assert (found.value, found.scope) == ("global-hook-value", "global")
    mine = await backend.read("jira-token", Scope.applet("triage"))
    assert (mine.value, mine.scope) == ("triage-jira-value", "applet:triage")
    other = await backend.read("jira-token", Scope.applet("other"))  # no own one: the global
    assert (other.value, other.scope) == ("global-jira-value", "global")
    assert (await backend.read("jira-token", GLOBAL)).value == "global-jira-value"
    assert (await backend.get("jira-token", Scope.applet("triage"))).value == "triage-jira-value"

    # another applet's secret is not found, and the message says where it looked
    with pytest.raises(NotFound) as exc:
        await backend.read("only-theirs", Scope.applet("triage"))
    message = str(exc.value)
    assert f"secret/{prefix}/applets/triage/only-theirs" in message
    assert f"secret/{prefix}/only-theirs" in message
    assert "ghapplets secrets set" in message and "theirs-value" not in message


async def test_a_missing_secret_is_an_unresolved_reference_naming_it(
    backend: OpenBaoBackend, prefix: str
) -> None:
    async def lookup(name: str) -> str:
        return (await backend.read(name, GLOBAL)).value

    with pytest.raises(UnresolvedReference) as exc:
        await resolve("${secret:nowhere}", lookup)
    assert "no secret named 'nowhere'" in str(exc.value)
    assert f"secret/{prefix}/nowhere" in str(exc.value)
    assert "(from ${secret:nowhere})" in str(exc.value)


async def test_a_deleted_latest_version_is_not_found(
    backend: OpenBaoBackend, root: hvac.Client, prefix: str
) -> None:
    put(root, f"{prefix}/gone", value="gone-value-1")
    root.secrets.kv.v2.delete_latest_version_of_secret(path=f"{prefix}/gone", mount_point=MOUNT)
    with pytest.raises(NotFound):
        await backend.read("gone", GLOBAL)


async def test_an_entry_without_the_field_is_a_clear_error(
    backend: OpenBaoBackend, root: hvac.Client, prefix: str
) -> None:
    put(root, f"{prefix}/odd", username="bot", password="pw-value-77")
    put(root, f"{prefix}/number", value=12345)
    with pytest.raises(SecretBackendError) as exc:
        await backend.read("odd", GLOBAL)
    assert "field 'value'" in str(exc.value) and "password, username" in str(exc.value)
    assert "pw-value-77" not in str(exc.value)
    with pytest.raises(SecretBackendError, match="no non-empty text in field 'value'"):
        await backend.read("number", GLOBAL)
    # another field is chosen in the settings
    other = OpenBaoBackend(
        settings(backend.settings.address, prefix, field="password", token=backend.settings.token),
        Path("."),
    )
    assert (await other.read("odd", GLOBAL)).value == "pw-value-77"


async def test_a_refused_token_is_a_clear_error_without_the_token(
    openbao_server: OpenBaoServer, root: hvac.Client, prefix: str, tmp_path: Path
) -> None:
    put(root, f"{prefix}/hook", value="global-hook-value")
    wrong = OpenBaoBackend(settings(openbao_server, prefix, token="not-a-real-token-1"), tmp_path)
    with pytest.raises(SecretBackendError) as exc:
        await wrong.read("hook", GLOBAL)
    message = str(exc.value)
    assert not isinstance(exc.value, SecretBackendUnavailable)
    assert f"OpenBao at {openbao_server.address} denied reading secret/{prefix}/hook" in message
    assert "check the token" in message and "permission denied" in message
    assert "not-a-real-token-1" not in message and "global-hook-value" not in message


async def test_the_token_comes_from_the_environment(
    openbao_server: OpenBaoServer,
    root: hvac.Client,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(root, f"{prefix}/hook", value="global-hook-value")
    config = settings(openbao_server, prefix, token="${env:GHAPPLETS_TEST_BAO_TOKEN}")
    monkeypatch.delenv("GHAPPLETS_TEST_BAO_TOKEN", raising=False)
    with pytest.raises(UnresolvedReference, match="GHAPPLETS_TEST_BAO_TOKEN is not set"):
        await OpenBaoBackend(config, tmp_path).read("hook", GLOBAL)
    monkeypatch.setenv("GHAPPLETS_TEST_BAO_TOKEN", openbao_server.token)
    assert (await OpenBaoBackend(config, tmp_path).read("hook", GLOBAL)).value == (
        "global-hook-value"
    )


async def test_a_token_file_is_read_again_when_its_token_is_refused(
    openbao_server: OpenBaoServer, root: hvac.Client, prefix: str, tmp_path: Path
) -> None:
    put(root, f"{prefix}/hook", value="global-hook-value")

    def child_token() -> str:
        return str(root.auth.token.create(ttl="1h")["auth"]["client_token"])

    first = child_token()
    (tmp_path / "bao-token").write_text(first + "\n")  # as an agent writes it
    backend = OpenBaoBackend(settings(openbao_server, prefix, token_file="bao-token"), tmp_path)
    assert (await backend.read("hook", GLOBAL)).value == "global-hook-value"
    # the agent renews: the old token is revoked and the file holds a new one
    root.auth.token.revoke(first)
    (tmp_path / "bao-token").write_text(child_token())
    assert (await backend.read("hook", GLOBAL)).value == "global-hook-value"
    # a file that holds no usable token at all is an error naming the file's setting
    (tmp_path / "bao-token").write_text("")
    root.auth.token.revoke(backend.client.token)
    with pytest.raises(SecretBackendError, match=r"bao-token \(secrets.token_file\) is empty"):
        await backend.read("hook", GLOBAL)


async def test_a_server_that_is_down_is_unavailable_at_once(prefix: str, tmp_path: Path) -> None:
    backend = OpenBaoBackend(settings(f"http://127.0.0.1:{free_port()}", prefix), tmp_path)
    started = time.monotonic()
    with pytest.raises(SecretBackendUnavailable, match="cannot be reached reading"):
        await backend.read("hook", GLOBAL)
    assert time.monotonic() - started < 3


async def test_a_server_that_does_not_answer_times_out(prefix: str, tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        backend = OpenBaoBackend(settings(address, prefix, timeout=0.5), tmp_path)
        started = time.monotonic()
        with pytest.raises(SecretBackendUnavailable, match=r"did not answer .* within 0.5s"):
            await backend.read("hook", GLOBAL)
        assert time.monotonic() - started < 3


async def test_a_server_that_answers_too_slowly_times_out_as_a_whole(
    prefix: str, tmp_path: Path
) -> None:
    """A server that sends its answer a byte at a time never lets one socket read time out:
    the request's deadline still ends it."""
    stop = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def dribble() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 20:
                if stop.wait(0.1):
                    return
                conn.sendall(bytes([byte]))

    threading.Thread(target=dribble, daemon=True).start()
    address = f"http://127.0.0.1:{listener.getsockname()[1]}"
    backend = OpenBaoBackend(settings(address, prefix, timeout=0.5), tmp_path)
    started = time.monotonic()
    try:
        with pytest.raises(SecretBackendUnavailable, match=r"did not answer .* within 0.5s"):
            await backend.read("hook", GLOBAL)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        listener.close()


async def test_a_mount_that_does_not_exist_is_named(
    openbao_server: OpenBaoServer, prefix: str, tmp_path: Path
) -> None:
    backend = OpenBaoBackend(settings(openbao_server, prefix, mount="nokv"), tmp_path)
    with pytest.raises(SecretBackendError, match="no KV version 2 engine at 'nokv'"):
        await backend.read("hook", GLOBAL)


@pytest.mark.parametrize("name", ["../hook", "..", "a/b", "/etc", "applets/triage/x", ".x"])
async def test_a_name_that_is_a_path_never_reaches_the_server(
    prefix: str, tmp_path: Path, name: str
) -> None:
    # a server that is down: any request would be SecretBackendUnavailable, not InvalidSecret
    backend = OpenBaoBackend(settings(f"http://127.0.0.1:{free_port()}", prefix), tmp_path)
    for call in (
        backend.read(name, GLOBAL),
        backend.read(name, Scope.applet("triage")),
        backend.set(name, "value-1234"),
    ):
        with pytest.raises(InvalidSecret, match="invalid secret name"):
            await call
    with pytest.raises(InvalidSecret, match="invalid scope"):
        await backend.read("hook", Scope(ScopeKind.APPLET, "../../x"))


async def test_set_list_and_delete_write_the_layout(
    backend: OpenBaoBackend, root: hvac.Client, prefix: str
) -> None:
    assert await backend.set("hook", "global-hook-value") == GLOBAL
    assert await backend.set("jira-token", "triage-jira-value", Scope.applet("triage")) == (
        Scope.applet("triage")
    )
    seen = root.secrets.kv.v2.read_secret_version(
        path=f"{prefix}/applets/triage/jira-token", mount_point=MOUNT, raise_on_deleted_version=True
    )
    assert seen["data"]["data"] == {"value": "triage-jira-value"}
    put(root, f"{prefix}/unrelated/deeper/thing", value="x-value-1")  # not a layout path

    listed = await backend.list()
    assert [(i.name, i.scope) for i in listed] == [
        ("hook", "global"),
        ("jira-token", "applet:triage"),
    ]
    assert all(i.updated_at >= i.created_at > 0 for i in listed)

    with pytest.raises(InvalidSecret, match="cannot be empty"):
        await backend.set("hook", "")
    assert await backend.delete("jira-token") is False  # the global one: there is none
    assert await backend.delete("jira-token", Scope.applet("triage")) is True
    assert await backend.delete("jira-token", Scope.applet("triage")) is False
    assert [i.name for i in await backend.list()] == ["hook"]


async def test_values_are_cached_for_cache_ttl_and_a_write_drops_the_copy(
    openbao_server: OpenBaoServer, root: hvac.Client, prefix: str, tmp_path: Path
) -> None:
    put(root, f"{prefix}/hook", value="first-value-1")
    cached = OpenBaoBackend(settings(openbao_server, prefix, cache_ttl=60), tmp_path)
    assert (await cached.read("hook", GLOBAL)).value == "first-value-1"
    put(root, f"{prefix}/hook", value="second-value-2")  # changed behind its back
    assert (await cached.read("hook", GLOBAL)).value == "first-value-1"
    await cached.set("hook", "third-value-3")
    assert (await cached.read("hook", GLOBAL)).value == "third-value-3"


# -- Kubernetes auth: OpenBao's kubernetes auth method, with a fake TokenReview API -------------
class TokenReviews:
    """The Kubernetes API's TokenReview endpoint, as OpenBao calls it: ``token`` is the service
    account's JWT it accepts (as ``system:serviceaccount:ci:ghapplets``)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.reviewed: list[str] = []
        reviews = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                spec = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["spec"]
                reviews.reviewed.append(spec["token"])
                user = {"username": "system:serviceaccount:ci:ghapplets", "uid": "uid-1"}
                ok = spec["token"] == reviews.token
                status = {"authenticated": True, "user": user} if ok else {"error": "invalid"}
                body = json.dumps({"kind": "TokenReview", "status": status}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


def service_account_jwt() -> tuple[str, str]:
    """A service account token as the Kubernetes API signs one, and a CA certificate (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:ci:ghapplets",
        "kubernetes.io/serviceaccount/namespace": "ci",
        "kubernetes.io/serviceaccount/service-account.name": "ghapplets",
        "kubernetes.io/serviceaccount/service-account.uid": "uid-1",
    }
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-cluster-ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return pyjwt.encode(claims, key, algorithm="RS256"), cert.public_bytes(Encoding.PEM).decode()


async def test_kubernetes_auth_logs_in_with_the_service_account_and_again_when_refused(
    openbao_server: OpenBaoServer, root: hvac.Client, prefix: str, tmp_path: Path
) -> None:
    token, ca = service_account_jwt()
    reviews = TokenReviews(token)
    mount, policy = f"k8s-{uuid.uuid4().hex[:8]}", f"read-{uuid.uuid4().hex[:8]}"
    root.sys.enable_auth_method("kubernetes", path=mount)
    root.auth.kubernetes.configure(
        kubernetes_host=reviews.url,
        kubernetes_ca_cert=ca,
        disable_local_ca_jwt=True,
        mount_point=mount,
    )
    root.sys.create_or_update_policy(
        policy, f'path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}'
    )
    root.auth.kubernetes.create_role(
        "ghapplets",
        bound_service_account_names=["ghapplets"],
        bound_service_account_namespaces=["ci"],
        policies=[policy],
        mount_point=mount,
    )
    put(root, f"{prefix}/hook", value="global-hook-value")
    (tmp_path / "sa-token").write_text(token)
    config = settings(
        openbao_server,
        prefix,
        kubernetes_role="ghapplets",
        kubernetes_mount=mount,
        kubernetes_token_file="sa-token",
    )
    backend = OpenBaoBackend(config, tmp_path)
    assert (await backend.read("hook", GLOBAL)).value == "global-hook-value"
    assert reviews.reviewed == [token]
    # the token OpenBao gave is revoked (it expired): one new login, and the read goes through
    root.auth.token.revoke(backend.client.token)
    assert (await backend.read("hook", GLOBAL)).value == "global-hook-value"
    assert reviews.reviewed == [token, token]
    # a service account token the cluster does not accept is a clear error
    (tmp_path / "sa-token").write_text("a.forged.token")
    root.auth.token.revoke(backend.client.token)
    with pytest.raises(SecretBackendError) as exc:
        await backend.read("hook", GLOBAL)
    assert "refused the Kubernetes login as role 'ghapplets'" in str(exc.value)
    assert f"auth mount {mount!r}" in str(exc.value)
