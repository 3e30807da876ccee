"""The catalogue of source kinds: kind name -> :class:`Source` class and its settings model.

The config loader validates a ``sources:`` entry with :func:`settings_model` and the gateway
builds the endpoints with :func:`build_sources`, which resolves their secrets first.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from ghapplets.logging import register_secret
from ghapplets.secrets.refs import LookupFor, resolve
from ghapplets.secrets.scopes import Reader
from ghapplets.sources.base import Source, SourceSettings
from ghapplets.sources.bitbucket import BitbucketSource
from ghapplets.sources.generic import GenericSource
from ghapplets.sources.github import GitHubSource
from ghapplets.sources.gitlab import GitLabSource
from ghapplets.sources.jira import JiraSource
from ghapplets.sources.servicenow import ServiceNowSource
from ghapplets.sources.splunk import SplunkSource

SOURCE_KINDS: dict[str, type[Source]] = {
    cls.kind: cls
    for cls in (
        GitHubSource,
        JiraSource,
        BitbucketSource,
        GitLabSource,
        ServiceNowSource,
        SplunkSource,
        GenericSource,
    )
}


def _unknown(kind: str) -> ValueError:
    close = difflib.get_close_matches(kind, SOURCE_KINDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(sorted(SOURCE_KINDS))
    return ValueError(f"unknown source kind {kind!r}{hint}; known kinds: {known}")


def source_class(kind: str) -> type[Source]:
    """The :class:`Source` subclass for ``kind``; ``ValueError`` naming the known kinds."""
    try:
        return SOURCE_KINDS[kind]
    except KeyError:
        raise _unknown(kind) from None


def settings_model(kind: str) -> type[SourceSettings]:
    """The settings model that validates a ``sources:`` entry of ``kind``."""
    return source_class(kind).settings_model


def build_source(name: str, settings: SourceSettings, secrets: Sequence[bytes]) -> Source:
    """Build the source ``name`` of ``settings.kind``; settings that are not yet the kind's own
    model (a bare :class:`SourceSettings`) are re-validated against it."""
    return source_class(settings.kind)(name, settings, secrets)


async def build_sources(
    settings: Mapping[str, SourceSettings], lookup_for: LookupFor
) -> dict[str, Source]:
    """Every configured source, with its ``secret`` / ``previous_secret`` references resolved
    (``lookup_for(Reader.source(name))`` reads ``${secret:name}`` for the source ``name``) and
    registered for redaction from the logs."""
    sources: dict[str, Source] = {}
    for name, entry in settings.items():
        lookup = lookup_for(Reader.source(name))
        secrets: list[bytes] = []
        for ref in (entry.secret, entry.previous_secret):
            if ref:
                value = await resolve(ref, lookup)
                register_secret(value)
                secrets.append(value.encode())
        sources[name] = build_source(name, entry, secrets)
    return sources
