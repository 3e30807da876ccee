"""Ghapplets: verified webhooks, a durable queue, and applets in any language.

The applet SDK is re-exported here (``from ghapplets import Applet, Context, RetryableError``)
and loaded lazily on first use, so ``import ghapplets`` stays cheap and never pulls in the
server (gateway, store, broker, HTTP server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ghapplets.sdk import (
        Applet,
        AppletError,
        CloudEvent,
        Context,
        PermanentError,
        RetryableError,
    )

__all__ = [
    "Applet",
    "AppletError",
    "CloudEvent",
    "Context",
    "PermanentError",
    "RetryableError",
    "__version__",
]

_SDK_NAMES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        import ghapplets.sdk

        value = getattr(ghapplets.sdk, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ghapplets' has no attribute {name!r}")
