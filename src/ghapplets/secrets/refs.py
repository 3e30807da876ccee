"""References to secret values in configuration: ``${env:NAME}`` and ``${secret:name}``.

A value that is exactly one reference is replaced by what it names; any other string is a
literal. Unknown variables or secrets are errors that name the reference, never its value, and
so is a secret the lookup may not hand out (a source's or connector's settings read global
secrets only: :meth:`ghapplets.secrets.access.SecretAccess.lookup`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ghapplets.exceptions import NotFound, SecretScopeError, UnresolvedReference

if TYPE_CHECKING:
    from ghapplets.secrets.scopes import Reader

Lookup = Callable[[str], Awaitable[str]]  # a secret's value by name, for one reader
LookupFor = Callable[["Reader"], Lookup]  # the lookup of a reader (SecretAccess.lookup)

REF_RE = re.compile(r"^\$\{(env|secret):([A-Za-z0-9_.-]+)\}$")


def parse_ref(value: str) -> tuple[str, str] | None:
    match = REF_RE.match(value.strip())
    return (match.group(1), match.group(2)) if match else None


async def resolve(value: str, secret_lookup: Lookup) -> str:
    ref = parse_ref(value)
    if ref is None:
        return value
    kind, name = ref
    if kind == "env":
        found = os.environ.get(name)
        if not found:
            raise UnresolvedReference(f"environment variable {name} is not set (from {value})")
        return found
    try:
        return await secret_lookup(name)
    except (NotFound, SecretScopeError) as exc:  # the message says how to add it, or its scope
        raise UnresolvedReference(f"{exc} (from {value})") from None
