"""Keyset pages: ask the store for one record more than the page holds, to know whether a next
page exists, and make its cursor from the last record shown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ghapplets.admin.params import decode_cursor, encode_cursor

R = TypeVar("R")


async def page(
    kind: str,
    shape: Sequence[type],
    cursor: str | None,
    limit: int,
    fetch: Callable[[Any, int], Awaitable[list[R]]],
    key: Callable[[R], Sequence[Any]],
) -> tuple[list[R], str | None]:
    """Up to ``limit`` records after ``cursor`` and the cursor of the page after them (None
    when this is the last)."""
    after = decode_cursor(cursor, kind, shape)
    found = await fetch(after, limit + 1)
    if len(found) <= limit:
        return found, None
    shown = found[:limit]
    return shown, encode_cursor(kind, key(shown[-1]))
