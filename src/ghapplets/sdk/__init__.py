"""The Python applet SDK: everything a handler needs, and nothing of the server.

``from ghapplets.sdk import Applet, Context`` (also re-exported from ``ghapplets``).
"""

from ghapplets.events.cloudevent import CloudEvent
from ghapplets.exceptions import AppletError, PermanentError, RetryableError
from ghapplets.sdk.app import Applet, Handler
from ghapplets.sdk.context import Context, Secrets

__all__ = [
    "Applet",
    "AppletError",
    "CloudEvent",
    "Context",
    "Handler",
    "PermanentError",
    "RetryableError",
    "Secrets",
]
