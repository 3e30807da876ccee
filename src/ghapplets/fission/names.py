"""Kubernetes names for what the Fission export writes: DNS-1123 labels, made unique.

Applet names (``[a-z0-9][a-z0-9_.-]{0,62}``) and blueprint names may hold ``_`` and ``.``, which
a Fission object's name may not (``^[a-z0-9]([-a-z0-9]*[a-z0-9])?$``, at most 63 characters).
:func:`dns_label` turns any text into such a label; :class:`Labels` hands out labels unique
among those it gave, adding a short digest of the original text when two would clash or when
the text had to be cut. Sans-I/O.
"""

from __future__ import annotations

import hashlib
import re

MAX_LABEL = 63
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_INVALID = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_DIGEST = 6


def is_label(text: str) -> bool:
    """Is ``text`` a DNS-1123 label (as Kubernetes names, namespaces and Fission refs are)?"""
    return len(text) <= MAX_LABEL and bool(LABEL_RE.match(text))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST]


def _clean(text: str) -> str:
    label = _DASHES.sub("-", _INVALID.sub("-", text.lower())).strip("-")
    return label or "x"


def dns_label(text: str, *, suffix: str = "", salt: bool = False) -> str:
    """``text`` as a DNS-1123 label ending in ``suffix`` (itself a label fragment such as
    ``-secrets``): lower case, every run of other characters one ``-``, cut to fit 63
    characters. A cut label, or one asked to (``salt``), ends with a digest of ``text`` so
    that two texts never give the same label."""
    base = _clean(text)
    room = MAX_LABEL - len(suffix)
    if salt or len(base) > room:
        tail = "-" + _digest(text)
        base = base[: room - len(tail)].rstrip("-") + tail
    return base + suffix


class Labels:
    """Hands out DNS-1123 labels, each unique among those handed out by this instance."""

    def __init__(self) -> None:
        self._given: dict[str, str] = {}  # label -> the text it was made from

    def __call__(self, text: str, *, suffix: str = "") -> str:
        label = dns_label(text, suffix=suffix)
        if self._given.get(label, text) != text:
            label = dns_label(text, suffix=suffix, salt=True)
        self._given[label] = text
        return label
