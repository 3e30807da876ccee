"""Secret names, and the environment variables they become in ``exec`` applets.

A declared secret reaches an ``exec`` applet as ``GHAPPLETS_SECRET_<NAME>`` (upper case, every
character other than a letter or digit as ``_``). Names whose variable would be one of the
platform's own (:data:`RESERVED_ENV`: ``GHAPPLETS_SECRET_KEY``, the secrets key) are refused
wherever a name is given (``ghapplets secrets set``, an applet's ``secrets:``), so an applet's
secret can never pass for the platform's key, or the other way round.
"""

from __future__ import annotations

import re

from ghapplets.exceptions import InvalidSecret

KEY_ENV = "GHAPPLETS_SECRET_KEY"  # the secrets key (see ghapplets.secrets.crypto)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ENV_PREFIX = "GHAPPLETS_SECRET_"
# the platform's variables that a secret's variable could spell
RESERVED_ENV = frozenset({KEY_ENV})


def secret_env_name(name: str) -> str:
    """``GHAPPLETS_SECRET_<NAME>``: upper case, every non-alphanumeric character -> ``_``."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def reserved_problem(name: str) -> str | None:
    """Why ``name`` cannot be a secret's name because of its variable, or None."""
    env = secret_env_name(name)
    if env in RESERVED_ENV:
        return (
            f"secret name {name!r} is reserved: exec applets would get it as {env}, the "
            "variable that holds the secrets key; choose another name"
        )
    return None


def check_name(name: str) -> None:
    """Raise :class:`InvalidSecret` unless ``name`` can name a secret."""
    if not NAME_RE.match(name):
        raise InvalidSecret(
            f"invalid secret name {name!r}: use letters, digits, '.', '_' or '-' (max 128)"
        )
    problem = reserved_problem(name)
    if problem:
        raise InvalidSecret(problem)
