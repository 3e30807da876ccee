"""Bitbucket Cloud and Bitbucket Data Center/Server webhooks: kind ``bitbucket``.

Owns Bitbucket's verification (``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>``,
the same on Cloud and Data Center) and the mapping of a delivery to a CloudEvent:

* ``id``: ``X-Request-UUID`` (Cloud), else ``X-Request-Id`` (Data Center), else
  ``sha256:<body hash>``.
* ``type``: ``com.atlassian.bitbucket.<X-Event-Key with ':' replaced by '.'>`` (falling back to
  the payload's ``eventKey``, which Data Center also sends), e.g. ``repo:push`` ->
  ``com.atlassian.bitbucket.repo.push``, ``pr:opened`` -> ``com.atlassian.bitbucket.pr.opened``.
* ``subject``: the repository: Cloud ``repository.full_name`` (``acme/widgets``), Data Center
  ``repository.project.key/repository.slug`` (``ACME/widgets``; for ``pr:*`` events, which
  have no top-level ``repository``, that of ``pullRequest.toRef.repository``); else none.
* extensions: ``bitbucketevent`` (the event key) and ``bitbuckethookid`` (``X-Hook-UUID``,
  Cloud only) when present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from ghapplets.events import CloudEvent, InboundRequest
from ghapplets.exceptions import MalformedPayload
from ghapplets.sources.base import SignedRequest, Source, SourceSettings
from ghapplets.sources.common import (
    as_object,
    body_id,
    clean_or_none,
    dig,
    dig_str,
    encode_body,
    event_type,
    extensions_from,
    first_secret,
    merge_headers,
    require_signature,
    sign_hmac,
    verify_hmac,
)


class BitbucketSettings(SourceSettings):
    kind: Literal["bitbucket"] = "bitbucket"


def bitbucket_subject(payload: Mapping[str, Any]) -> str | None:
    """Cloud ``repository.full_name``; Data Center ``project.key/slug`` of ``repository``,
    or of ``pullRequest.toRef.repository`` for pull-request events, which have no top-level
    ``repository``."""
    full_name = dig_str(payload, "repository", "full_name")
    if full_name is not None:
        return full_name
    for repo in (dig(payload, "repository"), dig(payload, "pullRequest", "toRef", "repository")):
        project, slug = dig_str(repo, "project", "key"), dig_str(repo, "slug")
        if project and slug:
            return f"{project}/{slug}"
    return None


class BitbucketSource(Source):
    kind: ClassVar[str] = "bitbucket"
    settings_model: ClassVar[type[SourceSettings]] = BitbucketSettings

    config: BitbucketSettings

    credential_headers = frozenset({"x-hub-signature"})
    body_signature = True

    def verify_headers(self, request: InboundRequest) -> None:
        require_signature(request.header("x-hub-signature"), self.secrets, header="X-Hub-Signature")

    def verify(self, request: InboundRequest) -> None:
        verify_hmac(
            request.header("x-hub-signature"), request.body, self.secrets, header="X-Hub-Signature"
        )

    def normalise(self, request: InboundRequest, payload: Any) -> CloudEvent:
        body = as_object(payload)
        key = (request.header("x-event-key") or "").strip() or dig_str(body, "eventKey")
        if not key:
            raise MalformedPayload("missing X-Event-Key header and payload 'eventKey'")
        extensions = extensions_from(
            [("bitbucketevent", key), ("bitbuckethookid", request.header("x-hook-uuid"))]
        )
        delivery = clean_or_none(request.header("x-request-uuid")) or clean_or_none(
            request.header("x-request-id")
        )
        return CloudEvent(
            id=delivery or body_id(request.body),
            source=self.cloudevent_source,
            type=event_type("com.atlassian.bitbucket", *key.split(":")),
            subject=clean_or_none(bitbucket_subject(body)),
            data=body,
            extensions=extensions,
        )

    def sign(
        self, event: str, payload: Any, delivery_id: str, headers: Mapping[str, str] | None = None
    ) -> SignedRequest:
        """A Cloud-style request (``X-Request-UUID``), or a Data Center-style one
        (``X-Request-Id``) when the payload has ``eventKey``, which only Data Center sends."""
        body = encode_body(payload)
        base = {
            "Content-Type": "application/json",
            "User-Agent": "Bitbucket-Webhooks/2.0",
            "X-Event-Key": event,
            "X-Hub-Signature": sign_hmac(first_secret(self.secrets, self.name), body),
        }
        data_center = isinstance(payload, dict) and "eventKey" in payload
        if delivery_id:
            base["X-Request-Id" if data_center else "X-Request-UUID"] = delivery_id
        return SignedRequest(headers=merge_headers(base, headers), body=body)
