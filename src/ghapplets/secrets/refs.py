"""References to secret values in configuration: ``${env:NAME}`` and ``${secret:name}``.

A value that is exactly one reference is replaced by what it names; any other string is a
literal. Unknown variables or secrets are errors that name the reference, never its value, and
so is a secret the lookup may not hand out (a source's settings read global secrets only:
:meth:`ghapplets.secrets.vault.SecretVault.get_global`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable

from ghapplets.exceptions import NotFound, SecretScopeError, UnresolvedReference

REF_RE = re.compile(r"^\$\{(env|secret):([A-Za-z0-9_.-]+)\}$")


def parse_ref(value: str) -> tuple[str, str] | None:
    match = REF_RE.match(value.strip())
    return (match.group(1), match.group(2)) if match else None


async def resolve(value: str, secret_lookup: Callable[[str], Awaitable[str]]) -> str:
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
    except NotFound:
        raise UnresolvedReference(
            f"no stored secret named {name!r} (from {value}); add it with "
            f"'ghapplets secrets set {name}'"
        ) from None
    except SecretScopeError as exc:
        raise UnresolvedReference(f"{exc} (from {value})") from None
