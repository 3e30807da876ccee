"""GitHub (github.com and GitHub Enterprise Server) webhooks: kind ``github``.

Owns GitHub's verification (``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``,
optionally the legacy ``X-Hub-Signature: sha1=`` when no sha256 header is sent) and the mapping
of a delivery to a CloudEvent:

* ``id``: ``X-GitHub-Delivery`` (required).
* ``type``: ``com.github.<X-GitHub-Event>`` plus ``.<action>`` when the payload has a string
  ``action`` (``com.github.pull_request.opened``, ``com.github.push``, ``com.github.ping``).
* ``subject``: ``repository.full_name``, plus ``#<number>`` when the payload carries a
  ``pull_request``, ``issue`` or ``discussion`` object with an integer ``number`` (first found,
  in that order: ``octo/hello#42``); else ``organization.login``; else ``installation.id``;
  else none.
* extensions: ``githubevent`` (event name), ``githubhost`` (``X-GitHub-Enterprise-Host`` or
  ``github.com``), ``githubversion`` (``X-GitHub-Enterprise-Version``, GHES only) and
  ``githubhookid`` (``X-GitHub-Hook-ID``) when present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from ghapplets.events import CloudEvent, InboundRequest
from ghapplets.exceptions import MalformedPayload, RejectReason, VerificationError
from ghapplets.sources.base import SignedRequest, Source, SourceSettings
from ghapplets.sources.common import (
    as_object,
    clean_or_none,
    dig_int,
    dig_scalar,
    dig_str,
    encode_body,
    event_type,
    extensions_from,
    first_secret,
    merge_headers,
    require_header,
    require_signature,
    sign_hmac,
    type_segment,
    verify_hmac,
)

GITHUB_COM = "github.com"
_NUMBERED = ("pull_request", "issue", "discussion")


class GitHubSettings(SourceSettings):
    """``allow_sha1`` accepts ``X-Hub-Signature: sha1=`` when no sha256 signature is sent."""

    kind: Literal["github"] = "github"
    allow_sha1: bool = False


def github_subject(payload: Mapping[str, Any]) -> str | None:
    """The subject rule documented in the module docstring."""
    full_name = dig_str(payload, "repository", "full_name")
    if full_name is not None:
        for key in _NUMBERED:
            number = dig_int(payload, key, "number")
            if number is not None:
                return f"{full_name}#{number}"
        return full_name
    return dig_str(payload, "organization", "login") or dig_scalar(payload, "installation", "id")


class GitHubSource(Source):
    kind: ClassVar[str] = "github"
    settings_model: ClassVar[type[SourceSettings]] = GitHubSettings

    config: GitHubSettings

    credential_headers = frozenset({"x-hub-signature", "x-hub-signature-256"})
    body_signature = True

    def _use_sha1(self, request: InboundRequest) -> bool:
        """Whether the legacy sha1 signature is the one to check (no sha256 header)."""
        if request.header("x-hub-signature-256") is not None:
            return False
        if request.header("x-hub-signature") is None:
            return False
        if not self.config.allow_sha1:
            raise VerificationError(
                RejectReason.MISSING_SIGNATURE,
                "only a sha1 signature was sent and allow_sha1 is off",
            )
        return True

    def verify_headers(self, request: InboundRequest) -> None:
        if self._use_sha1(request):
            require_signature(
                request.header("x-hub-signature"), self.secrets, header="X-Hub-Signature"
            )
        else:
            require_signature(
                request.header("x-hub-signature-256"), self.secrets, header="X-Hub-Signature-256"
            )

    def verify(self, request: InboundRequest) -> None:
        if self._use_sha1(request):
            verify_hmac(
                request.header("x-hub-signature"),
                request.body,
                self.secrets,
                header="X-Hub-Signature",
                algorithm="sha1",
                prefix="sha1=",
            )
            return
        verify_hmac(
            request.header("x-hub-signature-256"),
            request.body,
            self.secrets,
            header="X-Hub-Signature-256",
        )

    def normalise(self, request: InboundRequest, payload: Any) -> CloudEvent:
        body = as_object(payload)
        event = type_segment(require_header(request, "x-github-event"))
        if not event:
            raise MalformedPayload("X-GitHub-Event is not a usable event name")
        delivery = require_header(request, "x-github-delivery")
        action = body.get("action")
        extensions = extensions_from(
            [
                ("githubevent", event),
                ("githubhost", request.header("x-github-enterprise-host")),
                ("githubversion", request.header("x-github-enterprise-version")),
                ("githubhookid", request.header("x-github-hook-id")),
            ]
        )
        extensions.setdefault("githubhost", GITHUB_COM)
        return CloudEvent(
            id=delivery,
            source=self.cloudevent_source,
            type=event_type("com.github", event, action if isinstance(action, str) else None),
            subject=clean_or_none(github_subject(body)),
            data=body,
            extensions=extensions,
        )

    def sign(
        self, event: str, payload: Any, delivery_id: str, headers: Mapping[str, str] | None = None
    ) -> SignedRequest:
        """``event`` is ``X-GitHub-Event`` (``issues``) or a fixture name (``issues.opened``)."""
        secret = first_secret(self.secrets, self.name)
        body = encode_body(payload)
        base = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/7a1b2c3",
            "X-GitHub-Event": event.partition(".")[0],
            "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature": sign_hmac(secret, body, algorithm="sha1", prefix="sha1="),
            "X-Hub-Signature-256": sign_hmac(secret, body),
        }
        return SignedRequest(headers=merge_headers(base, headers), body=body)
