"""call tasks: http (URI templates, query, headers, body, outputs, statuses, redirects, the
authentication policies), openapi, functions, applets and actions."""

from __future__ import annotations

import base64

import orjson

from ghapplets.blueprints.errors import ErrorKind
from ghapplets.blueprints.host import HttpRequest
from ghapplets.testing.blueprints import BlueprintHarness
from tests.blueprints.conftest import blueprint


def http_task(with_: str, output: str = "") -> str:
    return blueprint(f"""
        do:
          - getPet:
              call: http
              with:
{with_}
{output}
    """)


def test_http_endpoint_template_query_headers_and_content(harness: BlueprintHarness) -> None:
    seen: list[HttpRequest] = []

    def answer(request: HttpRequest) -> dict:
        seen.append(request)
        return {"id": 7, "name": "milou"}

    harness.mock_http("GET", "https://petstore.example/v2/pet/*", answer)
    report = harness.run(
        http_task("""                method: get
                endpoint: https://petstore.example/v2/pet/{petId}
                query:
                  expand: ${ .expand }
                headers:
                  X-Trace: ${ "t-" + .petId }"""),
        {"petId": "7", "expand": "owner"},
    )
    assert report.status == "completed", report.error
    assert report.output == {"id": 7, "name": "milou"}
    assert seen[0].uri == "https://petstore.example/v2/pet/7"
    assert seen[0].query == {"expand": "owner"}
    assert seen[0].headers["X-Trace"] == "t-7"
    assert seen[0].method == "GET"


def test_http_uri_template_encodes_values(harness: BlueprintHarness) -> None:
    seen: list[str] = []
    harness.mock_http("GET", "https://api.example/*", lambda r: seen.append(r.uri) or {})
    harness.run(
        http_task("""                method: get
                endpoint:
                  uri: https://api.example/items/{id}"""),
        {"id": "../admin?x=1"},
    )
    assert seen == ["https://api.example/items/..%2Fadmin%3Fx%3D1"]


def test_http_output_response_and_raw(harness: BlueprintHarness) -> None:
    harness.mock_http("POST", "https://api.example/orders", {"ok": 1}, status=201)
    report = harness.run(
        http_task(
            """                method: post
                endpoint: https://api.example/orders
                body:
                  item: ${ .item }""",
            "                output: response",
        ),
        {"item": "a"},
    )
    response = report.output
    assert response["statusCode"] == 201
    assert response["content"] == {"ok": 1}
    assert response["request"]["method"] == "post"
    assert response["request"]["uri"] == "https://api.example/orders"
    assert response["headers"]["content-type"] == "application/json"
    raw = harness.run(
        http_task(
            """                method: post
                endpoint: https://api.example/orders""",
            "                output: raw",
        )
    ).output
    assert base64.b64decode(raw) == orjson.dumps({"ok": 1})


