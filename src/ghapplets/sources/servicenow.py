"""ServiceNow outbound REST messages and business-rule webhooks: kind ``servicenow``.

ServiceNow has no single webhook scheme: the instance admin writes the outbound REST message.
This module owns the three schemes Ghapplets accepts (``auth`` setting, all constant-time):

* ``bearer`` (default): ``Authorization: Bearer <secret>``;
* ``basic``: ``Authorization: Basic base64(<username>:<secret>)``;
* ``hmac``: header ``header`` (default ``X-ServiceNow-Signature``) = ``prefix`` (default empty)
  + hex or base64 (``encoding``, default hex) HMAC-SHA256 of the raw body.

and the mapping of a delivery to a CloudEvent:

* ``type``: ``com.servicenow.<table>.<operation>``; ``table`` comes from ``table_field`` (default:
  ``table``, then ``sys_class_name``), ``operation`` from ``operation_field`` (default
  ``operation``); dotted paths such as ``record.sys_class_name`` are allowed. GlideRecord's
  ``insert``/``update``/``delete`` become ``created``/``updated``/``deleted``; other values are
  kept. No operation: ``com.servicenow.<table>``; no table: ``com.servicenow.event``.
* ``id``: ``X-Request-Id``, else ``<sys_id>:<sys_updated_on>``, else ``sha256:<body hash>``.
* ``subject``: ``number`` (``CHG0030001``), else ``sys_id``, else none.
* extensions: ``servicenowinstance`` from the ``instance`` setting when set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from ghapplets.events import CloudEvent, InboundRequest
from ghapplets.sources.base import SignedRequest, Source, SourceSettings
from ghapplets.sources.common import (
    Encoding,
    as_object,
    authorization_value,
    body_id,
    clean,
    clean_or_none,
    configured_credential_headers,
    dig_path,
    dig_str,
    encode_body,
    event_type,
    extensions_from,
    first_secret,
    merge_headers,
    sign_hmac,
    verify_configured,
    verify_configured_headers,
)

DEFAULT_TABLE_FIELDS = ("table", "sys_class_name")
OPERATIONS = {"insert": "created", "update": "updated", "delete": "deleted"}


class ServiceNowSettings(SourceSettings):
    kind: Literal["servicenow"] = "servicenow"
    auth: Literal["bearer", "basic", "hmac"] = "bearer"
    username: str | None = None
    header: str = "X-ServiceNow-Signature"
    prefix: str = ""
    encoding: Encoding = "hex"
    table_field: str | None = None
    operation_field: str = "operation"
    instance: str | None = None

    @model_validator(mode="after")
    def _basic_needs_username(self) -> ServiceNowSettings:
        if self.auth == "basic" and not self.username:
            raise ValueError("auth: basic needs a username")
        return self


def servicenow_type(payload: Mapping[str, Any], settings: ServiceNowSettings) -> str:
    fields = (settings.table_field,) if settings.table_field else DEFAULT_TABLE_FIELDS
    table = next(
        (v for f in fields if isinstance(v := dig_path(payload, f), str) and v.strip()), None
    )
    if table is None:
        return "com.servicenow.event"
    operation = dig_path(payload, settings.operation_field)
    if not isinstance(operation, str):
        return event_type("com.servicenow", table)
    op = operation.strip().lower()
    return event_type("com.servicenow", table, OPERATIONS.get(op, op))


class ServiceNowSource(Source):
    kind: ClassVar[str] = "servicenow"
    settings_model: ClassVar[type[SourceSettings]] = ServiceNowSettings

    config: ServiceNowSettings

    @property
    def credential_headers(self) -> frozenset[str]:
        return configured_credential_headers(self.config.auth, self.config.header)

    @property
    def body_signature(self) -> bool:
        return self.config.auth == "hmac"

    def verify_headers(self, request: InboundRequest) -> None:
        cfg = self.config
        verify_configured_headers(
            request, self.secrets, cfg.auth, header=cfg.header, username=cfg.username
        )

    def verify(self, request: InboundRequest) -> None:
        cfg = self.config
        verify_configured(
            request,
            self.secrets,
            cfg.auth,
            header=cfg.header,
            prefix=cfg.prefix,
            encoding=cfg.encoding,
            username=cfg.username,
        )

    def normalise(self, request: InboundRequest, payload: Any) -> CloudEvent:
        body = as_object(payload)
        sys_id = dig_str(body, "sys_id")
        updated = dig_str(body, "sys_updated_on")
        delivery = clean_or_none(request.header("x-request-id"))
        if delivery is None and sys_id and updated:
            delivery = clean(f"{sys_id}:{updated}") or None
        extensions = extensions_from([("servicenowinstance", self.config.instance)])
        return CloudEvent(
            id=delivery or body_id(request.body),
            source=self.cloudevent_source,
            type=servicenow_type(body, self.config),
            subject=clean_or_none(dig_str(body, "number") or sys_id),
            data=body,
            extensions=extensions,
        )

    def sign(
        self, event: str, payload: Any, delivery_id: str, headers: Mapping[str, str] | None = None
    ) -> SignedRequest:
        """``event`` is informational only: ServiceNow carries table and operation in the body."""
        cfg = self.config
        secret = first_secret(self.secrets, self.name)
        body = encode_body(payload)
        base = {"Content-Type": "application/json", "User-Agent": "ServiceNow/1.0"}
        if cfg.auth == "hmac":
            base[cfg.header] = sign_hmac(secret, body, prefix=cfg.prefix, encoding=cfg.encoding)
        else:
            base["Authorization"] = authorization_value(cfg.auth, secret, cfg.username)
        if delivery_id:
            base["X-Request-Id"] = delivery_id
        return SignedRequest(headers=merge_headers(base, headers), body=body)
