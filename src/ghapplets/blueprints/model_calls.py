"""Pydantic models of the ``with`` arguments of the DSL's built-in calls: HTTP, OpenAPI, gRPC, A2A
and MCP (AsyncAPI's, which hold tasks, are in :mod:`.model_tasks`).

They follow the DSL reference and the official JSON Schema (see :mod:`.model_base` for the
conventions). gRPC, A2A and MCP are modelled so that a file using them gets precise errors, and
then refused by :mod:`.checks`: this runtime does not execute them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from ghapplets.blueprints.model_auth import (
    Endpoint,
    ExternalResource,
    ReferenceableAuthentication,
)
from ghapplets.blueprints.model_base import (
    Closed,
    Duration,
    NonEmpty,
    RuntimeExpression,
    shape,
)

OutputFormat = Literal["raw", "content", "response"]

HeadersOrExpression = Annotated[
    Annotated[RuntimeExpression, Tag("<string>")] | Annotated[dict[str, str], Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="headers",
        custom_error_message="expected a mapping of header names to strings, or a runtime "
        "expression",
    ),
]
QueryOrExpression = Annotated[
    Annotated[RuntimeExpression, Tag("<string>")] | Annotated[dict[str, Any], Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="query",
        custom_error_message="expected a mapping of query parameters, or a runtime expression",
    ),
]


class HttpArguments(Closed):
    """``call: http``. Headers map to strings (the JSON Schema); query values may be anything
    (the reference: ``map[string, any]``)."""

    nullable = frozenset({"body"})

    method: NonEmpty
    endpoint: Endpoint
    headers: HeadersOrExpression | None = None
    body: Any = None
    query: QueryOrExpression | None = None
    output: OutputFormat | None = None
    redirect: bool | None = None


class OpenApiArguments(Closed):
    """``call: openapi``."""

    document: ExternalResource
    operation_id: NonEmpty = Field(alias="operationId")
    parameters: dict[str, Any] | None = None
    authentication: ReferenceableAuthentication | None = None
    output: OutputFormat | None = None
    redirect: bool | None = None


_HOST = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-.]{0,61}[a-zA-Z0-9])?$")


def _host(value: str) -> str:
    if not _HOST.match(value):
        raise PydanticCustomError(
            "host", "expected a host name (got {value})", {"value": repr(value)}
        )
    return value


class GrpcService(Closed):
    name: str
    host: Annotated[str, AfterValidator(_host)]
    port: int | None = Field(None, ge=0, le=65535)
    authentication: ReferenceableAuthentication | None = None


class GrpcArguments(Closed):
    """``call: grpc`` (refused: not executed by this runtime)."""

    proto: ExternalResource
    service: GrpcService
    method: str
    arguments: dict[str, Any] | None = None


A2aMethod = Literal[
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/list",
    "tasks/cancel",
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
]

Parameters = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[dict[str, Any], Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="parameters",
        custom_error_message="expected a mapping of parameters or a runtime expression",
    ),
]


class A2aArguments(Closed):
    """``call: a2a`` (refused). ``agentCard`` or ``server`` is required."""

    agent_card: ExternalResource | None = Field(None, alias="agentCard")
    server: Endpoint | None = None
    method: A2aMethod
    parameters: Parameters | None = None

    @model_validator(mode="after")
    def _target(self) -> A2aArguments:
        if not self.present("agentCard", "server"):
            raise PydanticCustomError("a2a", "set agentCard or server")
        if isinstance(self.parameters, dict) and not self.parameters:
            raise PydanticCustomError("a2a", "parameters, when a mapping, cannot be empty")
        return self


class McpHttpTransport(Closed):
    endpoint: Endpoint
    headers: dict[str, str] | None = None


class McpStdioTransport(Closed):
    command: str
    arguments: list[str] | None = None
    environment: dict[str, str] | None = None


class McpTransport(Closed):
    http: McpHttpTransport | None = None
    stdio: McpStdioTransport | None = None
    options: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one(self) -> McpTransport:
        self.one_of("http", "stdio")
        return self


class McpClient(Closed):
    name: str
    version: str


McpMethod = Literal[
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
]


class McpArguments(Closed):
    """``call: mcp`` (refused)."""

    protocol_version: str = Field("2025-06-18", alias="protocolVersion")
    method: McpMethod
    parameters: Parameters | None = None
    timeout: Duration | None = None
    transport: McpTransport
    client: McpClient | None = None


__all__ = [
    "A2aArguments",
    "GrpcArguments",
    "HttpArguments",
    "McpArguments",
    "OpenApiArguments",
]
