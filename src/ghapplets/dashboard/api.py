"""The admin API's handlers, called in-process: a page gets its data exactly as ``/api/v1``
would answer it, with the same access rule per route, the same validated parameters and the
same redaction (a viewer's payloads), so the dashboard cannot show or do more than the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from ghapplets.admin.access import Principal
from ghapplets.admin.app import AdminApi, validation_problem
from ghapplets.admin.endpoint import Call, Endpoint
from ghapplets.admin.problems import forbidden


class ApiCalls:
    """Calls the routes of an :class:`~ghapplets.admin.app.AdminApi` by their handler's name
    (``list_deliveries``, ``replay_job_now``...)."""

    def __init__(self, api: AdminApi) -> None:
        self.api = api
        self.ctx = api.ctx
        self.endpoints: dict[str, Endpoint] = {ep.operation_id: ep for ep in api.endpoints}

    def allowed(self, principal: Principal, name: str) -> bool:
        """May ``principal`` call the route ``name``? (Buttons are shown by this.)"""
        return principal.may(self.endpoints[name].access)

    async def call(
        self,
        request: Request,
        principal: Principal,
        name: str,
        *,
        path: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """The route's answer model; ApiProblem (403, 400, 404...) as the API would answer."""
        ep = self.endpoints[name]
        if not principal.may(ep.access):
            raise forbidden(
                f"the role {principal.role.value} may not do this (it needs {ep.access.value})"
            )
        q = _validated(ep.query, query, "query")
        b = _validated(ep.body, body, "body")
        call = Call(request, self.ctx, principal, dict(path or {}), q, b)
        return await ep.handler(call)


def _validated(
    model: type[BaseModel] | None, values: Mapping[str, Any] | None, where: str
) -> BaseModel | None:
    if model is None:
        return None
    try:
        return model.model_validate(dict(values or {}))
    except ValidationError as exc:
        raise validation_problem(exc, where) from None
