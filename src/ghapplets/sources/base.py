"""The contract every webhook source implements: verify raw bytes, parse, normalise (sans-I/O).

A :class:`Source` is built from its settings and its resolved webhook secrets (one or two, so a
secret can be rotated without downtime). The gateway calls :meth:`Source.verify_headers` as soon
as the request's head has arrived (a wrong token is refused before the body is read), then
:meth:`Source.ingest`, which runs verify -> parse -> normalise and raises
:class:`VerificationError` (HTTP 401, :class:`ClientNotAllowed` 403) or
:class:`MalformedPayload` (HTTP 400). :meth:`Source.sign` is the inverse, used by
``ghapplets send`` and the test kit to build a correctly signed request.

A source also says what must never be stored: :attr:`Source.credential_headers` and
:attr:`Source.credential_params`, and, for a signature over the body alone,
:meth:`Source.replay_key`, the dedup key that stops the same signed body being accepted again
under another delivery id or event name.
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

import orjson
from pydantic import BaseModel, ConfigDict

from ghapplets.events import CloudEvent, InboundRequest
from ghapplets.exceptions import MalformedPayload


class SourceSettings(BaseModel):
    """Settings shared by every source kind; kinds subclass this with their own fields.

    ``secret`` and ``previous_secret`` hold references (``${env:NAME}``, ``${secret:name}``) or
    literal values; they are resolved before a :class:`Source` is built.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str
    secret: str | None = None
    previous_secret: str | None = None
    description: str | None = None
    # a body signed once is accepted once (sources whose signature covers the body alone)
    replay_protection: bool = True
    # the admin API shows this source's payloads to operators and admins only, not to viewers
    redact_payload: bool = False


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A webhook request ready to send: what ``Source.sign`` returns."""

    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)


# never stored, whichever source they reach: credentials, not facts about the event
CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
        "x-auth-token",
        "x-access-token",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-gitlab-token",
        "x-signature",
        "x-servicenow-signature",
    }
)

# orjson reads JSON nested up to 1024 levels but writes only 254. A payload must survive being
# written again inside envelopes (the structured CloudEvent an exec applet reads, a job's
# context): deeper than MAX_JSON_DEPTH is malformed, which leaves 54 levels for envelopes
MAX_JSON_DEPTH = 200
_WRITER_DEPTH = 254


def check_depth(payload: Any, body: bytes) -> None:
    """:class:`MalformedPayload` when ``payload`` is nested deeper than :data:`MAX_JSON_DEPTH`,
    found by writing it again inside the envelopes' margin (orjson's writer is the limit, and
    writing costs less than counting brackets). A shorter body cannot be that deep."""
    if len(body) <= 2 * MAX_JSON_DEPTH:
        return
    wrapped = payload
    for _ in range(_WRITER_DEPTH - MAX_JSON_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except TypeError:
        raise MalformedPayload(
            f"JSON is nested deeper than {MAX_JSON_DEPTH} levels, or not representable"
        ) from None


def hmac_digest(secret: bytes, body: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.digest(secret, body, algorithm)  # one-shot: the fast C path


def matches_any(presented: str | bytes | None, expected: Sequence[str | bytes]) -> bool:
    """Constant-time comparison of ``presented`` against every expected value.

    Every candidate is compared (no early exit), so timing does not reveal which secret matched.
    """
    if presented is None:
        return False
    given = presented.encode() if isinstance(presented, str) else presented
    ok = False
    for candidate in expected:
        want = candidate.encode() if isinstance(candidate, str) else candidate
        ok |= hmac.compare_digest(given, want)
    return ok


class Source(ABC):
    """One configured inbound endpoint ``POST /hooks/{name}``."""

    kind: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]] = SourceSettings

    # each kind narrows this to its own settings model (``config: GitHubSettings``)
    config: SourceSettings

    def __init__(self, name: str, settings: SourceSettings, secrets: Sequence[bytes]) -> None:
        self.name = name
        self.settings = settings
        # settings of the plain base model are re-validated against the kind's own model
        model = self.settings_model
        self.config = (
            settings
            if isinstance(settings, model)
            else model.model_validate(settings.model_dump(exclude_unset=True))
        )
        self.secrets: tuple[bytes, ...] = tuple(s for s in secrets if s)

    # -- what the gateway must not keep, and replays ---------------------------------------
    @property
    def credential_headers(self) -> frozenset[str]:
        """Lower-case names of the headers that carry this source's credential (a signature,
        a token): never stored, logged or shown. :data:`CREDENTIAL_HEADERS` are dropped too."""
        return frozenset()

    @property
    def credential_params(self) -> frozenset[str]:
        """Names of the query parameters that carry this source's credential."""
        return frozenset()

    @property
    def body_signature(self) -> bool:
        """Whether verification is a signature over the body alone: anything outside the body
        (delivery id, event name) can be changed by whoever replays a captured request."""
        return False

    def replay_key(self, request: InboundRequest) -> str | None:
        """The broker message id that makes a replayed body a duplicate: ``<name>:body:<sha256
        of the raw body>`` when the body is all that is signed and ``replay_protection`` is on,
        else None (the delivery id is the key)."""
        if not (self.body_signature and self.config.replay_protection):
            return None
        return f"{self.name}:body:{hashlib.sha256(request.body).hexdigest()}"

    # -- the ingest pipeline ----------------------------------------------------------------
    def ingest(self, request: InboundRequest) -> CloudEvent:
        self.verify(request)
        payload = self.parse(request)
        return self.normalise(request, payload)

    def verify_headers(self, request: InboundRequest) -> None:
        """What can be checked before the body arrives (``request.body`` is empty): a token or
        an ``Authorization`` credential, the client's address, a signature header's presence.
        Raise :class:`VerificationError` to refuse the request without reading its body;
        :meth:`verify` still runs on the whole request. By default nothing is checked early."""
        return None

    @abstractmethod
    def verify(self, request: InboundRequest) -> None:
        """Raise :class:`VerificationError` unless the raw request is authentic."""

    def parse(self, request: InboundRequest) -> Any:
        """Parse the body; JSON by default, ``payload=`` form encoding as GitHub may send."""
        ctype = (request.header("content-type") or "").lower()
        body = request.body
        if ctype.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8", "replace"))
            if "payload" not in form:
                raise MalformedPayload("form-encoded body has no 'payload' field")
            body = form["payload"][0].encode()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedPayload(f"body is not valid JSON: {exc}") from None
        check_depth(payload, body)
        return payload

    @abstractmethod
    def normalise(self, request: InboundRequest, payload: Any) -> CloudEvent:
        """Turn a verified, parsed request into a CloudEvent (id, type, subject, data)."""

    # -- the sending side (CLI ``send`` and the test kit) ------------------------------------
    @abstractmethod
    def sign(
        self, event: str, payload: Any, delivery_id: str, headers: Mapping[str, str] | None = None
    ) -> SignedRequest:
        """Build the request the vendor would send for ``event`` with ``payload``, signed with
        this source's first secret. ``headers`` adds or overrides vendor headers."""

    @property
    def cloudevent_source(self) -> str:
        return f"/{self.name}"
