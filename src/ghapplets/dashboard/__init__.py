"""The web dashboard: server-rendered pages (Jinja2, autoescaped) at the root of the admin
address, over the admin API's own handlers (:mod:`ghapplets.admin`), with live updates by
server-sent events (htmx and its SSE extension, vendored under ``static/vendor``).

:class:`~ghapplets.dashboard.site.AdminSite` serves it beside ``/api/v1``; see docs/dashboard.md.
"""

from __future__ import annotations

from ghapplets.dashboard.app import Dashboard
from ghapplets.dashboard.site import AdminSite

__all__ = ["AdminSite", "Dashboard"]
