"""Helpers shared by every source kind (sans-I/O).

This module owns the pieces the per-vendor modules would otherwise repeat: the deterministic
body-hash delivery id, the CloudEvent ``type`` segment rule, safe navigation of untrusted JSON,
the constant-time verification schemes (HMAC header, plain token, ``Authorization`` bearer or
basic) and their signing inverses, header merging for ``sign`` and the ``SignedRequest`` ->
``InboundRequest`` conversion the test kit uses.

Type rule (every kind): a CloudEvent ``type`` is a reverse-DNS prefix followed by segments;
each segment is lower-cased, every run of characters outside ``a-z 0-9 _ -`` becomes ``_``,
it is cut to 100 characters, and an empty segment is dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import orjson

from ghapplets.events import InboundRequest
from ghapplets.exceptions import MalformedPayload, RejectReason, VerificationError
from ghapplets.sources.base import SignedRequest, SourceSettings, hmac_digest, matches_any

Encoding = Literal["hex", "base64"]
Algorithm = Literal["sha1", "sha256", "sha512"]
AuthScheme = Literal["bearer", "basic"]

BODY_ID_PREFIX = "sha256:"
MAX_SEGMENT = 100
_SEGMENT_BAD = re.compile(r"[^a-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

S = TypeVar("S", bound=SourceSettings)


# -- ids, types and attribute values --------------------------------------------------------
def body_id(body: bytes) -> str:
    """Deterministic delivery id for vendors that send none: ``sha256:<hex of raw body>``.

    A vendor retry carries the same bytes, so it gets the same id and is deduplicated.
    """
    return BODY_ID_PREFIX + hashlib.sha256(body).hexdigest()


def type_segment(value: str) -> str:
    """One ``type`` segment: lower-case, ``[a-z0-9_-]`` only, at most 100 characters."""
    return _SEGMENT_BAD.sub("_", value.strip().lower())[:MAX_SEGMENT]


def event_type(prefix: str, *segments: str | None) -> str:
    """``prefix`` plus each non-empty segment (see the module docstring for the rule)."""
    parts = [prefix]
    for raw in segments:
        if raw:
            segment = type_segment(raw)
            if segment:
                parts.append(segment)
    return ".".join(parts)


def clean(value: str, limit: int = 1024) -> str:
    """An attribute value safe for a ``ce-*`` header: no control characters, bounded length."""
    return _CONTROL.sub("", value)[:limit]


def clean_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = clean(value).strip()
    return cleaned or None


def extensions_from(pairs: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    """CloudEvent extensions from ``(name, value)`` pairs, keeping only the values that are
    non-empty after :func:`clean_or_none`."""
    out: dict[str, str] = {}
    for name, value in pairs:
        cleaned = clean_or_none(value)
        if cleaned:
            out[name] = cleaned
    return out


# -- safe navigation of verified but untrusted JSON ------------------------------------------
def as_object(payload: Any, what: str = "payload") -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise MalformedPayload(f"{what} must be a JSON object, got {type(payload).__name__}")
    return payload


def dig(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...`` or ``None`` when any step is missing or not an object."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def dig_str(obj: Any, *keys: str) -> str | None:
    """A non-empty string at the path, else ``None``."""
    value = dig(obj, *keys)
    return value if isinstance(value, str) and value else None


def dig_int(obj: Any, *keys: str) -> int | None:
    """An integer (not a bool) at the path, else ``None``."""
    value = dig(obj, *keys)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dig_scalar(obj: Any, *keys: str) -> str | None:
    """A non-empty string, or an integer rendered as a string, at the path, else ``None``."""
    text = dig_str(obj, *keys)
    if text is not None:
        return text
    number = dig_int(obj, *keys)
    return str(number) if number is not None else None


def dig_path(obj: Any, dotted: str) -> Any:
    """``dig`` with a dotted path such as ``record.sys_class_name``."""
    return dig(obj, *dotted.split("."))


def require_header(request: InboundRequest, name: str) -> str:
    """The header's value, stripped and :func:`clean`-ed; ``MalformedPayload`` when empty."""
    value = clean((request.header(name) or "").strip())
    if not value:
        raise MalformedPayload(f"missing {name} header")
    return value


