"""Who may read a secret: its scope, ``global``, ``applet:<name>`` or ``blueprint:<name>``.

A reader has a scope too: an applet reads as ``applet:<its name>``, a source's settings
(``${secret:name}`` in ``ghapplets.yaml``) read as ``global``. A secret is handed to a reader
when it is global or has exactly the reader's scope (:meth:`Scope.admits`); so an applet gets
the global secrets and its own, and a source's settings only global ones. The operator's
``ghapplets secrets get`` is not a reader: it reads any secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from ghapplets.applets.model import NAME_PATTERN
from ghapplets.exceptions import InvalidSecret

_OWNER_RE = re.compile(NAME_PATTERN)


class ScopeKind(StrEnum):
    GLOBAL = "global"
    APPLET = "applet"
    BLUEPRINT = "blueprint"


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    owner: str = ""

    def __str__(self) -> str:
        return str(self.kind) if self.kind is ScopeKind.GLOBAL else f"{self.kind}:{self.owner}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``global``, ``applet:<name>`` or ``blueprint:<name>`` (names as applet names:
        lower case letters, digits, ``.``, ``_``, ``-``). Raises :class:`InvalidSecret`."""
        kind, sep, owner = text.strip().partition(":")
        if kind == ScopeKind.GLOBAL and not sep:
            return GLOBAL
        if kind in (ScopeKind.APPLET, ScopeKind.BLUEPRINT) and _OWNER_RE.match(owner):
            return cls(ScopeKind(kind), owner)
        raise InvalidSecret(
            f"invalid scope {text!r}: use global, applet:<name> or blueprint:<name> "
            "(a name of lower case letters, digits, '.', '_' or '-')"
        )

    @classmethod
    def applet(cls, name: str) -> Scope:
        return cls(ScopeKind.APPLET, name)

    def admits(self, reader: Scope) -> bool:
        """May ``reader`` have a secret of this scope?"""
        return self.kind is ScopeKind.GLOBAL or self == reader


GLOBAL = Scope(ScopeKind.GLOBAL)
