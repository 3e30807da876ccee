"""Behaviours the DSL's conformance scenarios check (the specification's ctk features: data
flow, flow directives, switch defaults, for, fork, emit, raise, try, HTTP and OpenAPI calls),
written here against local mocks of the services they call."""

from __future__ import annotations

from ghapplets.blueprints.host import HttpRequest
from ghapplets.testing.blueprints import BlueprintHarness
from tests.blueprints.conftest import blueprint

PET = {"id": 1, "name": "milou", "status": "available"}


def test_task_input_and_output_filtering_with_non_object_output(
    harness: BlueprintHarness,
) -> None:
    harness.mock_http("GET", "https://petstore.example/v2/pet/*", lambda r: {"id": int(r.uri[-1])})
    report = harness.run(
        blueprint("""
            do:
              - getPetById1:
                  call: http
                  with:
                    method: get
                    endpoint:
                      uri: https://petstore.example/v2/pet/{petId}
                  output:
                    as: .id
              - getPetById2:
                  call: http
                  with:
                    method: get
                    endpoint:
                      uri: https://petstore.example/v2/pet/2
                  output:
                    as: '{ ids: [ $input, .id ] }'
        """),
        {"petId": 1},
    )
    assert report.output == {"ids": [1, 2]}
    subject = harness.run(
        blueprint("""
            do:
              - setPlayerId:
                  input:
                    from: .user.claims.subject
                  set:
                    playerId: ${ . }
        """),
        {"user": {"claims": {"subject": "6AsnRgGEB0q2O7ux9JXFAw"}}},
    )
    assert subject.output == {"playerId": "6AsnRgGEB0q2O7ux9JXFAw"}


def test_explicit_flow_and_switch_defaults(harness: BlueprintHarness) -> None:
    explicit = harness.run(
        blueprint("""
            do:
              - setRed:
                  set:
                    colors: '${ .colors + [ "red" ] }'
                  then: setGreen
              - setBlue:
                  set:
                    colors: '${ .colors + [ "blue" ] }'
                  then: end
              - setGreen:
                  set:
                    colors: '${ .colors + [ "green" ] }'
                  then: setBlue
        """)
    )
    assert explicit.output == {"colors": ["red", "green", "blue"]}
    assert [t.name for t in explicit.tasks] == ["setRed", "setGreen", "setBlue"]
    implicit_default = harness.run(
        blueprint("""
            do:
              - switchColor:
                  switch:
                    - red:
                        when: '.color == "red"'
                        then: setRed
                  then: end
              - setRed:
                  set:
                    colors: '${ .colors + [ "red" ] }'
        """),
        {"color": "yellow"},
    )
    assert implicit_default.output == {"color": "yellow"}
    assert [t.name for t in implicit_default.tasks] == ["switchColor"]


def test_for_with_the_default_index_and_fork_compete(harness: BlueprintHarness) -> None:
    looped = harness.run(
        blueprint("""
            do:
              - loopColors:
                  for:
                    each: color
                    in: '.colors'
                  do:
                    - markProcessed:
                        set:
                          processed: '${ { colors: (.processed.colors + [ $color ]), indexes: (.processed.indexes + [ $index ])} }'
        """),  # noqa: E501
        {"colors": ["red", "green", "blue"]},
    )
    assert looped.output == {
        "processed": {"colors": ["red", "green", "blue"], "indexes": [0, 1, 2]}
    }
    raced = harness.run(
        blueprint("""
            do:
              - branchWithCompete:
                  fork:
                    compete: true
                    branches:
                      - setRed:
                          set:
                            colors: ${ .colors + ["red"] }
                      - setGreen:
                          set:
                            colors: ${ .colors + ["green"] }
        """)
    )
    assert len(raced.output["colors"]) == 1


def test_raise_and_try_with_the_older_type_spelling(harness: BlueprintHarness) -> None:
    raised = harness.run(
        blueprint("""
            do:
              - raiseError:
                  raise:
                    error:
                      status: 400
                      type: https://serverlessworkflow.io/errors/types/compliance
                      title: Compliance Error
        """)
    )
    assert raised.status == "faulted"
    assert raised.error == {
        "status": 400,
        "type": "https://serverlessworkflow.io/errors/types/compliance",
        "title": "Compliance Error",
        "instance": "/do/0/raiseError",
    }
    harness.mock_http("GET", "https://petstore.example/v2/pet/getPetByName/*", {}, status=404)
    text = """
        do:
          - tryGetPet:
              try:
                - getPet:
                    call: http
                    with:
                      method: get
                      endpoint:
                        uri: https://petstore.example/v2/pet/getPetByName/{petName}
              catch:
                errors:
                  with:
                    type: https://serverlessworkflow.io/dsl/errors/types/communication
                    status: STATUS
                as: err
                do:
                  - setError:
                      set:
                        error: ${ $err }
    """
    caught = harness.run(blueprint(text.replace("STATUS", "404")), {"petName": "Milou"})
    assert caught.status == "completed", caught.error
    error = caught.output["error"]
    assert {"type", "status", "title"} <= set(error)
    assert error["instance"] == "/do/0/tryGetPet/try/0/getPet"
    missed = harness.run(blueprint(text.replace("STATUS", "503")), {"petName": "Milou"})
    assert missed.status == "faulted"


def test_http_query_in_the_uri_template_and_basic_authentication(
    harness: BlueprintHarness,
) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http(
        "GET", "https://petstore.example/v2/pet/findByStatus*", lambda r: seen.append(r) or [PET]
    )
    found = harness.run(
        blueprint("""
            do:
              - findPet:
                  call: http
                  with:
                    method: get
                    endpoint:
                      uri: https://petstore.example/v2/pet/findByStatus?status={status}
                  output:
                    as: .[0]
        """),
        {"status": "available"},
    )
    assert found.output == PET
    assert seen[0].uri == "https://petstore.example/v2/pet/findByStatus?status=available"


def test_openapi_on_a_swagger_2_document(harness: BlueprintHarness) -> None:
    swagger = {
        "swagger": "2.0",
        "host": "petstore.example",
        "basePath": "/v2",
        "schemes": ["https", "http"],
        "paths": {
            "/pet/findByStatus": {
                "get": {
                    "operationId": "findPetsByStatus",
                    "parameters": [{"name": "status", "in": "query", "type": "array"}],
                }
            },
            "/pet/{petId}": {
                "get": {
                    "operationId": "getPetById",
                    "parameters": [{"name": "petId", "in": "path", "type": "integer"}],
                }
            },
        },
    }
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://petstore.example/v2/swagger.json", swagger)
    harness.mock_http("GET", "https://petstore.example/v2/pet/*", lambda r: seen.append(r) or PET)
    report = harness.run(
        blueprint("""
            do:
              - getPet:
                  call: openapi
                  with:
                    document:
                      endpoint: https://petstore.example/v2/swagger.json
                    operationId: getPetById
                    parameters:
                      petId: ${ .petId }
                    output: response
        """),
        {"petId": 1},
    )
    assert report.status == "completed", report.error
    assert seen[0].uri == "https://petstore.example/v2/pet/1"
    assert report.output["statusCode"] == 200
    assert report.output["content"] == PET
    assert set(report.output["request"]) == {"method", "uri", "headers"}
