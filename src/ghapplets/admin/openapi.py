"""The OpenAPI 3.1 document of the admin API, generated from the route declarations
(:class:`~.endpoint.Endpoint`) and their pydantic models: nothing in it is written by hand, so
it describes exactly what the application serves."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ghapplets import __version__
from ghapplets.admin.access import LEAST_ROLE, Access
from ghapplets.admin.auth import SESSION_COOKIE
from ghapplets.admin.endpoint import Endpoint
from ghapplets.admin.problems import MEDIA_TYPE, TITLES
from ghapplets.admin.schemas import Problem

PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def openapi_path(path: str) -> str:
    """A Starlette path (``{id:path}``) as an OpenAPI path template (``{id}``)."""
    return PREFIX + _PATH_PARAM.sub(r"{\1}", path)


def _schemas(
    endpoints: Sequence[Endpoint],
) -> tuple[dict[tuple[type[BaseModel], JsonSchemaMode], Any], dict[str, Any]]:
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Problem, "serialization")}
    for ep in endpoints:
        wanted.add((ep.response, "serialization"))
        if ep.query is not None:
            wanted.add((ep.query, "validation"))
        if ep.body is not None:
            wanted.add((ep.body, "validation"))
    ordered = sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1]))
    refs, defs = models_json_schema(ordered, ref_template=REF)
    found: dict[tuple[type[BaseModel], JsonSchemaMode], Any] = {}
    for (model, mode), schema in refs.items():
        assert isinstance(model, type) and issubclass(model, BaseModel)
        found[(model, mode)] = schema
    return found, defs.get("$defs", {})


def _content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def _operation(
    ep: Endpoint,
    refs: dict[tuple[type[BaseModel], JsonSchemaMode], Any],
    components: dict[str, Any],
) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(ep.path)
    ]
    if ep.query is not None:
        name = refs[(ep.query, "validation")]["$ref"].rsplit("/", 1)[1]
        model = components[name]
        for field, schema in model.get("properties", {}).items():
            params.append(
                {
                    "name": field,
                    "in": "query",
                    "required": field in model.get("required", []),
                    "schema": schema,
                    **({"description": schema["description"]} if "description" in schema else {}),
                }
            )
    problem = _content(refs[(Problem, "serialization")], MEDIA_TYPE)
    responses: dict[str, Any] = {
        str(ep.status): {
            "description": ep.summary,
            "content": _content(refs[(ep.response, "serialization")]),
        }
    }
    errors = set(ep.errors)
    if ep.query is not None or ep.body is not None:
        errors.add(400)
    if ep.body is not None:
        errors |= {413, 415}
    if ep.access != Access.PUBLIC:
        errors |= {401, 403}
    for status in sorted(errors):
        responses[str(status)] = {"description": TITLES.get(status, "Error"), "content": problem}
    operation: dict[str, Any] = {
        "operationId": ep.operation_id,
        "summary": ep.summary,
        "tags": [ep.tag],
        "parameters": params,
        "responses": responses,
    }
    if ep.access == Access.PUBLIC:
        operation["security"] = []
    else:
        operation["description"] = f"Needs the role {LEAST_ROLE[ep.access].value} or higher."
        operation["security"] = [{"bearer": []}, {"session": []}]
    if ep.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": _content(refs[(ep.body, "validation")]),
        }
    return operation


def document(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    refs, components = _schemas(endpoints)
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(openapi_path(ep.path), {})[ep.method.lower()] = _operation(
            ep, refs, components
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ghapplets admin API",
            "version": __version__,
            "description": "Deliveries, jobs, dead letters, blueprint runs and the project's "
            "applets, sources and blueprints; replays and run controls. See docs/admin-api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