def test_http_error_status_is_a_communication_error(harness: BlueprintHarness) -> None:
    harness.mock_http("GET", "https://api.example/missing", {"message": "nope"}, status=404)
    report = harness.run(
        http_task("""                method: get
                endpoint: https://api.example/missing""")
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.COMMUNICATION.type
    assert report.error["status"] == 404
    assert report.error["instance"] == "/do/0/getPet"
    assert "nope" in report.error["detail"]


def test_http_redirect_is_an_error_unless_allowed(harness: BlueprintHarness) -> None:
    harness.mock_http(
        "GET", "https://api.example/old", None, status=302, headers={"location": "/new"}
    )
    denied = harness.run(
        http_task("""                method: get
                endpoint: https://api.example/old""")
    )
    assert denied.status == "faulted"
    assert denied.error["status"] == 302
    allowed = harness.run(
        http_task(
            """                method: get
                endpoint: https://api.example/old
                redirect: true""",
            "                output: response",
        )
    )
    assert allowed.output["statusCode"] == 302


def test_http_basic_and_bearer_authentication(harness: BlueprintHarness) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://secure.example/*", lambda r: seen.append(r) or {})
    harness.run(
        http_task("""                method: get
                endpoint:
                  uri: https://secure.example/a
                  authentication:
                    basic:
                      username: admin
                      password: ${ .password }"""),
        {"password": "s3cret"},
    )
    assert (
        seen[-1].headers["Authorization"] == "Basic " + base64.b64encode(b"admin:s3cret").decode()
    )
    harness.secrets["apiToken"] = {"token": "tok-1"}
    report = harness.run(
        blueprint("""
            use:
              secrets: [apiToken]
              authentications:
                api:
                  bearer:
                    use: apiToken
            do:
              - get:
                  call: http
                  with:
                    method: get
                    endpoint:
                      uri: https://secure.example/b
                      authentication:
                        use: api
                  output:
                    as: ${ $authorization.scheme }
        """)
    )
    assert report.status == "completed", report.error
    assert seen[-1].headers["Authorization"] == "Bearer tok-1"
    assert report.output == "Bearer"


def test_http_oauth2_client_credentials(harness: BlueprintHarness) -> None:
    tokens: list[HttpRequest] = []
    seen: list[HttpRequest] = []

    def token(request: HttpRequest) -> dict:
        tokens.append(request)
        return {"access_token": f"at-{len(tokens)}", "expires_in": 3600}

    harness.mock_http("POST", "https://auth.example/oauth2/token", token)
    harness.mock_http("GET", "https://api.example/*", lambda r: seen.append(r) or {})
    report = harness.run(
        blueprint("""
            use:
              authentications:
                idp:
                  oauth2:
                    authority: https://auth.example
                    grant: client_credentials
                    client:
                      id: runtime
                      secret: shh
                    scopes: [api, read]
            do:
              - one:
                  call: http
                  with:
                    method: get
                    endpoint:
                      uri: https://api.example/1
                      authentication:
                        use: idp
              - two:
                  call: http
                  with:
                    method: get
                    endpoint:
                      uri: https://api.example/2
                      authentication:
                        use: idp
        """)
    )
    assert report.status == "completed", report.error
    assert len(tokens) == 1  # the token is reused until it expires
    assert tokens[0].form == {
        "grant_type": "client_credentials",
        "client_id": "runtime",
        "client_secret": "shh",
        "scope": "api read",
    }
    assert [r.headers["Authorization"] for r in seen] == ["Bearer at-1", "Bearer at-1"]


def test_http_oauth2_refused_is_an_authentication_error(harness: BlueprintHarness) -> None:
    harness.mock_http("POST", "https://auth.example/token", {"error": "invalid_client"}, status=401)
    report = harness.run(
        http_task("""                method: get
                endpoint:
                  uri: https://api.example/1
                  authentication:
                    oauth2:
                      authority: https://auth.example
                      endpoints:
                        token: /token
                      grant: client_credentials
                      client:
                        id: runtime
                        secret: wrong""")
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.AUTHENTICATION.type
    assert report.error["status"] == 401


PETSTORE = {
    "openapi": "3.0.0",
    "servers": [{"url": "/api/v3"}],
    "paths": {
        "/pet/findByStatus": {
            "get": {
                "operationId": "findPetsByStatus",
                "parameters": [{"name": "status", "in": "query"}],
            }
        },
        "/pet/{petId}": {
            "parameters": [{"name": "petId", "in": "path"}],
            "post": {
                "operationId": "updatePet",
                "parameters": [{"name": "X-Request", "in": "header"}],
                "requestBody": {"content": {"application/json": {}}},
            },
        },
    },
}


def test_openapi_call_places_parameters_as_the_document_says(harness: BlueprintHarness) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://petstore.example/openapi.json", PETSTORE)
    harness.mock_http("*", "https://petstore.example/api/v3/*", lambda r: seen.append(r) or [1])
    report = harness.run(
        blueprint("""
            do:
              - find:
                  call: openapi
                  with:
                    document:
                      endpoint: https://petstore.example/openapi.json
                    operationId: findPetsByStatus
                    parameters:
                      status: available
              - update:
                  call: openapi
                  with:
                    document:
                      endpoint: https://petstore.example/openapi.json
                    operationId: updatePet
                    parameters:
                      petId: 7
                      X-Request: r1
                      name: rex
        """)
    )
    assert report.status == "completed", report.error
    assert seen[0].uri == "https://petstore.example/api/v3/pet/findByStatus"
    assert seen[0].query == {"status": "available"}
    assert seen[1].method == "POST"
    assert seen[1].uri == "https://petstore.example/api/v3/pet/7"
    assert seen[1].headers["X-Request"] == "r1"
    assert seen[1].body == {"name": "rex"}
    assert harness.count("http", "GET https://petstore.example/openapi.json") == 1


def test_openapi_unknown_operation_is_a_configuration_error(harness: BlueprintHarness) -> None:
    harness.mock_http("GET", "https://petstore.example/openapi.json", PETSTORE)
    report = harness.run(
        blueprint("""
            do:
              - find:
                  call: openapi
                  with:
                    document:
                      endpoint: https://petstore.example/openapi.json
                    operationId: nope
        """)
    )
    assert report.error["type"] == ErrorKind.CONFIGURATION.type


def test_applet_and_action_calls_get_with_and_a_stable_key(harness: BlueprintHarness) -> None:
    harness.mock_applet("fibo", lambda data: {"fib": data["n"] * 2})
    harness.mock_action("jira.create_issue", lambda data: {"key": "OPS-1", "got": data})
    report = harness.run(
        blueprint("""
            do:
              - compute:
                  call: fibo
                  with:
                    n: ${ .n }
              - ticket:
                  call: jira.create_issue
                  with:
                    project: OPS
                    summary: ${ "fib is " + (.fib | tostring) }
        """),
        {"n": 5},
    )
    assert report.status == "completed", report.error
    assert report.output == {"key": "OPS-1", "got": {"project": "OPS", "summary": "fib is 10"}}
    calls = [(c.kind, c.name, c.key) for c in harness.calls]
    assert calls == [
        ("applet", "fibo", "test-run/do/0/compute"),
        ("action", "jira.create_issue", "test-run/do/1/ticket"),
    ]


def test_a_function_of_use_functions_runs_with_its_arguments(harness: BlueprintHarness) -> None:
    harness.mock_http("GET", "https://api.example/pets", lambda r: {"status": r.query["status"]})
    report = harness.run(
        blueprint("""
            use:
              functions:
                getPets:
                  call: http
                  with:
                    method: get
                    endpoint: https://api.example/pets
                    query:
                      status: ${ .status }
            do:
              - pets:
                  call: getPets
                  with:
                    status: sold
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == {"status": "sold"}
