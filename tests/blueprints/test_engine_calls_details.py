"""call tasks in detail: what exactly goes on the wire and what comes back.

- ``call: http``: an endpoint given as an expression, non-string query and header values, the
  body rendered from the task input, headers that use ``$authorization``, the status ranges with
  and without ``redirect``, failures to connect and timeouts, the error detail (first 500 bytes
  of the answer, bad UTF-8 replaced), the content decoded by its content type (JSON, ``+json``,
  text, XML, YAML, none, anything else as base64).
- authentication: basic from a secret with an empty user or password, policies whose values come
  from loop variables; OAuth2 client credentials (RFC 6749): ``client_secret_basic`` against
  ``client_secret_post``, ``audiences``, the JSON request encoding, the token endpoint relative
  to the authority (with a path and a trailing slash), tokens cached per client, scopes and
  audiences until 30 s before they expire (300 s when the endpoint says nothing), a token
  endpoint that refuses or answers no ``access_token``.
- ``call: openapi``: the base URL of the document (OpenAPI 3 servers and their variables,
  Swagger 2 ``schemes``/``host``/``basePath``, a document without either), parameters the call
  does not give, a Swagger 2 ``in: body`` parameter, path extensions, an authenticated document
  and operation, ``redirect``, a document that cannot be fetched.
- ``call: <applet>`` without ``with`` gets the task input.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from ghapplets.blueprints.errors import ErrorKind
from ghapplets.blueprints.host import HttpRequest
from ghapplets.testing.blueprints import BlueprintHarness
from tests.blueprints.conftest import blueprint


def _basic(pair: str) -> str:
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _recorder(seen: list[HttpRequest], answer: Any = None) -> Callable[[HttpRequest], Any]:
    def record(request: HttpRequest) -> Any:
        seen.append(request)
        return {} if answer is None else answer

    return record


def _token_endpoint(
    tokens: list[HttpRequest], expires_in: float | None = 3600
) -> Callable[[HttpRequest], Any]:
    def token(request: HttpRequest) -> Any:
        tokens.append(request)
        answer: dict[str, Any] = {"access_token": f"at-{len(tokens)}", "token_type": "Bearer"}
        if expires_in is not None:
            answer["expires_in"] = expires_in
        return answer

    return token


def _header(request: HttpRequest, name: str) -> str | None:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return None


# -- call: <applet> -----------------------------------------------------------------------------
def test_an_applet_call_without_with_gets_the_task_input(harness: BlueprintHarness) -> None:
    harness.mock_applet("echo", lambda data: {"got": data})
    report = harness.run(
        blueprint("""
            do:
              - again:
                  call: echo
        """),
        {"n": 3},
    )
    assert report.status == "completed", report.error
    assert report.output == {"got": {"n": 3}}


# -- call: http: the request ----------------------------------------------------------------------
def test_http_endpoint_may_be_a_runtime_expression(harness: BlueprintHarness) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://api.example/*", _recorder(seen, {"ok": True}))
    report = harness.run(
        blueprint("""
            do:
              - get:
                  call: http
                  with:
                    method: get
                    endpoint: ${ "https://api.example/items/" + .id + "/detail" }
        """),
        {"id": "42"},
    )
    assert report.status == "completed", report.error
    assert [r.uri for r in seen] == ["https://api.example/items/42/detail"]


def test_http_body_is_rendered_from_the_task_input(harness: BlueprintHarness) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("POST", "https://api.example/orders", _recorder(seen))
    report = harness.run(
        blueprint("""
            do:
              - order:
                  call: http
                  with:
                    method: post
                    endpoint: https://api.example/orders
                    body:
                      item: ${ .item }
                      quantity: ${ .quantity }
        """),
        {"item": "pen", "quantity": 2},
    )
    assert report.status == "completed", report.error
    assert seen[0].body == {"item": "pen", "quantity": 2}


def test_http_query_and_header_values_that_are_numbers_or_booleans_are_sent_as_text(
    harness: BlueprintHarness,
) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://api.example/pets", _recorder(seen))
    report = harness.run(
        blueprint("""
            do:
              - list:
                  call: http
                  with:
                    method: get
                    endpoint: https://api.example/pets
                    query:
                      limit: ${ .limit }
                      ratio: ${ .ratio }
                    headers:
                      X-Dry-Run: ${ .dry }
        """),
        {"limit": 10, "ratio": 0.5, "dry": True},
    )
    assert report.status == "completed", report.error
    assert seen[0].query == {"limit": "10", "ratio": "0.5"}
    assert seen[0].headers["X-Dry-Run"] == "true"


def test_http_headers_may_use_the_resolved_authorization(harness: BlueprintHarness) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://api.example/me", _recorder(seen))
    report = harness.run(
        blueprint("""
            do:
              - me:
                  call: http
                  with:
                    method: get
                    endpoint:
                      uri: https://api.example/me
                      authentication:
                        bearer:
                          token: tok-9
                    headers:
                      X-Forwarded-Authorization: >-
                        ${ $authorization.scheme + " " + $authorization.parameter }
        """)
    )
    assert report.status == "completed", report.error
    assert seen[0].headers["Authorization"] == "Bearer tok-9"
    assert seen[0].headers["X-Forwarded-Authorization"] == "Bearer tok-9"


def test_authentication_values_may_come_from_loop_variables(harness: BlueprintHarness) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://api.example/me", _recorder(seen))
    report = harness.run(
        blueprint("""
            do:
              - each:
                  for:
                    each: account
                    in: ${ .accounts }
                  do:
                    - me:
                        call: http
                        with:
                          method: get
                          endpoint:
                            uri: https://api.example/me
                            authentication:
                              basic:
                                username: ${ $account.user }
                                password: ${ $account.password }
        """),
        {"accounts": [{"user": "ann", "password": "a1"}, {"user": "bob", "password": "b2"}]},
    )
    assert report.status == "completed", report.error
    assert [r.headers["Authorization"] for r in seen] == [_basic("ann:a1"), _basic("bob:b2")]


@pytest.mark.parametrize(
    ("secret", "pair"),
    [
        ({"username": "sk_live_123"}, "sk_live_123:"),  # an API key as user, no password
        ({"password": "api-key"}, ":api-key"),  # an API key as password, no user
    ],
)
def test_basic_authentication_from_a_secret_without_user_or_password_sends_it_empty(
    harness: BlueprintHarness, secret: dict[str, str], pair: str
) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://api.example/charges", _recorder(seen))
    harness.secrets["payments"] = secret
    report = harness.run(
        blueprint("""
            use:
              secrets: [payments]
            do:
              - charges:
                  call: http
                  with:
                    method: get
                    endpoint:
                      uri: https://api.example/charges
                      authentication:
                        basic:
                          use: payments
        """)
    )
    assert report.status == "completed", report.error
    assert seen[0].headers["Authorization"] == _basic(pair)


# -- call: http: the response ---------------------------------------------------------------------
def _get(redirect: bool = False, output: str = "content") -> str:
    return blueprint(f"""
        do:
          - get:
              call: http
              with:
                method: get
                endpoint: https://api.example/thing
                redirect: {str(redirect).lower()}
                output: {output}
    """)


@pytest.mark.parametrize(
    ("status", "redirect", "accepted"),
    [
        (200, False, True),
        (299, False, True),
        (300, False, False),
        (399, True, True),
        (400, True, False),
        (199, True, False),
    ],
)
def test_http_statuses_accepted_with_and_without_redirect(
    harness: BlueprintHarness, status: int, redirect: bool, accepted: bool
) -> None:
    harness.mock_http("GET", "https://api.example/thing", {"ok": 1}, status=status)
    report = harness.run(_get(redirect, "response"))
    if accepted:
        assert report.status == "completed", report.error
        assert report.output["statusCode"] == status
    else:
        assert report.status == "faulted"
        assert report.error["type"] == ErrorKind.COMMUNICATION.type
        assert report.error["status"] == status


def test_http_error_detail_has_the_first_500_bytes_of_the_answer(
    harness: BlueprintHarness,
) -> None:
    body = b"\xff" + b"a" * 499 + b"b" * 100
    harness.mock_http("GET", "https://api.example/thing", body, status=502)
    report = harness.run(_get())
    assert report.status == "faulted"
    assert report.error["status"] == 502
    assert report.error["detail"] == (
        "GET https://api.example/thing answered 502: \ufffd" + "a" * 499
    )


def test_http_failure_to_connect_is_a_communication_error(harness: BlueprintHarness) -> None:
    def refuse(request: HttpRequest) -> Any:
        raise ConnectionRefusedError("connection refused")

    harness.mock_http("GET", "https://api.example/thing", refuse)
    report = harness.run(_get())
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.COMMUNICATION.type
    assert report.error["status"] == 503
    assert report.error["detail"] == "GET https://api.example/thing failed: connection refused"
    assert report.error["instance"] == "/do/0/get"


def test_http_timeout_is_a_timeout_error(harness: BlueprintHarness) -> None:
    def slow(request: HttpRequest) -> Any:
        raise TimeoutError

    harness.mock_http("GET", "https://api.example/thing", slow)
    report = harness.run(_get())
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.TIMEOUT.type
    assert report.error["status"] == ErrorKind.TIMEOUT.status
    assert report.error["detail"] == "GET https://api.example/thing timed out"
    assert report.error["instance"] == "/do/0/get"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json; charset=utf-8", b'{"a": 1}', {"a": 1}),
        ("Application/JSON", b"[1, 2]", [1, 2]),
        ("application/problem+json", b'{"title": "gone"}', {"title": "gone"}),
        ("application/json", b"not json", "not json"),
        ("application/json", b"\xffoops", "\ufffdoops"),
        ("text/plain", b"hello", "hello"),
        ("text/csv; charset=utf-8", b"a,\xff", "a,\ufffd"),
        ("application/xml", b"<pet/>", "<pet/>"),
        ("application/yaml", b"name: rex", "name: rex"),
        (None, b"no type", "no type"),
        ("application/octet-stream", b"\x00\x01\xfe", base64.b64encode(b"\x00\x01\xfe").decode()),
        ("image/png", b"\x89PNG", base64.b64encode(b"\x89PNG").decode()),
    ],
)
def test_http_content_is_decoded_by_its_content_type(
    harness: BlueprintHarness, content_type: str | None, body: bytes, expected: Any
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    harness.mock_http("GET", "https://api.example/thing", body, headers=headers)
    report = harness.run(_get())
    assert report.status == "completed", report.error
    assert report.output == expected


def test_http_raw_output_is_the_content_in_base64(harness: BlueprintHarness) -> None:
    harness.mock_http("GET", "https://api.example/thing", b"\x00\xff", headers={"X": "y"})
    report = harness.run(_get(output="raw"))
    assert report.output == "AP8="


# -- OAuth2 client credentials ------------------------------------------------------------------
def _oauth2_call(policy: str, uri: str = "https://api.example/1") -> str:
    return blueprint(f"""
        do:
          - one:
              call: http
              with:
                method: get
                endpoint:
                  uri: {uri}
                  authentication:
                    oauth2:
{policy}
    """)


def test_oauth2_client_secret_basic_sends_the_credentials_in_the_header(
    harness: BlueprintHarness,
) -> None:
    tokens: list[HttpRequest] = []
    seen: list[HttpRequest] = []
    harness.mock_http("POST", "https://auth.example/oauth2/token", _token_endpoint(tokens))
    harness.mock_http("GET", "https://api.example/*", _recorder(seen))
    report = harness.run(
        _oauth2_call("""                      authority: https://auth.example
                      grant: client_credentials
                      client:
                        id: runtime
                        secret: shh
                        authentication: client_secret_basic""")
    )
    assert report.status == "completed", report.error
    assert len(tokens) == 1
    assert tokens[0].method == "POST"
    assert _header(tokens[0], "Authorization") == _basic("runtime:shh")
    assert _header(tokens[0], "Accept") == "application/json"
    assert tokens[0].form == {"grant_type": "client_credentials"}
    assert seen[0].headers["Authorization"] == "Bearer at-1"


def test_oauth2_client_secret_post_sends_the_credentials_in_the_form(
    harness: BlueprintHarness,
) -> None:
    tokens: list[HttpRequest] = []
    harness.mock_http("POST", "https://auth.example/oauth2/token", _token_endpoint(tokens))
    harness.mock_http("GET", "https://api.example/*", {})
    report = harness.run(
        _oauth2_call("""                      authority: https://auth.example
                      grant: client_credentials
                      client:
                        id: runtime
                        secret: shh
                        authentication: client_secret_post
                      audiences: [orders, billing]""")
    )
    assert report.status == "completed", report.error
    assert _header(tokens[0], "Authorization") is None
    assert _header(tokens[0], "Accept") == "application/json"
    assert tokens[0].form == {
        "grant_type": "client_credentials",
        "client_id": "runtime",
        "client_secret": "shh",
        "audience": "orders billing",
    }
    assert tokens[0].body is None


def test_oauth2_token_request_may_be_json(harness: BlueprintHarness) -> None:
    tokens: list[HttpRequest] = []
    harness.mock_http("POST", "https://auth.example/oauth2/token", _token_endpoint(tokens))
    harness.mock_http("GET", "https://api.example/*", {})
    report = harness.run(
        _oauth2_call("""                      authority: https://auth.example
                      grant: client_credentials
                      client:
                        id: runtime
                        secret: shh
                      scopes: [read]
                      audiences: [orders, billing]
                      request:
                        encoding: application/json""")
    )
    assert report.status == "completed", report.error
    assert tokens[0].method == "POST"
    assert tokens[0].form is None
    assert tokens[0].body == {
        "grant_type": "client_credentials",
        "client_id": "runtime",
        "client_secret": "shh",
        "scope": "read",
        "audience": "orders billing",
    }


def test_oauth2_token_endpoint_is_relative_to_the_authority(harness: BlueprintHarness) -> None:
    tokens: list[HttpRequest] = []
    harness.mock_http("POST", "https://idp.example/*", _token_endpoint(tokens))
    harness.mock_http("GET", "https://api.example/*", {})
    report = harness.run(
        _oauth2_call("""                      authority: https://idp.example/realms/APEX/
                      endpoints:
                        token: /protocol/openid-connect/token
                      grant: client_credentials
                      client:
                        id: runtime
                        secret: shh""")
    )
    assert report.status == "completed", report.error
    assert [r.uri for r in tokens] == [
        "https://idp.example/realms/APEX/protocol/openid-connect/token"
    ]


def test_oauth2_default_token_endpoint_with_a_trailing_slash_authority(
    harness: BlueprintHarness,
) -> None:
    tokens: list[HttpRequest] = []
    harness.mock_http("POST", "https://auth.example/*", _token_endpoint(tokens))
    harness.mock_http("GET", "https://api.example/*", {})
    report = harness.run(
        _oauth2_call("""                      authority: https://auth.example/
                      grant: client_credentials
                      client:
                        id: runtime
                        secret: shh""")
    )
    assert report.status == "completed", report.error
    assert [r.uri for r in tokens] == ["https://auth.example/oauth2/token"]


OAUTH2_POLICIES = """
    use:
      authentications:
        base:
          oauth2:
            authority: https://auth.example
            grant: client_credentials
            client: {id: runtime, secret: shh}
            scopes: [read]
            audiences: [orders]
        otherClient:
          oauth2:
            authority: https://auth.example
            grant: client_credentials
            client: {id: reporter, secret: shh}
            scopes: [read]
            audiences: [orders]
        otherScopes:
          oauth2:
            authority: https://auth.example
            grant: client_credentials
            client: {id: runtime, secret: shh}
            scopes: [write]
            audiences: [orders]
        otherAudiences:
          oauth2:
            authority: https://auth.example
            grant: client_credentials
            client: {id: runtime, secret: shh}
            scopes: [read]
            audiences: [billing]
        sameWithSlash:
          oauth2:
            authority: https://auth.example/
            grant: client_credentials
            client: {id: runtime, secret: shh}
            scopes: [read]
            audiences: [orders]
