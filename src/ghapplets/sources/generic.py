"""Configurable webhooks for any other sender: kind ``generic``.

Owns the configurable verification (``mode``, all constant-time):

* ``hmac`` (default): header ``header`` (default ``X-Signature``) = ``prefix`` + hex or base64
  (``encoding``) HMAC of the raw body with ``algorithm`` (sha1, sha256 (default), sha512).
  ``prefix`` defaults to ``<algorithm>=`` (so ``sha256=``); set it to ``""`` for none.
* ``bearer``: ``Authorization: Bearer <secret>``.
* ``basic``: ``Authorization: Basic base64(<username>:<secret>)``.
* ``none``: no verification. It is never a default and must be written explicitly.

and the mapping to a CloudEvent:

* ``type``: ``type`` (default ``dev.ghapplets.generic``), plus ``.<value of type_header>``
  (one segment, see :mod:`ghapplets.sources.common`) when ``type_header`` is set and present.
* ``id``: the ``id_header`` header (default ``X-Request-Id``), else ``sha256:<body hash>``.
* ``subject``: the ``subject_header`` header when configured and present, else none.
* ``data``: the parsed JSON body; any JSON value is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ghapplets.events import CloudEvent, InboundRequest
from ghapplets.sources.base import SignedRequest, Source, SourceSettings
from ghapplets.sources.common import (
    Algorithm,
    Encoding,
    authorization_value,
    body_id,
    clean_or_none,
    configured_credential_headers,
    encode_body,
    event_type,
    first_secret,
    merge_headers,
    sign_hmac,
    verify_configured,
    verify_configured_headers,
)

DEFAULT_TYPE = "dev.ghapplets.generic"


class GenericSettings(SourceSettings):
    kind: Literal["generic"] = "generic"
    mode: Literal["hmac", "bearer", "basic", "none"] = "hmac"
    header: str = Field(default="X-Signature", min_length=1)
    algorithm: Algorithm = "sha256"
    prefix: str | None = None
    encoding: Encoding = "hex"
    username: str | None = None
    type: str = Field(default=DEFAULT_TYPE, pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    type_header: str | None = None
    id_header: str = Field(default="X-Request-Id", min_length=1)
    subject_header: str | None = None

    @model_validator(mode="after")
    def _basic_needs_username(self) -> GenericSettings:
        if self.mode == "basic" and not self.username:
            raise ValueError("mode: basic needs a username")
        return self

    @property
    def effective_prefix(self) -> str:
        return f"{self.algorithm}=" if self.prefix is None else self.prefix


class GenericSource(Source):
    kind: ClassVar[str] = "generic"
    settings_model: ClassVar[type[SourceSettings]] = GenericSettings

    config: GenericSettings

    @property
    def credential_headers(self) -> frozenset[str]:
        return configured_credential_headers(self.config.mode, self.config.header)

    @property
    def body_signature(self) -> bool:
        return self.config.mode == "hmac"

    def verify_headers(self, request: InboundRequest) -> None:
        cfg = self.config
        if cfg.mode == "none":
            return
        verify_configured_headers(
            request, self.secrets, cfg.mode, header=cfg.header, username=cfg.username
        )

    def verify(self, request: InboundRequest) -> None:
        cfg = self.config
        if cfg.mode == "none":
            return
        verify_configured(
            request,
            self.secrets,
            cfg.mode,
            header=cfg.header,
            algorithm=cfg.algorithm,
            prefix=cfg.effective_prefix,
            encoding=cfg.encoding,
            username=cfg.username,
        )

    def normalise(self, request: InboundRequest, payload: Any) -> CloudEvent:
        cfg = self.config
        suffix = request.header(cfg.type_header) if cfg.type_header else None
        subject = request.header(cfg.subject_header) if cfg.subject_header else None
        return CloudEvent(
            id=clean_or_none(request.header(cfg.id_header)) or body_id(request.body),
            source=self.cloudevent_source,
            type=event_type(cfg.type, suffix),
            subject=clean_or_none(subject),
            data=payload,
        )

    def sign(
        self, event: str, payload: Any, delivery_id: str, headers: Mapping[str, str] | None = None
    ) -> SignedRequest:
        """``event`` goes into ``type_header`` when one is configured."""
        cfg = self.config
        body = encode_body(payload)
        base = {"Content-Type": "application/json", "User-Agent": "ghapplets-send/1"}
        if cfg.mode == "hmac":
            secret = first_secret(self.secrets, self.name)
            base[cfg.header] = sign_hmac(
                secret,
                body,
                algorithm=cfg.algorithm,
                prefix=cfg.effective_prefix,
                encoding=cfg.encoding,
            )
        elif cfg.mode != "none":
            secret = first_secret(self.secrets, self.name)
            base["Authorization"] = authorization_value(cfg.mode, secret, cfg.username)
        if cfg.type_header and event:
            base[cfg.type_header] = event
        if delivery_id:
            base[cfg.id_header] = delivery_id
        return SignedRequest(headers=merge_headers(base, headers), body=body)