def url_origin(url: Any) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, else ``None`` (never raises)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return clean(f"{parts.scheme}://{parts.netloc}")


def url_host(url: Any) -> str | None:
    """Host name of an http(s) URL, else ``None`` (never raises)."""
    if url_origin(url) is None:
        return None
    try:
        host = urlsplit(str(url)).hostname
    except ValueError:
        return None
    return clean(host) if host else None


# -- constant-time verification ---------------------------------------------------------------
def _need_secrets(secrets: Sequence[bytes]) -> None:
    if not secrets:
        raise VerificationError(RejectReason.NO_SECRET, "this source has no secret configured")


def require_signature(presented: str | None, secrets: Sequence[bytes], *, header: str) -> None:
    """The part of :func:`verify_hmac` that needs no body: a secret is configured and the
    signature header is there (``no_secret`` / ``missing_signature``)."""
    _need_secrets(secrets)
    if presented is None or not presented.strip():
        raise VerificationError(RejectReason.MISSING_SIGNATURE, f"missing {header} header")


def sign_hmac(
    secret: bytes,
    body: bytes,
    *,
    algorithm: str = "sha256",
    prefix: str = "sha256=",
    encoding: Encoding = "hex",
) -> str:
    """The header value a vendor sends: ``prefix`` + hex or base64 HMAC of the raw body."""
    if encoding == "hex":
        return prefix + hmac_digest(secret, body, algorithm).hex()
    return prefix + base64.b64encode(hmac_digest(secret, body, algorithm)).decode("ascii")


def verify_hmac(
    presented: str | None,
    body: bytes,
    secrets: Sequence[bytes],
    *,
    header: str,
    algorithm: str = "sha256",
    prefix: str = "sha256=",
    encoding: Encoding = "hex",
) -> None:
    """Check ``presented`` (a header value) against the HMAC of ``body`` under every secret.

    Reasons: ``no_secret``, ``missing_signature``, ``bad_signature`` (wrong or garbled).
    The prefix is matched case-insensitively; hex is compared case-insensitively.
    """
    require_signature(presented, secrets, header=header)
    value = (presented or "").strip()
    if prefix:
        if value[: len(prefix)].lower() != prefix.lower():
            raise VerificationError(
                RejectReason.BAD_SIGNATURE, f"{header} does not start with {prefix!r}"
            )
        value = value[len(prefix) :]
    if encoding == "hex":
        ok = matches_any(value.lower(), [hmac_digest(s, body, algorithm).hex() for s in secrets])
    else:
        try:
            given = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raise VerificationError(
                RejectReason.BAD_SIGNATURE, f"{header} is not valid base64"
            ) from None
        ok = matches_any(given, [hmac_digest(s, body, algorithm) for s in secrets])
    if not ok:
        raise VerificationError(
            RejectReason.BAD_SIGNATURE, f"{header} does not match any configured secret"
        )


def verify_token(presented: str | None, secrets: Sequence[bytes], *, where: str) -> None:
    """Plain shared token (GitLab header, Splunk query): ``missing_token`` / ``bad_token``."""
    _need_secrets(secrets)
    if presented is None or presented == "":
        raise VerificationError(RejectReason.MISSING_TOKEN, f"missing token ({where})")
    if not matches_any(presented, list(secrets)):
        raise VerificationError(
            RejectReason.BAD_TOKEN, f"token ({where}) does not match any secret"
        )


def authorization_value(scheme: AuthScheme, secret: bytes, username: str | None = None) -> str:
    """``Authorization`` header value for bearer (secret is the token) or basic auth."""
    if scheme == "bearer":
        return "Bearer " + secret.decode("utf-8")
    creds = (username or "").encode("utf-8") + b":" + secret
    return "Basic " + base64.b64encode(creds).decode("ascii")


