"""Where secret values are kept: the ``secrets:`` section of ``ghapplets.yaml``, one model per
backend, chosen by ``backend``::

    secrets:
      backend: openbao            # embedded (the default) | openbao (alias vault) | kubernetes
      address: https://bao.example.com:8200
      token: ${env:BAO_TOKEN}

The models check only the shape (and that exactly one way to authenticate to OpenBao is
given); :mod:`ghapplets.secrets.backends` opens them. Relative paths are relative to the
project folder. The section is read by every process, so a wrong key is a located error at
start, like any other.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from ghapplets.secrets.refs import parse_ref

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class BackendKind(StrEnum):
    EMBEDDED = "embedded"  # encrypted in the store (the default)
    OPENBAO = "openbao"  # OpenBao or HashiCorp Vault, KV version 2
    KUBERNETES = "kubernetes"  # files of a mounted Kubernetes Secret volume (read only)


VAULT_ALIAS = "vault"  # another spelling of openbao


def _bao_path(value: str) -> str:
    """A path below OpenBao's API root (a mount, a prefix, a namespace): ``/``-separated
    segments of letters, digits, ``.``, ``_``, ``-``, none of them ``.`` or ``..``."""
    segments = value.split("/")
    if not all(_SEGMENT_RE.match(s) and s not in (".", "..") for s in segments):
        raise ValueError(
            f"{value!r} is not a path of segments of letters, digits, '.', '_' or '-' "
            "separated by '/' (no empty, '.' or '..' segment, no leading or trailing '/')"
        )
    return value


BaoPath = Annotated[str, AfterValidator(_bao_path)]


class _Backend(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddedSecrets(_Backend):
    """Values encrypted with the secrets key in the store (``ghapplets secrets set``)."""

    backend: Literal[BackendKind.EMBEDDED] = BackendKind.EMBEDDED


class OpenBaoSecrets(_Backend):
    """OpenBao or HashiCorp Vault, a KV version 2 engine at ``mount``; each secret is the field
    ``field`` of the entry ``<prefix>/<name>`` (global) or ``<prefix>/applets/<applet>/<name>``
    (scoped). One way to log in: ``token`` (a literal or ``${env:NAME}``), ``token_file``
    (read again when the server refuses the token), or ``kubernetes_role`` (Kubernetes auth
    with the pod's service account token)."""

    backend: Literal[BackendKind.OPENBAO, "vault"]
    address: Annotated[str, Field(pattern=r"^https?://[^\s/]+/?$")]
    mount: BaoPath = "secret"
    prefix: BaoPath = "ghapplets"
    field: Annotated[str, Field(min_length=1, max_length=128)] = "value"
    namespace: BaoPath | None = None
    token: str | None = None
    token_file: Path | None = None
    kubernetes_role: Annotated[str, Field(min_length=1)] | None = None
    kubernetes_mount: BaoPath = "kubernetes"
    kubernetes_token_file: Path = SERVICE_ACCOUNT_TOKEN
    ca_cert: Path | None = None  # PEM bundle to verify the server with (default: the system's)
    timeout: Annotated[float, Field(gt=0, le=300)] = 5.0  # seconds for one request
    cache_ttl: Annotated[float, Field(ge=0, le=3600)] = 30.0  # seconds a value read is reused

    @field_validator("backend")
    @classmethod
    def _one_name(cls, value: str) -> Literal[BackendKind.OPENBAO]:
        return BackendKind.OPENBAO

    @field_validator("token")
    @classmethod
    def _token_not_a_secret_ref(cls, value: str | None) -> str | None:
        ref = parse_ref(value) if value is not None else None
        if ref is not None and ref[0] == "secret":
            raise ValueError(
                "the token that opens the secrets backend cannot be one of its secrets: "
                "use ${env:NAME} or token_file"
            )
        return value

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> OpenBaoSecrets:
        given = [
            key
            for key, value in (
                ("token", self.token),
                ("token_file", self.token_file),
                ("kubernetes_role", self.kubernetes_role),
            )
            if value is not None
        ]
        if len(given) != 1:
            also = f" (given: {', '.join(given)})" if given else ""
            raise ValueError(
                f"give exactly one of token, token_file or kubernetes_role to log in to "
                f"OpenBao{also}"
            )
        return self


class KubernetesSecrets(_Backend):
    """The files of a Secret volume as the kubelet mounts it at ``path``: each key a file,
    global under ``path``, scoped ones under ``path/applets/<applet>/``. Read only."""

    backend: Literal[BackendKind.KUBERNETES]
    path: Path


_KINDS = ", ".join([*(k.value for k in BackendKind), f"{VAULT_ALIAS} (as openbao)"])
_UNKNOWN = "unknown"


class _UnknownBackend(BaseModel):
    """What an unknown ``backend`` is validated as: an error located at ``secrets.backend``."""

    model_config = ConfigDict(extra="allow")

    backend: Any

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping with a backend: {_KINDS}")
        return value

    @field_validator("backend")
    @classmethod
    def _unknown(cls, value: Any) -> Any:
        raise ValueError(f"unknown secrets backend {value!r}: use one of {_KINDS}")


def _backend_of(value: Any) -> str:
    """The tag of a ``secrets:`` mapping: its ``backend`` (``embedded`` when absent, ``vault``
    read as ``openbao``)."""
    if isinstance(value, BaseModel):
        return str(getattr(value, "backend", _UNKNOWN))
    if not isinstance(value, dict):
        return _UNKNOWN
    backend = value.get("backend", BackendKind.EMBEDDED)
    backend = BackendKind.OPENBAO if backend == VAULT_ALIAS else backend
    known = isinstance(backend, str) and backend in {k.value for k in BackendKind}
    return str(backend) if known else _UNKNOWN


SecretsConfig = Annotated[
    Annotated[EmbeddedSecrets, Tag(BackendKind.EMBEDDED)]
    | Annotated[OpenBaoSecrets, Tag(BackendKind.OPENBAO)]
    | Annotated[KubernetesSecrets, Tag(BackendKind.KUBERNETES)]
    | Annotated[_UnknownBackend, Tag(_UNKNOWN)],
    Discriminator(_backend_of),
]
