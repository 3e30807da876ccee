"""A route of the admin API, declared once: method, path, the access it needs, its models and
its handler. The application (:mod:`.app`) serves the declarations, the OpenAPI document
(:mod:`.openapi`) describes them, and the tests check every one's access rule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel
from starlette.requests import Request

from ghapplets.admin.access import Access, Principal

if TYPE_CHECKING:
    from ghapplets.admin.context import AdminContext

M = TypeVar("M", bound=BaseModel)


@dataclass
class Call:
    """One request to a handler: who (``principal``; None on a public route), the path's
    parameters, and the validated query and body models."""

    request: Request
    ctx: AdminContext
    principal: Principal | None
    path: dict[str, str]
    query: BaseModel | None = None
    body: BaseModel | None = None

    def query_as(self, model: type[M]) -> M:
        assert isinstance(self.query, model)
        return self.query

    def body_as(self, model: type[M]) -> M:
        assert isinstance(self.body, model)
        return self.body

    @property
    def who(self) -> Principal:
        assert self.principal is not None  # only public routes have none
        return self.principal


Handler = Callable[[Call], Awaitable[BaseModel]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # below /api/v1, Starlette's syntax: {name} or {name:path}
    access: Access
    handler: Handler = field(compare=False)
    summary: str
    response: type[BaseModel]
    tag: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()  # besides 400/401/403, the errors it may answer

    @property
    def operation_id(self) -> str:
        return self.handler.__name__
