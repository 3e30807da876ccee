"""CloudEvents 1.0 model, its structured and binary encodings, and the inbound request record.

This module owns the shape of an event inside Ghapplets. It performs no I/O: the gateway builds
an :class:`InboundRequest` from HTTP, a source turns it into a :class:`CloudEvent`, and brokers
carry it in binary mode (``ce-*`` headers plus the raw body).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

SPEC_VERSION = "1.0"
_CORE = ("id", "source", "type", "subject", "time", "datacontenttype", "specversion")


def now_rfc3339() -> str:
    """The current UTC time as an RFC 3339 timestamp with millisecond precision."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """One webhook request as received, before verification.

    ``headers`` keys are lower-case; ``body`` is the raw bytes that signatures are computed over.
    """

    source: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)
    client_ip: str | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """A CloudEvents 1.0 event. ``extensions`` holds extension attributes (string values)."""

    id: str
    source: str
    type: str
    data: Any = None
    subject: str | None = None
    time: str = field(default_factory=now_rfc3339)
    datacontenttype: str = "application/json"
    extensions: Mapping[str, str] = field(default_factory=dict)
    specversion: str = SPEC_VERSION

    # -- structured mode (one JSON document) ---------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": self.datacontenttype,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        out.update(self.extensions)
        out["data"] = self.data
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> CloudEvent:
        missing = [k for k in ("id", "source", "type") if not doc.get(k)]
        if missing:
            raise ValueError(f"CloudEvent is missing required attribute(s): {', '.join(missing)}")
        ext = {k: str(v) for k, v in doc.items() if k not in _CORE and k != "data"}
        return cls(
            id=str(doc["id"]),
            source=str(doc["source"]),
            type=str(doc["type"]),
            data=doc.get("data"),
            subject=doc.get("subject"),
            time=str(doc.get("time") or now_rfc3339()),
            datacontenttype=str(doc.get("datacontenttype") or "application/json"),
            extensions=ext,
            specversion=str(doc.get("specversion") or SPEC_VERSION),
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        doc = orjson.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("a structured CloudEvent must be a JSON object")
        return cls.from_dict(doc)

    # -- binary mode (ce-* headers + body) -----------------------------------------------
    def binary_headers(self) -> dict[str, str]:
        headers = {
            "ce-specversion": self.specversion,
            "ce-id": self.id,
            "ce-source": self.source,
            "ce-type": self.type,
            "ce-time": self.time,
            "content-type": self.datacontenttype,
        }
        if self.subject is not None:
            headers["ce-subject"] = self.subject
        for key, value in self.extensions.items():
            headers[f"ce-{key}"] = value
        return headers

    def data_bytes(self) -> bytes:
        if isinstance(self.data, bytes):
            return self.data
        return orjson.dumps(self.data)

    @classmethod
    def from_binary(
        cls, headers: Mapping[str, str], body: bytes, data: Any = None, *, parse: bool = True
    ) -> CloudEvent:
        """Rebuild an event from ``ce-*`` headers; ``data`` may be given pre-parsed, or left
        out (``parse=False``) when only the attributes are needed."""
        attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        ctype = headers.get("content-type", "application/json")
        if data is None and parse:
            data = orjson.loads(body) if body and "json" in ctype else body
        ext = {k: v for k, v in attrs.items() if k not in _CORE}
        return cls(
            id=attrs["id"],
            source=attrs["source"],
            type=attrs["type"],
            data=data,
            subject=attrs.get("subject"),
            time=attrs.get("time") or now_rfc3339(),
            datacontenttype=ctype,
            extensions=ext,
            specversion=attrs.get("specversion", SPEC_VERSION),
        )
