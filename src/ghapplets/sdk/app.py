"""The Python applet object: ``app = Applet("name")`` and ``@app.on(type, when=...)``.

This module only records handlers and their subscriptions; the Python runtime
(:mod:`ghapplets.applets.python_runtime`) imports the applet module, matches events to handlers
and calls them. Handlers take one :class:`~ghapplets.sdk.context.Context` and may be
``async def`` (awaited on the worker's event loop) or plain functions (run in a thread).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ghapplets.applets.model import NAME_PATTERN, Subscription
from ghapplets.sdk.context import Context

HandlerFunc = Callable[[Context], Any]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Handler:
    """One decorated function and the subscriptions it was registered for."""

    func: HandlerFunc
    subscriptions: tuple[Subscription, ...]
    is_async: bool

    @property
    def name(self) -> str:
        return getattr(self.func, "__qualname__", repr(self.func))


def _is_async(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


class Applet:
    """A Python applet: a name and the handlers registered with :meth:`on`.

    >>> app = Applet("triage")
    >>> @app.on("com.github.issues.opened", when='.data.issue.body == ""')
    ... async def ask_for_details(ctx: Context) -> dict[str, str]:
    ...     return {"asked": ctx.subject or ""}
    """

    def __init__(self, name: str, *, description: str | None = None) -> None:
        if not re.match(NAME_PATTERN, name):
            raise ValueError(f"applet name {name!r} must match {NAME_PATTERN}")
        self.name = name
        self.description = description
        self._handlers: list[Handler] = []

    def __repr__(self) -> str:
        return f"Applet({self.name!r}, handlers={[h.name for h in self._handlers]!r})"

    def on(self, *types: str, when: str | None = None) -> Callable[[F], F]:
        """Register the decorated function for events whose ``type`` matches any of ``types``
        (``*`` matches any run of characters) and, if given, whose jq ``when`` condition on
        the structured event is truthy. The function is returned unchanged."""
        if not types or not all(isinstance(t, str) and t for t in types):
            raise ValueError("Applet.on() needs at least one non-empty event type pattern")
        subs = tuple(Subscription(type=t, when=when) for t in types)

        def register(func: F) -> F:
            if not callable(func):
                raise TypeError(f"@{self.name}.on(...) must decorate a function, got {func!r}")
            self._handlers.append(Handler(func, subs, _is_async(func)))
            return func

        return register

    def handle(self, func: HandlerFunc, subscriptions: list[Subscription]) -> None:
        """Register ``func`` for ``subscriptions`` without the decorator."""
        self._handlers.append(Handler(func, tuple(subscriptions), _is_async(func)))

    @property
    def handlers(self) -> tuple[Handler, ...]:
        return tuple(self._handlers)

    @property
    def subscriptions(self) -> list[Subscription]:
        """Every distinct subscription of every handler, in registration order."""
        seen: dict[Subscription, None] = {}
        for handler in self._handlers:
            for sub in handler.subscriptions:
                seen.setdefault(sub, None)
        return list(seen)
