"""Splunk alert-action webhooks: kind ``splunk``.

Splunk's webhook alert action signs nothing, so this module owns a substitute: a shared token
in the URL query (``?token=...``, parameter name ``token_param``) compared in constant time
against every secret (``missing_token`` / ``bad_token``), plus an optional ``allowed_ips``
list of CIDRs that ``client_ip`` must fall in (``ip_not_allowed``, :class:`ClientNotAllowed`,
HTTP 403; an absent or unparsable client address is denied; IPv4-mapped IPv6 addresses match
IPv4 networks). The address check runs first, so a caller outside the list learns nothing about
the token. Both need no body, so the gateway runs them before reading it
(:meth:`SplunkSource.verify_headers`); behind a proxy ``client_ip`` comes from
``X-Forwarded-For`` only through ``server.trusted_proxies``. The token parameter is a
credential (:attr:`SplunkSource.credential_params`): never stored.

Mapping to a CloudEvent (payload ``{"sid", "search_name", "app", "owner", "results_link",
"result"}``):

* ``id``: ``sid``, else ``sha256:<body hash>``. With ``per_result_ids: true`` the id is
  ``<sid>:<first 16 hex of sha256(result)>`` so that "for each result" alerts, which repeat
  the ``sid``, are not deduplicated into one event.
* ``type``: ``com.splunk.alert``.
* ``subject``: ``search_name``, else none.
* extensions: ``splunkapp`` (``app``), ``splunkowner`` (``owner``) and ``splunkhost`` (host of
  ``results_link``) when present.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator

from ghapplets.events import CloudEvent, InboundRequest
from ghapplets.exceptions import ClientNotAllowed
from ghapplets.sources.base import SignedRequest, Source, SourceSettings
from ghapplets.sources.common import (
    as_object,
    body_id,
    clean_or_none,
    dig,
    dig_str,
    encode_body,
    extensions_from,
    first_secret,
    merge_headers,
    url_host,
    verify_token,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SplunkSettings(SourceSettings):
    kind: Literal["splunk"] = "splunk"
    token_param: str = Field(default="token", min_length=1)
    allowed_ips: list[str] = Field(default_factory=list)
    per_result_ids: bool = False

    @field_validator("allowed_ips")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # ValueError -> validation error
        return value


def ip_allowed(client_ip: str | None, networks: Sequence[Network]) -> bool:
    """Whether ``client_ip`` lies in one of ``networks`` (never raises)."""
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


class SplunkSource(Source):
    kind: ClassVar[str] = "splunk"
    settings_model: ClassVar[type[SourceSettings]] = SplunkSettings

    config: SplunkSettings

    def __init__(self, name: str, settings: SourceSettings, secrets: Sequence[bytes]) -> None:
        super().__init__(name, settings, secrets)
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in self.config.allowed_ips
        )

    @property
    def credential_params(self) -> frozenset[str]:
        return frozenset({self.config.token_param})

    def verify_headers(self, request: InboundRequest) -> None:
        self.verify(request)  # address and token: checked before the body is read

    def verify(self, request: InboundRequest) -> None:
        if self.networks and not ip_allowed(request.client_ip, self.networks):
            raise ClientNotAllowed(f"client address {request.client_ip!r} is not in allowed_ips")
        param = self.config.token_param
        verify_token(request.query.get(param), self.secrets, where=f"query parameter {param!r}")

    def _id(self, request: InboundRequest, body: Mapping[str, Any]) -> str:
        sid = clean_or_none(dig_str(body, "sid"))
        if sid is None:
            return body_id(request.body)
        if not self.config.per_result_ids:
            return sid
        result = orjson.dumps(dig(body, "result"), option=orjson.OPT_SORT_KEYS)
        return f"{sid}:{hashlib.sha256(result).hexdigest()[:16]}"

    def normalise(self, request: InboundRequest, payload: Any) -> CloudEvent:
        body = as_object(payload)
        extensions = extensions_from(
            [
                ("splunkapp", dig_str(body, "app")),
                ("splunkowner", dig_str(body, "owner")),
                ("splunkhost", url_host(body.get("results_link"))),
            ]
        )
        return CloudEvent(
            id=self._id(request, body),
            source=self.cloudevent_source,
            type="com.splunk.alert",
            subject=clean_or_none(dig_str(body, "search_name")),
            data=body,
            extensions=extensions,
        )

    def sign(
        self, event: str, payload: Any, delivery_id: str, headers: Mapping[str, str] | None = None
    ) -> SignedRequest:
        """``event`` and ``delivery_id`` are informational: Splunk puts ``sid`` in the body.
        The token travels in :attr:`SignedRequest.query`."""
        token = first_secret(self.secrets, self.name).decode("utf-8")
        base = {"Content-Type": "application/json", "User-Agent": "Splunk/9.3.1"}
        return SignedRequest(
            headers=merge_headers(base, headers),
            body=encode_body(payload),
            query={self.config.token_param: token},
        )