def verify_authorization(
    presented: str | None,
    secrets: Sequence[bytes],
    *,
    scheme: AuthScheme,
    username: str | None = None,
) -> None:
    """``Authorization: Bearer <secret>`` or ``Basic base64(username:secret)``, constant-time.

    Reasons: ``no_secret``, ``missing_credentials``, ``bad_credentials``.
    """
    _need_secrets(secrets)
    if presented is None or not presented.strip():
        raise VerificationError(RejectReason.MISSING_CREDENTIALS, "missing Authorization header")
    given_scheme, _, credentials = presented.strip().partition(" ")
    credentials = credentials.strip()
    if given_scheme.lower() != scheme or not credentials:
        raise VerificationError(
            RejectReason.BAD_CREDENTIALS, f"Authorization is not a {scheme} credential"
        )
    if scheme == "bearer":
        ok = matches_any(credentials, list(secrets))
    else:
        try:
            given = base64.b64decode(credentials, validate=True)
        except (ValueError, binascii.Error):
            raise VerificationError(
                RejectReason.BAD_CREDENTIALS, "basic credential is not base64"
            ) from None
        user = (username or "").encode("utf-8")
        ok = matches_any(given, [user + b":" + s for s in secrets])
    if not ok:
        raise VerificationError(RejectReason.BAD_CREDENTIALS, "credentials do not match any secret")


def verify_configured(
    request: InboundRequest,
    secrets: Sequence[bytes],
    mode: Literal["hmac", "bearer", "basic"],
    *,
    header: str,
    prefix: str,
    encoding: Encoding,
    algorithm: str = "sha256",
    username: str | None = None,
) -> None:
    """The configurable schemes (``generic``, ``servicenow``): an HMAC header over the raw body,
    or an ``Authorization`` bearer token / basic credentials."""
    if mode == "hmac":
        verify_hmac(
            request.header(header),
            request.body,
            secrets,
            header=header,
            algorithm=algorithm,
            prefix=prefix,
            encoding=encoding,
        )
    else:
        verify_authorization(
            request.header("authorization"), secrets, scheme=mode, username=username
        )


def verify_configured_headers(
    request: InboundRequest,
    secrets: Sequence[bytes],
    mode: Literal["hmac", "bearer", "basic"],
    *,
    header: str,
    username: str | None = None,
) -> None:
    """:func:`verify_configured` before the body has arrived: the whole check for bearer and
    basic credentials, the signature header's presence for ``hmac``."""
    if mode == "hmac":
        require_signature(request.header(header), secrets, header=header)
    else:
        verify_authorization(
            request.header("authorization"), secrets, scheme=mode, username=username
        )


def configured_credential_headers(
    mode: Literal["hmac", "bearer", "basic", "none"], header: str
) -> frozenset[str]:
    """The headers that carry the credential of a configurable scheme."""
    if mode == "hmac":
        return frozenset({header.lower()})
    if mode == "none":
        return frozenset()
    return frozenset({"authorization"})


# -- the sending side -------------------------------------------------------------------------
def first_secret(secrets: Sequence[bytes], source: str) -> bytes:
    if not secrets:
        raise ValueError(f"source {source!r} has no secret to sign with")
    return secrets[0]


def encode_body(payload: Any) -> bytes:
    """Raw bytes as given, text as UTF-8, anything else as compact JSON."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return orjson.dumps(payload)


def merge_headers(base: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    """``base`` with ``extra`` added; a key in ``extra`` replaces any case-variant in ``base``."""
    merged = dict(base)
    for key, value in (extra or {}).items():
        for existing in [k for k in merged if k.lower() == key.lower()]:
            del merged[existing]
        merged[key] = value
    return merged


def to_inbound(
    signed: SignedRequest, source: str, *, client_ip: str | None = None
) -> InboundRequest:
    """The :class:`InboundRequest` the gateway would build from ``signed`` (headers lower-cased)."""
    return InboundRequest(
        source=source,
        headers={k.lower(): v for k, v in signed.headers.items()},
        body=signed.body,
        query=dict(signed.query),
        client_ip=client_ip,
    )
