"""The event model: CloudEvents 1.0 as Ghapplets uses them (sans-I/O)."""

from ghapplets.events.cloudevent import CloudEvent, InboundRequest

__all__ = ["CloudEvent", "InboundRequest"]
