"""Ghapplets: verified webhooks, a durable queue, and applets in any language."""

__version__ = "0.1.0"
