"""The Splunk connector: events to the HTTP Event Collector (HEC), and ``splunk.send_event``.

One request carries one or more JSON envelopes (``time``, ``host``, ``source``, ``sourcetype``,
``index``, ``fields``, ``event``), concatenated, with ``Authorization: Splunk <token>``. The
connector's ``index``, ``sourcetype``, ``source`` and ``host`` fill in what an event leaves
out. HEC answers ``{"text", "code"}``; its 503 "Server is busy" is retried like any 5xx.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from ghapplets.connectors.catalog import action
from ghapplets.connectors.config import ConnectorKind, SplunkConnector
from ghapplets.connectors.http import VendorApi

EVENT_PATH = "/services/collector/event"
ENVELOPE_FIELDS = ("time", "host", "source", "sourcetype", "index", "fields")


class Splunk:
    """An open Splunk connector."""

    kind = ConnectorKind.SPLUNK

    def __init__(self, name: str, config: SplunkConnector) -> None:
        self.name = name
        self.config = config
        self.api = VendorApi(
            "Splunk",
            config.url,
            timeout=config.timeout,
            headers={"Authorization": f"Splunk {config.token}"},
        )

    def envelope(self, event: dict[str, Any]) -> dict[str, Any]:
        """The HEC envelope of ``event`` (the ``event`` key plus optional metadata), with the
        connector's defaults and the current time filled in."""
        doc: dict[str, Any] = {"time": round(time.time(), 3)}
        for key in ("index", "sourcetype", "source", "host"):
            value = getattr(self.config, key)
            if value is not None:
                doc[key] = value
        doc.update({k: event[k] for k in ENVELOPE_FIELDS if event.get(k) is not None})
        doc["event"] = event["event"]
        return doc

    async def send(self, events: Sequence[dict[str, Any]]) -> Any:
        """Send ``events`` (each as :meth:`envelope` takes it) in one request; HEC's answer."""
        body = b"\n".join(orjson.dumps(self.envelope(e)) for e in events)
        headers = {"Content-Type": "application/json"}
        return await self.api.json("POST", EVENT_PATH, content=body, headers=headers)

    async def aclose(self) -> None:
        await self.api.aclose()


@action(
    "splunk.send_event",
    ConnectorKind.SPLUNK,
    "Send one event to Splunk's HTTP Event Collector.",
    {
        "event": {"description": "the event: any JSON value (an object, usually)"},
        "sourcetype": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "index": {"type": "string", "minLength": 1},
        "host": {"type": "string", "minLength": 1},
        "fields": {
            "type": "object",
            "description": "indexed fields: flat, each a string or a list of strings",
            "additionalProperties": {
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
            },
        },
        "time": {"type": "number", "description": "epoch seconds; default: now"},
    },
    required=("event",),
    output='HEC\'s answer: {"text": "Success", "code": 0}',
)
async def send_event(connector: Splunk, data: dict[str, Any]) -> Any:
    return await connector.send([data])
