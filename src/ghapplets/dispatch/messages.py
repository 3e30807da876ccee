"""How events and jobs travel through the broker: stream names, ids and headers (sans-I/O).

Both kinds of message are CloudEvents in binary mode (``ce-*`` headers). An event message carries
the JSON data as its body, and the vendor's headers (minus credentials) for the delivery record.
A job message has no body: it names its delivery (whose record holds the body, stored once), its
applet and its job id, which is also the job's idempotency key.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import orjson

from ghapplets.broker.base import EVENTS as EVENTS  # re-exported: the streams by name
from ghapplets.broker.base import JOBS as JOBS
from ghapplets.broker.base import Message, OutboundMessage
from ghapplets.events import CloudEvent
from ghapplets.sources.base import CREDENTIAL_HEADERS

H_SOURCE = "ghapplets-source"
H_VENDOR_HEADERS = "ghapplets-vendor-headers"
H_RECEIVED_AT = "ghapplets-received-at"
H_JOB_ID = "ghapplets-job-id"
H_APPLET = "ghapplets-applet"
H_DELIVERY = "ghapplets-delivery-id"
H_ATTEMPT_OFFSET = "ghapplets-attempt-offset"
H_RUN = "ghapplets-run"  # a run message (dispatch.runs): the blueprint run it moves on


def job_id(source: str, delivery_id: str, applet: str) -> str:
    return f"{source}:{delivery_id}:{applet}"


def event_message(
    source: str,
    event: CloudEvent,
    data: bytes,
    vendor_headers: Mapping[str, str],
    received_at: float,
    *,
    credentials: Collection[str] = (),
    secrets: Collection[bytes] = (),
    dedup_key: str | None = None,
) -> OutboundMessage:
    """The message that stores an accepted event. ``vendor_headers`` (lower-case names) are kept
    for the delivery record, except :data:`CREDENTIAL_HEADERS`, ``credentials`` (the source's
    own) and any header whose value holds one of ``secrets`` (the source's, sent under another
    name). The message id, on which the broker deduplicates, is ``dedup_key`` when given (a
    replay key, see :meth:`Source.replay_key`), else ``<source>:<event id>``."""
    headers = event.binary_headers()
    headers[H_SOURCE] = source
    headers[H_RECEIVED_AT] = repr(received_at)
    headers[H_VENDOR_HEADERS] = orjson.dumps(
        {
            k: v
            for k, v in vendor_headers.items()
            if k not in CREDENTIAL_HEADERS
            and k not in credentials
            and not any(secret in v.encode() for secret in secrets)
        }
    ).decode()
    return OutboundMessage(EVENTS, dedup_key or f"{source}:{event.id}", headers, data)


def job_message(
    event_headers: Mapping[str, str],
    source: str,
    delivery_id: str,
    applet: str,
    *,
    replay: str | None = None,
    attempt_offset: int = 0,
) -> OutboundMessage:
    jid = job_id(source, delivery_id, applet)
    headers = {k: v for k, v in event_headers.items() if k.startswith("ce-") or k == "content-type"}
    headers[H_SOURCE] = source
    headers[H_DELIVERY] = delivery_id
    headers[H_APPLET] = applet
    headers[H_JOB_ID] = jid
    if H_RECEIVED_AT in event_headers:
        headers[H_RECEIVED_AT] = event_headers[H_RECEIVED_AT]
    if attempt_offset:
        headers[H_ATTEMPT_OFFSET] = str(attempt_offset)
    msg_id = jid if replay is None else f"{jid}#replay-{replay}"
    return OutboundMessage(JOBS, msg_id, headers, b"")


def event_of(message: Message, *, with_data: bool = True, body: bytes | None = None) -> CloudEvent:
    """The CloudEvent a message carries; a job message's ``body`` comes from its delivery."""
    return CloudEvent.from_binary(
        message.headers, message.data if body is None else body, parse=with_data
    )
