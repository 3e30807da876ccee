"""Jira Cloud and Jira Data Center webhooks: kind ``jira``.

Owns Jira's verification (``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>``; Jira
documents the header as ``method=signature`` and ``sha256`` is the method it uses) and the
mapping of a delivery to a CloudEvent:

* ``id``: ``X-Atlassian-Webhook-Identifier`` (stable across retries), else ``sha256:<body hash>``.
* ``type``: ``com.atlassian.jira.<webhookEvent without a leading "jira:">``, e.g.
  ``jira:issue_updated`` -> ``com.atlassian.jira.issue_updated``, ``comment_created`` ->
  ``com.atlassian.jira.comment_created``. ``webhookEvent`` is required.
* ``subject``: ``issue.key``, else ``project.key``, else none.
* extensions: ``jiraevent`` (the raw ``webhookEvent``) and ``jiraurl`` (the instance base URL,
  from ``baseUrl`` or the part before ``/rest/`` of the first ``self`` link found) when known.
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
    clean,
    clean_or_none,
    dig_str,
    encode_body,
    event_type,
    extensions_from,
    first_secret,
    merge_headers,
    require_signature,
    sign_hmac,
    url_origin,
    verify_hmac,
)

_SELF_LINKS = ("issue", "comment", "project", "version", "worklog", "user", "sprint", "board")


class JiraSettings(SourceSettings):
    kind: Literal["jira"] = "jira"


def jira_base_url(payload: Mapping[str, Any]) -> str | None:
    """The instance URL from ``baseUrl`` or the first ``self`` link (``.../rest/...``)."""
    base = dig_str(payload, "baseUrl")
    if base is not None and url_origin(base) is not None:
        return clean(base.rstrip("/"))
    for key in _SELF_LINKS:
        link = dig_str(payload, key, "self")
        if link is not None and url_origin(link) is not None and "/rest/" in link:
            return clean(link.split("/rest/", 1)[0])
    return None


class JiraSource(Source):
    kind: ClassVar[str] = "jira"
    settings_model: ClassVar[type[SourceSettings]] = JiraSettings

    config: JiraSettings

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
        webhook_event = dig_str(body, "webhookEvent")
        if webhook_event is None:
            raise MalformedPayload("Jira payload has no string 'webhookEvent'")
        extensions = extensions_from(
            [("jiraevent", webhook_event), ("jiraurl", jira_base_url(body))]
        )
        delivery = clean_or_none(request.header("x-atlassian-webhook-identifier"))
        subject = dig_str(body, "issue", "key") or dig_str(body, "project", "key")
        return CloudEvent(
            id=delivery or body_id(request.body),
            source=self.cloudevent_source,
            type=event_type("com.atlassian.jira", webhook_event.removeprefix("jira:")),
            subject=clean_or_none(subject),
            data=body,
            extensions=extensions,
        )

    def sign(
        self, event: str, payload: Any, delivery_id: str, headers: Mapping[str, str] | None = None
    ) -> SignedRequest:
        """``event`` is the ``webhookEvent``; it is not a header (Jira sends it in the body)."""
        body = encode_body(payload)
        base = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Atlassian Webhook HTTP Client",
            "X-Hub-Signature": sign_hmac(first_secret(self.secrets, self.name), body),
        }
        if delivery_id:
            base["X-Atlassian-Webhook-Identifier"] = delivery_id
        return SignedRequest(headers=merge_headers(base, headers), body=body)