"""


def _call(i: int, policy: str) -> str:
    return f"""
  - call{i}:
      call: http
      with:
        method: get
        endpoint:
          uri: https://api.example/{i}
          authentication:
            use: {policy}"""


def _calls(*policies: str) -> str:
    tasks = "".join(_call(i, policy) for i, policy in enumerate(policies))
    return blueprint(textwrap.dedent(OAUTH2_POLICIES) + "do:" + tasks)


def test_oauth2_tokens_are_cached_per_client_scopes_and_audiences(
    harness: BlueprintHarness,
) -> None:
    tokens: list[HttpRequest] = []
    seen: list[HttpRequest] = []
    harness.mock_http("POST", "https://auth.example/oauth2/token", _token_endpoint(tokens))
    harness.mock_http("GET", "https://api.example/*", _recorder(seen))
    report = harness.run(
        _calls("base", "otherClient", "otherScopes", "otherAudiences", "base", "sameWithSlash")
    )
    assert report.status == "completed", report.error
    assert [r.headers["Authorization"] for r in seen] == [
        "Bearer at-1",
        "Bearer at-2",
        "Bearer at-3",
        "Bearer at-4",
        "Bearer at-1",
        "Bearer at-1",  # the same authority, written with a trailing slash
    ]
    assert [(r.form or {}).get("client_id") for r in tokens] == [
        "runtime",
        "reporter",
        "runtime",
        "runtime",
    ]


def _calls_with_waits(*waits: str) -> str:
    tasks = ""
    for i, wait in enumerate(["", *waits]):
        if wait:
            tasks += f"""
  - pause{i}:
      wait: {wait}"""
        tasks += _call(i, "base")
    return blueprint(textwrap.dedent(OAUTH2_POLICIES) + "do:" + tasks)


@pytest.mark.parametrize(
    ("expires_in", "waits", "expected"),
    [
        # renewed 30 s before it expires: reused until then, not at that instant
        (60, ["PT29S", "PT1S"], ["at-1", "at-1", "at-2"]),
        # an endpoint that says nothing: 300 s
        (None, ["PT269S", "PT1S"], ["at-1", "at-1", "at-2"]),
        # shorter-lived than the margin: never reused
        (10, [], ["at-1", "at-2"]),
    ],
)
def test_oauth2_token_is_reused_until_shortly_before_it_expires(
    harness: BlueprintHarness, expires_in: float | None, waits: list[str], expected: list[str]
) -> None:
    tokens: list[HttpRequest] = []
    seen: list[HttpRequest] = []
    harness.mock_http(
        "POST", "https://auth.example/oauth2/token", _token_endpoint(tokens, expires_in)
    )
    harness.mock_http("GET", "https://api.example/*", _recorder(seen))
    report = harness.run(_calls_with_waits(*waits) if waits else _calls("base", "base"))
    assert report.status == "completed", report.error
    assert [r.headers["Authorization"] for r in seen] == [f"Bearer {t}" for t in expected]


@pytest.mark.parametrize("status", [299, 300, 302, 400])
def test_oauth2_token_endpoint_status_outside_2xx_is_an_authentication_error(
    harness: BlueprintHarness, status: int
) -> None:
    harness.mock_http(
        "POST", "https://auth.example/oauth2/token", {"access_token": "at-x"}, status=status
    )
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://api.example/*", _recorder(seen))
    report = harness.run(_calls("base"))
    if status == 299:
        assert report.status == "completed", report.error
        assert seen[0].headers["Authorization"] == "Bearer at-x"
        return
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.AUTHENTICATION.type
    assert report.error["status"] == 401
    assert report.error["detail"] == (
        f"the token endpoint https://auth.example/oauth2/token answered {status}"
    )
    assert seen == []


@pytest.mark.parametrize(
    "answer",
    [
        {"token_type": "Bearer"},
        "<html>login</html>",
        [1],
        {"access_token": "at", "expires_in": "soon"},
    ],
)
def test_oauth2_token_endpoint_without_access_token_is_an_authentication_error(
    harness: BlueprintHarness, answer: Any
) -> None:
    harness.mock_http("POST", "https://auth.example/oauth2/token", answer)
    report = harness.run(_calls("base"))
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.AUTHENTICATION.type
    assert report.error["status"] == 401
    assert report.error["detail"] == (
        "the token endpoint https://auth.example/oauth2/token answered no access_token"
        " (or an expires_in that is no number of seconds)"
    )
    assert report.error["instance"] == "/do/0/call0"


# -- call: openapi ------------------------------------------------------------------------------
def _openapi(doc_uri: str, operation: str, parameters: str = "", extra: str = "") -> str:
    return blueprint(f"""
        do:
          - op:
              call: openapi
              with:
                document:
                  endpoint: {doc_uri}
                operationId: {operation}
{parameters}
{extra}
    """)


LIST_PETS = {"/pets": {"get": {"operationId": "listPets"}}}


@pytest.mark.parametrize(
    ("doc_uri", "document", "expected"),
    [
        # OpenAPI 3: the first server, its variables replaced by their defaults
        (
            "https://docs.example/openapi.json",
            {
                "openapi": "3.0.0",
                "servers": [
                    {
                        "url": "https://{region}.api.example/{version}",
                        "variables": {
                            "region": {"default": "eu", "enum": ["eu", "us"]},
                            "version": {"default": "v2"},
                        },
                    },
                    {"url": "https://backup.example"},
                ],
            },
            "https://eu.api.example/v2/pets",
        ),
        # a server URL with a trailing slash
        (
            "https://docs.example/openapi.json",
            {"openapi": "3.0.0", "servers": [{"url": "https://api.example/v3/"}]},
            "https://api.example/v3/pets",
        ),
        # a server URL whose path ends in a capital X
        (
            "https://docs.example/openapi.json",
            {"openapi": "3.0.0", "servers": [{"url": "https://erp.example/APEX/"}]},
            "https://erp.example/APEX/pets",
        ),
        # a relative server URL: relative to where the document is
        (
            "https://docs.example/specs/openapi.json",
            {"openapi": "3.0.0", "servers": [{"url": "v3"}]},
            "https://docs.example/specs/v3/pets",
        ),
        # a server without a URL: the host of the document
        (
            "https://docs.example/specs/openapi.json",
            {"openapi": "3.0.0", "servers": [{"description": "production"}]},
            "https://docs.example/pets",
        ),
        # no servers at all: the host of the document
        (
            "http://docs.example:8080/specs/openapi.json",
            {"openapi": "3.0.0"},
            "http://docs.example:8080/pets",
        ),
        # Swagger 2: https preferred among the schemes
        (
            "http://docs.example/swagger.json",
            {
                "swagger": "2.0",
                "host": "petstore.example",
                "basePath": "/v2",
                "schemes": ["http", "https"],
            },
            "https://petstore.example/v2/pets",
        ),
        # Swagger 2: the only scheme, even when the document is served over https
        (
            "https://docs.example/swagger.json",
            {
                "swagger": "2.0",
                "host": "legacy.example:8080",
                "basePath": "/api",
                "schemes": ["http"],
            },
            "http://legacy.example:8080/api/pets",
        ),
        # Swagger 2 without host, basePath and schemes: where the document is
        (
            "http://docs.example:8080/swagger.json",
            {"swagger": "2.0"},
            "http://docs.example:8080/pets",
        ),
        # Swagger 2 without host or basePath, but with schemes
        (
            "http://docs.example/swagger.json",
            {"swagger": "2.0", "schemes": ["https"]},
            "https://docs.example/pets",
        ),
    ],
)
def test_openapi_base_url_of_the_document(
    harness: BlueprintHarness, doc_uri: str, document: dict[str, Any], expected: str
) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", doc_uri, {**document, "paths": LIST_PETS})
    harness.mock_http("GET", expected, _recorder(seen, [{"id": 1}]))
    report = harness.run(_openapi(doc_uri, "listPets"))
    assert report.status == "completed", report.error
    assert report.output == [{"id": 1}]
    assert [r.uri for r in seen] == [expected]


SHOP = {
    "openapi": "3.0.0",
    "servers": [{"url": "https://shop.example"}],
    "paths": {
        "x-owner": "team-pets",
        "/health": {"get": {"operationId": "health"}},
        "/pets": {
            "summary": "the pets",
            "get": {
                "operationId": "listPets",
                "parameters": [
                    {"name": "limit", "in": "query"},
                    {"name": "status", "in": "query"},
                    {"name": "X-Tenant", "in": "header"},
                ],
            },
        },
    },
}


def test_openapi_parameters_the_call_does_not_give_are_left_out(
    harness: BlueprintHarness,
) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://shop.example/openapi.json", SHOP)
    harness.mock_http("GET", "https://shop.example/*", _recorder(seen))
    report = harness.run(
        _openapi(
            "https://shop.example/openapi.json",
            "listPets",
            """                parameters:
                  status: sold
                  verbose: true""",
        )
    )
    assert report.status == "completed", report.error
    assert seen[0].uri == "https://shop.example/pets"
    assert seen[0].query == {"status": "sold"}
    assert "X-Tenant" not in seen[0].headers
    assert seen[0].body is None


def test_openapi_operation_without_parameters(harness: BlueprintHarness) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://shop.example/openapi.json", SHOP)
    harness.mock_http("GET", "https://shop.example/*", _recorder(seen, {"up": True}))
    report = harness.run(_openapi("https://shop.example/openapi.json", "health"))
    assert report.status == "completed", report.error
    assert report.output == {"up": True}
    assert [(r.uri, dict(r.query)) for r in seen] == [("https://shop.example/health", {})]


def test_openapi_query_values_that_are_numbers_are_sent_as_text(
    harness: BlueprintHarness,
) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://shop.example/openapi.json", SHOP)
    harness.mock_http("GET", "https://shop.example/*", _recorder(seen))
    report = harness.run(
        _openapi(
            "https://shop.example/openapi.json",
            "listPets",
            """                parameters:
                  limit: 20
                  X-Tenant: acme""",
        )
    )
    assert report.status == "completed", report.error
    assert seen[0].query == {"limit": "20"}
    assert seen[0].headers["X-Tenant"] == "acme"


SWAGGER = {
    "swagger": "2.0",
    "host": "petstore.example",
    "basePath": "/v2",
    "schemes": ["https"],
    "paths": {
        "/pet/{petId}": {
            "post": {
                "operationId": "updatePet",
                "parameters": [
                    {"name": "petId", "in": "path"},
                    {"name": "pet", "in": "body"},
                ],
            }
        }
    },
}


def test_swagger2_body_parameter_is_the_request_body(harness: BlueprintHarness) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://petstore.example/v2/swagger.json", SWAGGER)
    harness.mock_http("POST", "https://petstore.example/v2/pet/*", _recorder(seen))
    report = harness.run(
        _openapi(
            "https://petstore.example/v2/swagger.json",
            "updatePet",
            """                parameters:
                  petId: 7
                  pet:
                    name: rex""",
        )
    )
    assert report.status == "completed", report.error
    assert seen[0].uri == "https://petstore.example/v2/pet/7"
    assert seen[0].body == {"name": "rex"}


PETS = {
    "openapi": "3.0.0",
    "servers": [{"url": "https://pets.example/api"}],
    "paths": {
        "/pets/{petId}": {
            "parameters": [{"name": "petId", "in": "path"}],
            "get": {"operationId": "getPet"},
        }
    },
}


def test_openapi_parameters_may_use_loop_variables_with_and_without_authentication(
    harness: BlueprintHarness,
) -> None:
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://pets.example/openapi.json", PETS)
    harness.mock_http("GET", "https://pets.example/api/*", _recorder(seen))
    report = harness.run(
        blueprint("""
            do:
              - each:
                  for:
                    each: id
                    in: ${ .ids }
                  do:
                    - anonymous:
                        call: openapi
                        with:
                          document:
                            endpoint: https://pets.example/openapi.json
                          operationId: getPet
                          parameters:
                            petId: ${ $id }
                    - signed:
                        call: openapi
                        with:
                          document:
                            endpoint: https://pets.example/openapi.json
                          operationId: getPet
                          authentication:
                            bearer:
                              token: tok-1
                          parameters:
                            petId: ${ $id }
        """),
        {"ids": [3, 4]},
    )
    assert report.status == "completed", report.error
    assert [(r.uri, _header(r, "Authorization")) for r in seen] == [
        ("https://pets.example/api/pets/3", None),
        ("https://pets.example/api/pets/3", "Bearer tok-1"),
        ("https://pets.example/api/pets/4", None),
        ("https://pets.example/api/pets/4", "Bearer tok-1"),
    ]
    assert harness.count("http", "GET https://pets.example/openapi.json") == 1


def test_openapi_document_is_fetched_with_its_endpoint_authentication(
    harness: BlueprintHarness,
) -> None:
    documents: list[HttpRequest] = []
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://pets.example/openapi.json", _recorder(documents, PETS))
    harness.mock_http("GET", "https://pets.example/api/*", _recorder(seen))
    report = harness.run(
        blueprint("""
            do:
              - get:
                  call: openapi
                  with:
                    document:
                      endpoint:
                        uri: https://pets.example/openapi.json
                        authentication:
                          basic:
                            username: reader
                            password: r3ad
                    operationId: getPet
                    parameters:
                      petId: 5
        """)
    )
    assert report.status == "completed", report.error
    assert documents[0].headers["Authorization"] == _basic("reader:r3ad")
    assert seen[0].uri == "https://pets.example/api/pets/5"
    assert _header(seen[0], "Authorization") is None


def test_openapi_redirect_may_be_allowed(harness: BlueprintHarness) -> None:
    harness.mock_http("GET", "https://pets.example/openapi.json", PETS)
    harness.mock_http(
        "GET", "https://pets.example/api/*", None, status=303, headers={"location": "/x"}
    )
    parameters = """                parameters:
                  petId: 5"""
    denied = harness.run(_openapi("https://pets.example/openapi.json", "getPet", parameters))
    assert denied.status == "faulted"
    assert denied.error["status"] == 303
    allowed = harness.run(
        _openapi(
            "https://pets.example/openapi.json",
            "getPet",
            parameters,
            """                redirect: true
                output: response""",
        )
    )
    assert allowed.status == "completed", allowed.error
    assert allowed.output["statusCode"] == 303
    assert allowed.output["headers"] == {"location": "/x"}


@pytest.mark.parametrize(("status", "fetched"), [(299, True), (300, False), (404, False)])
def test_openapi_document_that_cannot_be_fetched_is_a_communication_error(
    harness: BlueprintHarness, status: int, fetched: bool
) -> None:
    harness.mock_http("GET", "https://pets.example/openapi.json", PETS, status=status)
    harness.mock_http("GET", "https://pets.example/api/*", {"id": 5})
    report = harness.run(
        _openapi(
            "https://pets.example/openapi.json",
            "getPet",
            """                parameters:
                  petId: 5""",
        )
    )
    if fetched:
        assert report.status == "completed", report.error
        assert report.output == {"id": 5}
        return
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.COMMUNICATION.type
    assert report.error["status"] == status
    assert report.error["detail"] == (
        f"the OpenAPI document https://pets.example/openapi.json answered {status}"
    )


def test_openapi_answer_content_is_decoded(harness: BlueprintHarness) -> None:
    harness.mock_http("GET", "https://pets.example/openapi.json", orjson.dumps(PETS))
    harness.mock_http(
        "GET", "https://pets.example/api/*", b"rex", headers={"content-type": "text/plain"}
    )
    report = harness.run(
        _openapi(
            "https://pets.example/openapi.json",
            "getPet",
            """                parameters:
                  petId: 5""",
        )
    )
    assert report.status == "completed", report.error
    assert report.output == "rex"


def test_oauth2_expires_in_null_is_not_said(harness: BlueprintHarness) -> None:
    tokens: list[HttpRequest] = []
    harness.mock_http(
        "POST",
        "https://auth.example/oauth2/token",
        lambda r: tokens.append(r) or {"access_token": f"at-{len(tokens)}", "expires_in": None},
    )
    seen: list[HttpRequest] = []
    harness.mock_http("GET", "https://api.example/*", _recorder(seen))
    report = harness.run(_calls("base", "base"))
    assert report.status == "completed", report.error
    assert len(tokens) == 1  # cached for the default lifetime, as when expires_in is absent


@pytest.mark.parametrize("failure", [ConnectionRefusedError("refused"), TimeoutError()])
def test_an_unreachable_token_endpoint_or_document_is_an_error_a_try_can_catch(
    harness: BlueprintHarness, failure: Exception
) -> None:
    def unreachable(request: HttpRequest) -> Any:
        raise failure

    harness.mock_http("POST", "https://auth.example/oauth2/token", unreachable)
    harness.mock_http("GET", "https://docs.example/*", unreachable)
    timeout = isinstance(failure, TimeoutError)
    kind, status = (ErrorKind.TIMEOUT, 408) if timeout else (ErrorKind.COMMUNICATION, 503)
    token = harness.run(_calls("base"))
    assert token.status == "faulted"
    assert (token.error["type"], token.error["status"]) == (kind.type, status)
    assert token.error["instance"] == "/do/0/call0"
    document = harness.run(_openapi("https://docs.example/openapi.json", "getPet"))
    assert document.status == "faulted"
    assert document.error["type"] == kind.type
    assert document.error["detail"].startswith("GET https://docs.example/openapi.json ")
