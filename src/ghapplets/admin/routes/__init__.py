"""The admin API's handlers, one module per resource; :data:`ENDPOINTS` declares them all."""

from __future__ import annotations

from ghapplets.admin.endpoint import Endpoint
from ghapplets.admin.routes import catalog, deliveries, jobs, runs, system

ENDPOINTS: tuple[Endpoint, ...] = (
    *deliveries.ENDPOINTS,
    *jobs.ENDPOINTS,
    *runs.ENDPOINTS,
    *catalog.ENDPOINTS,
    *system.ENDPOINTS,
)
