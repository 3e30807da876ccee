"""The OpenAPI document at /api/v1/openapi.json: generated from the declarations, valid
OpenAPI 3.1 (openapi-spec-validator), public, and naming every route with its access and its
errors; an answer matches the schema the document gives it."""

from __future__ import annotations

import jsonschema
from openapi_spec_validator import validate

from ghapplets.admin.openapi import openapi_path
from ghapplets.admin.routes import ENDPOINTS
from ghapplets.store.records import Role
from tests.admin.harness import Admin, delivery


async def test_the_document_is_valid_openapi_3_1_and_describes_every_route(
    embedded_admin: Admin,
) -> None:
    answer = await embedded_admin.get("/api/v1/openapi.json", None)
    assert answer.status_code == 200
    doc = answer.json()
    validate(doc)  # raises OpenAPIValidationError when it is not valid OpenAPI 3.1
    assert doc["openapi"] == "3.1.0"
    for ep in ENDPOINTS:
        operation = doc["paths"][openapi_path(ep.path)][ep.method.lower()]
        assert str(ep.status) in operation["responses"]
        assert {"401", "403"} <= set(operation["responses"])
        assert operation["security"]
    listing = doc["paths"]["/api/v1/deliveries"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names == {
        "limit",
        "cursor",
        "since",
        "until",
        "source",
        "type",
        "subject",
        "q",
        "status",
        "applet",
    }


async def test_an_answer_matches_its_documented_schema(embedded_admin: Admin) -> None:
    doc = (await embedded_admin.get("/api/v1/openapi.json", None)).json()
    await embedded_admin.store.record_dispatch([delivery(1), delivery(2)], [])
    page = await embedded_admin.ok("/api/v1/deliveries", Role.VIEWER, limit=1)
    schema = {
        "$ref": "#/components/schemas/DeliveryPage",
        "components": doc["components"],
    }
    jsonschema.validate(page, schema, cls=jsonschema.Draft202012Validator)
    bad = await embedded_admin.get("/api/v1/deliveries", Role.VIEWER, limit=0)
    problem = {"$ref": "#/components/schemas/Problem", "components": doc["components"]}
    jsonschema.validate(bad.json(), problem, cls=jsonschema.Draft202012Validator)
