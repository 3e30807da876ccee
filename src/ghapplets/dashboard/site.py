"""One ASGI application for the admin address: the admin API at ``/api/v1`` and, unless
``server.dashboard.enabled`` is false, the dashboard at every other path."""

from __future__ import annotations

from typing import Any

from ghapplets.admin.app import AdminApi
from ghapplets.dashboard.app import Dashboard

API_PREFIX = "/api/"


class AdminSite:
    def __init__(self, api: AdminApi, dashboard: Dashboard | None) -> None:
        self.api = api
        self.dashboard = dashboard

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        if self.dashboard is None or path == "/api" or path.startswith(API_PREFIX):
            await self.api(scope, receive, send)
            return
        await self.dashboard(scope, receive, send)

    def close(self) -> None:
        """The server is shutting down: end the dashboard's live streams."""
        if self.dashboard is not None:
            self.dashboard.close()
