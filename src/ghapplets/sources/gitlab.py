"""GitLab (gitlab.com and self-managed) webhooks: kind ``gitlab``.

Owns GitLab's verification (``X-Gitlab-Token``: the secret token itself, compared in constant
time against every configured secret) and the mapping of a delivery to a CloudEvent:

* ``id``: ``X-Gitlab-Event-UUID``, else ``Idempotency-Key``, else ``sha256:<body hash>``.
* ``type``: ``com.gitlab.<object_kind>`` (``event_name`` when there is no ``object_kind``, as
  in some system hooks; one of them is required) plus ``.<object_attributes.action>`` when that
  is a string: ``com.gitlab.push``, ``com.gitlab.merge_request.open``,
  ``com.gitlab.issue.open``, ``com.gitlab.pipeline``, ``com.gitlab.note``.
* ``subject``: ``project.path_with_namespace``, plus ``!<iid>`` for a merge request and
  ``#<iid>`` for an issue or work item (``object_attributes.iid``; for a note, the commented
  ``merge_request.iid`` or ``issue.iid``): ``acme/widgets!7``, ``acme/widgets#12``; else none.
* extensions: ``gitlabinstance`` (``X-Gitlab-Instance``), ``gitlabevent`` (``X-Gitlab-Event``,
  e.g. ``Push Hook``) and ``gitlabhookid`` (``X-Gitlab-Webhook-UUID``) when present.
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
    dig_int,
    dig_str,
    encode_body,
    event_type,
    extensions_from,
    first_secret,
    merge_headers,
    verify_token,
)

_ISSUE_KINDS = ("issue", "work_item")
HOOK_HEADERS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "issue": "Issue Hook",
    "work_item": "Issue Hook",
    "note": "Note Hook",
    "merge_request": "Merge Request Hook",
    "wiki_page": "Wiki Page Hook",
    "pipeline": "Pipeline Hook",
    "build": "Job Hook",
    "deployment": "Deployment Hook",
    "release": "Release Hook",
    "feature_flag": "Feature Flag Hook",
    "emoji": "Emoji Hook",
    "member": "Member Hook",
}


def hook_header(event: str) -> str:
    """``X-Gitlab-Event`` for ``event``: kept when it is one (``Push Hook``), else looked up by
    ``object_kind`` from a fixture name such as ``merge_request.open``."""
    if event.endswith(" Hook"):
        return event
    return HOOK_HEADERS.get(event.partition(".")[0], event)


class GitLabSettings(SourceSettings):
    kind: Literal["gitlab"] = "gitlab"


def gitlab_subject(payload: Mapping[str, Any], object_kind: str) -> str | None:
    path = dig_str(payload, "project", "path_with_namespace")
    if path is None:
        return None
    iid = dig_int(payload, "object_attributes", "iid")
    if object_kind == "merge_request" and iid is not None:
        return f"{path}!{iid}"
    if object_kind in _ISSUE_KINDS and iid is not None:
        return f"{path}#{iid}"
    if object_kind == "note":
        mr_iid = dig_int(payload, "merge_request", "iid")
        if mr_iid is not None:
            return f"{path}!{mr_iid}"
        issue_iid = dig_int(payload, "issue", "iid")
        if issue_iid is not None:
            return f"{path}#{issue_iid}"
    return path


class GitLabSource(Source):
    kind: ClassVar[str] = "gitlab"
    settings_model: ClassVar[type[SourceSettings]] = GitLabSettings

    config: GitLabSettings

    credential_headers = frozenset({"x-gitlab-token"})

    def verify_headers(self, request: InboundRequest) -> None:
        self.verify(request)  # the token is all there is: checked before the body is read

    def verify(self, request: InboundRequest) -> None:
        verify_token(request.header("x-gitlab-token"), self.secrets, where="X-Gitlab-Token")

    def normalise(self, request: InboundRequest, payload: Any) -> CloudEvent:
        body = as_object(payload)
        object_kind = dig_str(body, "object_kind") or dig_str(body, "event_name")
        if object_kind is None:
            raise MalformedPayload("GitLab payload has no 'object_kind' or 'event_name'")
        extensions = extensions_from(
            [
                ("gitlabinstance", request.header("x-gitlab-instance")),
                ("gitlabevent", request.header("x-gitlab-event")),
                ("gitlabhookid", request.header("x-gitlab-webhook-uuid")),
            ]
        )
        delivery = clean_or_none(request.header("x-gitlab-event-uuid")) or clean_or_none(
            request.header("idempotency-key")
        )
        return CloudEvent(
            id=delivery or body_id(request.body),
            source=self.cloudevent_source,
            type=event_type(
                "com.gitlab", object_kind, dig_str(body, "object_attributes", "action")
            ),
            subject=clean_or_none(gitlab_subject(body, object_kind)),
            data=body,
            extensions=extensions,
        )

    def sign(
        self, event: str, payload: Any, delivery_id: str, headers: Mapping[str, str] | None = None
    ) -> SignedRequest:
        """``event`` is the ``X-Gitlab-Event`` value (``Merge Request Hook``) or a fixture name
        (``merge_request.open``)."""
        token = first_secret(self.secrets, self.name).decode("utf-8")
        base = {
            "Content-Type": "application/json",
            "User-Agent": "GitLab/17.5.0",
            "X-Gitlab-Event": hook_header(event),
            "X-Gitlab-Token": token,
        }
        if delivery_id:
            base["X-Gitlab-Event-UUID"] = delivery_id
        return SignedRequest(headers=merge_headers(base, headers), body=encode_body(payload))
