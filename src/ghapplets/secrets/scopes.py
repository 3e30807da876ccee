"""Who may read a secret: its scope, ``global``, ``applet:<name>`` or ``blueprint:<name>``,
and who reads it: a :class:`Reader`.

A reader has a scope too: an applet reads as ``applet:<its name>``, a source's or a connector's
settings (``${secret:name}`` in ``ghapplets.yaml``) read as ``global``. A secret is handed to a
reader when it is global or has exactly the reader's scope (:meth:`Scope.admits`); so an applet
gets the global secrets and its own, and the settings only global ones. The operator's
``ghapplets secrets get`` (:data:`CLI`) has no scope: it reads any secret. The audit log
(:mod:`ghapplets.secrets.audit`) names readers as ``applet:<name>``, ``source:<name>``,
``connector:<name>`` or ``cli``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from ghapplets.applets.model import NAME_PATTERN
from ghapplets.exceptions import InvalidSecret

OWNER_RE = re.compile(NAME_PATTERN)


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
        if kind in (ScopeKind.APPLET, ScopeKind.BLUEPRINT) and OWNER_RE.match(owner):
            return cls(ScopeKind(kind), owner)
        raise InvalidSecret(
            f"invalid scope {text!r}: use global, applet:<name> or blueprint:<name> "
            "(a name of lower case letters, digits, '.', '_' or '-')"
        )

    @classmethod
    def applet(cls, name: str) -> Scope:
        return cls(ScopeKind.APPLET, name)

    @classmethod
    def blueprint(cls, name: str) -> Scope:
        return cls(ScopeKind.BLUEPRINT, name)

    def admits(self, reader: Scope) -> bool:
        """May ``reader`` have a secret of this scope?"""
        return self.kind is ScopeKind.GLOBAL or self == reader


GLOBAL = Scope(ScopeKind.GLOBAL)


class ReaderKind(StrEnum):
    APPLET = "applet"  # its declared secrets, for a job or ``ghapplets invoke``
    BLUEPRINT = "blueprint"  # its ``use.secrets``, for a run
    SOURCE = "source"  # ``${secret:name}`` in a source's settings
    CONNECTOR = "connector"  # ``${secret:name}`` in a connector's settings
    PLATFORM = "platform"  # ``${secret:name}`` in the platform's own settings (logging...)
    CLI = "cli"  # the operator: ``ghapplets secrets get``


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads a secret: the scope it reads as, and its name in the audit log."""

    kind: ReaderKind
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else str(self.kind)

    @classmethod
    def applet(cls, name: str) -> Reader:
        return cls(ReaderKind.APPLET, name)

    @classmethod
    def blueprint(cls, name: str) -> Reader:
        return cls(ReaderKind.BLUEPRINT, name)

    @classmethod
    def source(cls, name: str) -> Reader:
        return cls(ReaderKind.SOURCE, name)

    @classmethod
    def connector(cls, name: str) -> Reader:
        return cls(ReaderKind.CONNECTOR, name)

    @classmethod
    def platform(cls, setting: str) -> Reader:
        return cls(ReaderKind.PLATFORM, setting)

    @property
    def scope(self) -> Scope | None:
        """The scope this reader reads as; None for the operator, who reads any."""
        if self.kind is ReaderKind.CLI:
            return None
        if self.kind is ReaderKind.APPLET:
            return Scope.applet(self.name)
        return Scope.blueprint(self.name) if self.kind is ReaderKind.BLUEPRINT else GLOBAL

    def describe(self) -> str:
        """The reader in an error message."""
        if self.kind in (ReaderKind.APPLET, ReaderKind.BLUEPRINT):
            return f"{self.kind} {self.name!r}"
        if self.kind is ReaderKind.CLI:
            return "the operator"
        return f"the settings of {self.kind} {self.name!r}"


CLI = Reader(ReaderKind.CLI)
