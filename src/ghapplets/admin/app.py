"""The admin API as a Starlette application: every declared route (:mod:`.routes`) behind the
authenticator, with bounded parameters and bodies, every error a problem document, and the
OpenAPI document at ``/api/v1/openapi.json``.

A route's work, in order: authenticate (401), check the role (403), validate the query (400
naming the parameter), read and validate the body (413, 415, 400), run the handler. Answers
carry ``Cache-Control: no-store``: they hold operational data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from ghapplets.admin import openapi
from ghapplets.admin.access import Access
from ghapplets.admin.auth import Authenticator
from ghapplets.admin.context import AdminContext
from ghapplets.admin.endpoint import Call, Endpoint
from ghapplets.admin.problems import ApiProblem, bad_parameter, forbidden, problem_of
from ghapplets.admin.routes import ENDPOINTS
from ghapplets.exceptions import GhappletsError
from ghapplets.logging import get_logger

log = get_logger("ghapplets.admin")
MAX_BODY = 64 * 1024  # bytes of a request body
MAX_QUERY = 4096  # bytes of a query string
NO_STORE = {"cache-control": "no-store"}


def validation_problem(exc: ValidationError, where: str) -> ApiProblem:
    errors: list[Mapping[str, str]] = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or where
        message = "unknown parameter" if error["type"] == "extra_forbidden" else error["msg"]
        errors.append({"parameter": name, "message": message})
    first = errors[0]
    problem = bad_parameter(first["parameter"], first["message"])
    problem.errors = errors
    return problem


def parse_query(model: type[BaseModel] | None, request: Request) -> BaseModel | None:
    raw = request.scope.get("query_string", b"")
    if len(raw) > MAX_QUERY:
        raise ApiProblem(400, "bad-parameter", f"the query string is over {MAX_QUERY} bytes")
    items = request.query_params.multi_items()
    if model is None:
        if items:
            raise bad_parameter(items[0][0], "unknown parameter (this route takes none)")
        return None
    values: dict[str, str] = {}
    for name, value in items:
        if name in values:
            raise bad_parameter(name, "given more than once")
        values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise validation_problem(exc, "query") from None


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiProblem(413, "too-large", f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiProblem(413, "too-large", f"the body is over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiProblem(400, "body-timeout", f"the body did not arrive in {timeout:g} s") from None
    return b"".join(chunks)


class AdminApi:
    def __init__(
        self,
        ctx: AdminContext,
        auth: Authenticator,
        endpoints: Sequence[Endpoint] = ENDPOINTS,
        *,
        body_timeout: float = 30.0,
    ) -> None:
        self.ctx = ctx
        self.auth = auth
        self.endpoints = tuple(endpoints)
        names = [ep.operation_id for ep in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"two routes have one handler name: {sorted(names)}")
        self.body_timeout = body_timeout
        self._openapi: bytes | None = None
        docs = Route("/openapi.json", self.openapi_json, methods=["GET"], name="openapi")
        routes: list[BaseRoute] = [self._route(ep) for ep in self.endpoints]
        self.app = Starlette(
            routes=[Mount("/api/v1", routes=[docs, *routes])],
            exception_handlers={HTTPException: self._http_error},
        )

    def access_of(self, route_name: str) -> Access:
        """The access the route of that name needs: its declaration's, or PUBLIC for the
        OpenAPI document. KeyError for a route nobody declared (a test walks every route)."""
        if route_name == "openapi":
            return Access.PUBLIC
        return {ep.operation_id: ep.access for ep in self.endpoints}[route_name]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def openapi_document(self) -> dict[str, Any]:
        return openapi.document(self.endpoints)

    async def openapi_json(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = orjson.dumps(self.openapi_document())
        return Response(self._openapi, media_type="application/json")

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "error")
        detail = {
            404: f"no route {request.url.path} (see /api/v1/openapi.json)",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(exc.status_code, str(exc.detail))
        return ApiProblem(exc.status_code, kind, detail, headers=exc.headers).response(
            request.url.path
        )

    def _route(self, ep: Endpoint) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                call = await self._call(ep, request)
                result = await ep.handler(call)
            except ApiProblem as refused:
                return refused.response(request.url.path)
            except GhappletsError as exc:
                failed = problem_of(exc)
                if failed.status >= 500:
                    log.error("admin API request failed", route=ep.path, error=str(exc))
                return failed.response(request.url.path)
            except Exception as exc:  # a bug: a problem document, and the log says what
                log.exception("admin API request failed", route=ep.path, error=repr(exc))
                return problem_of(GhappletsError()).response(request.url.path)
            body = orjson.dumps(result.model_dump(mode="json", by_alias=True))
            return Response(
                body, status_code=ep.status, media_type="application/json", headers=NO_STORE
            )

        endpoint.__name__ = ep.operation_id
        return Route(ep.path, endpoint, methods=[ep.method], name=ep.operation_id)

    async def _call(self, ep: Endpoint, request: Request) -> Call:
        principal = None
        if ep.access != Access.PUBLIC:
            principal = await self.auth.principal(request)
            if not principal.may(ep.access):
                raise forbidden(
                    f"the role {principal.role.value} may not {ep.method} {ep.path}"
                    f" (it needs {ep.access.value})"
                )
        query = parse_query(ep.query, request)
        body = None
        if ep.body is not None:
            body = await self._body(ep.body, request)
        return Call(request, self.ctx, principal, dict(request.path_params), query, body)

    async def _body(self, model: type[BaseModel], request: Request) -> BaseModel:
        raw = await read_body(request, MAX_BODY, self.body_timeout)
        data: Any = {}
        if raw.strip():
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise ApiProblem(415, "media-type", "the body must be application/json")
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise bad_parameter("body", f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise bad_parameter("body", "must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise validation_problem(exc, "body") from None
