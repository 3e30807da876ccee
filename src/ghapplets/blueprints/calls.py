"""``call`` tasks: HTTP, OpenAPI, the blueprint's own functions, applets and connector actions.

- ``call: http`` builds the request from ``with`` (the endpoint a URI template over the task
  input, or an expression), adds the endpoint's authentication, sends it through the host and
  turns the response into the output the task asks for (``content``, ``response`` or ``raw``).
  A status outside 200-299 (200-399 with ``redirect: true``) is a communication error carrying
  the status; redirects are never followed.
- ``call: openapi`` reads the OpenAPI (or Swagger 2) document, finds ``operationId`` and sends
  that operation with ``parameters`` placed where the document says (path, query, header, body).
- ``call: <function>`` of ``use.functions`` runs that task with the evaluated ``with`` as input.
- Our extensions: ``call: <applet>`` runs that one applet; ``call: <connector>.<action>`` runs
  an action of the connector catalog. Both take the evaluated ``with`` (the task input when
  there is none) and the step's key as idempotency key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import orjson
import yaml

from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.blueprints.host import HttpRequest, HttpResponse
from ghapplets.blueprints.uris import expand_uri
from ghapplets.exceptions import BlueprintError

if TYPE_CHECKING:
    from ghapplets.blueprints.engine import Outcome, Run, Step

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


async def run_call(run: Run, step: Step) -> Outcome:
    from ghapplets.blueprints.engine import Outcome

    name = step.task["call"]
    args = step.task.get("with")
    if name == "http":
        return Outcome(await call_http(run, step, args or {}))
    if name == "openapi":
        return Outcome(await call_openapi(run, step, args or {}))
    data = step.input if args is None else run.render(args, step.input, run.variables(step))
    if name in run.program.functions:
        output, _ = await run.run_task(
            name,
            run.program.functions[name],
            f"/use/functions/{name}",
            f"{step.key}/function",
            data,
            step.scope,
        )
        return Outcome(output)
    key = f"{run.host.run_id}{step.key}"
    if "." in name:
        return Outcome(await run.host.call_action(name, data, key=key))
    return Outcome(await run.host.call_applet(name, data, key=key))


# -- HTTP -------------------------------------------------------------------------------------
async def call_http(run: Run, step: Step, args: Mapping[str, Any]) -> Any:
    endpoint = args.get("endpoint")
    uri, auth = _endpoint(endpoint)
    variables = run.variables(step)
    if auth is not None:
        step.authorization = await authorize(run, step, auth)
        variables = run.variables(step)
    headers = {
        str(k): _text(v)
        for k, v in (run.render(args.get("headers") or {}, step.input, variables)).items()
    }
    query = {
        str(k): _text(v)
        for k, v in (run.render(args.get("query") or {}, step.input, variables)).items()
    }
    request = HttpRequest(
        method=str(args.get("method", "get")).upper(),
        uri=_resolve_uri(run, step, uri, variables),
        headers={**_auth_headers(step.authorization), **headers},
        query=query,
        body=run.render(args["body"], step.input, variables) if "body" in args else None,
    )
    return await send(run, step, request, args.get("output", "content"), bool(args.get("redirect")))


def _endpoint(endpoint: Any) -> tuple[str, Any]:
    if isinstance(endpoint, Mapping):
        return str(endpoint.get("uri", "")), endpoint.get("authentication")
    return str(endpoint or ""), None


def _resolve_uri(run: Run, step: Step, uri: str, variables: Mapping[str, Any]) -> str:
    if uri.strip().startswith("${"):
        return str(run.evaluate(uri, step.input, variables))
    if "{" in uri:
        return expand_uri(uri, step.input)
    return uri


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


async def exchange(run: Run, request: HttpRequest) -> HttpResponse:
    """The host's answer to ``request``; a request that gets none (refused, cut, too slow) is
    the DSL's timeout or communication error (503), which a ``try`` can catch and retry."""
    try:
        return await run.host.send_http(request)
    except BlueprintError:
        raise
    except TimeoutError as exc:
        raise raise_error(ErrorKind.TIMEOUT, f"{request.method} {request.uri} timed out") from exc
    except Exception as exc:
        raise raise_error(
            ErrorKind.COMMUNICATION, f"{request.method} {request.uri} failed: {exc}", status=503
        ) from exc


async def send(run: Run, step: Step, request: HttpRequest, output: str, redirect: bool) -> Any:
    response = await exchange(run, request)
    highest = 399 if redirect else 299
    if not 200 <= response.status <= highest:
        raise raise_error(
            ErrorKind.COMMUNICATION,
            f"{request.method} {request.uri} answered {response.status}: "
            f"{response.content[:500].decode('utf-8', 'replace')}",
            status=response.status,
        )
    if output == "raw":
        return base64.b64encode(response.content).decode("ascii")
    content = decode_content(response)
    if output == "response":
        return {
            "request": {
                "method": request.method.lower(),
                "uri": request.uri,
                "headers": dict(request.headers),
            },
            "statusCode": response.status,
            "headers": dict(response.headers),
            "content": content,
        }
    return content


def decode_content(response: HttpResponse) -> Any:
    """JSON content parsed, text as text, anything else base64 (the reference's rule)."""
    if not response.content:
        return None
    kind = _header(response.headers, "content-type").split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return response.content.decode("utf-8", "replace")
    if kind.startswith("text/") or kind in ("application/xml", "application/yaml", ""):
        return response.content.decode("utf-8", "replace")
    return base64.b64encode(response.content).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


# -- authentication ---------------------------------------------------------------------------
async def authorize(run: Run, step: Step, policy: Any) -> dict[str, Any]:
    """The ``$authorization`` descriptor (``scheme``, ``parameter``) of a policy."""
    if isinstance(policy, Mapping) and set(policy) == {"use"}:
        policy = run.program.authentications[policy["use"]]
    variables = run.variables(step)
    if "basic" in policy:
        basic = await _secret_backed(run, step, policy["basic"], variables)
        pair = f"{basic.get('username', '')}:{basic.get('password', '')}"
        return {"scheme": "Basic", "parameter": base64.b64encode(pair.encode()).decode("ascii")}
    if "bearer" in policy:
        bearer = await _secret_backed(run, step, policy["bearer"], variables)
        return {"scheme": "Bearer", "parameter": str(bearer.get("token", ""))}
    if "oauth2" in policy:
        oauth2 = await _secret_backed(run, step, policy["oauth2"], variables)
        return {"scheme": "Bearer", "parameter": await _client_credentials(run, step, oauth2)}
    raise raise_error(ErrorKind.CONFIGURATION, f"unsupported authentication {sorted(policy)}")


async def _secret_backed(
    run: Run, step: Step, spec: Any, variables: Mapping[str, Any]
) -> Mapping[str, Any]:
    """A policy's properties, inline (expressions evaluated) or from a secret (``use``)."""
    if isinstance(spec, Mapping) and "use" in spec:
        name = spec["use"]
        value = run.secrets.get(name)
        if not isinstance(value, Mapping):
            raise raise_error(
                ErrorKind.AUTHORIZATION,
                f"the secret {name!r} is not available to this blueprint as an object",
            )
        return value
    rendered = run.render(spec, step.input, variables)
    return rendered if isinstance(rendered, Mapping) else {}


async def _client_credentials(run: Run, step: Step, spec: Mapping[str, Any]) -> str:
    """An OAuth2 client-credentials access token, cached by the run until it expires."""
    authority = str(spec.get("authority", "")).rstrip("/")
    path = (spec.get("endpoints") or {}).get("token", "/oauth2/token")
    client = spec.get("client") or {}
    cache_key = f"{authority}{path}|{client.get('id')}|{spec.get('scopes')}|{spec.get('audiences')}"
    cached = run.tokens.get(cache_key)
    now = run.host.now()
    if cached is not None and cached[1] > now:
        return cached[0]
    form: dict[str, str] = {"grant_type": "client_credentials"}
    headers = {"Accept": "application/json"}
    method = client.get("authentication", "client_secret_post")
    if method == "client_secret_basic":
        pair = f"{client.get('id', '')}:{client.get('secret', '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    else:
        form["client_id"] = str(client.get("id", ""))
        if client.get("secret") is not None:
            form["client_secret"] = str(client["secret"])
    if spec.get("scopes"):
        form["scope"] = " ".join(spec["scopes"])
    if spec.get("audiences"):
        form["audience"] = " ".join(spec["audiences"])
    encoding = (spec.get("request") or {}).get("encoding", "application/x-www-form-urlencoded")
    uri = urljoin(authority + "/", path.lstrip("/"))
    if encoding == "application/json":
        request = HttpRequest("POST", uri, headers, {}, body=form)
    else:
        request = HttpRequest("POST", uri, headers, {}, form=form)
    response = await exchange(run, request)
    if not 200 <= response.status <= 299:
        raise raise_error(
            ErrorKind.AUTHENTICATION,
            f"the token endpoint {request.uri} answered {response.status}",
            status=401,
        )
    try:
        token = orjson.loads(response.content)
        access = str(token["access_token"])
        expires_in = float(token.get("expires_in") or 300)  # null or absent: not said
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise raise_error(
            ErrorKind.AUTHENTICATION,
            f"the token endpoint {request.uri} answered no access_token (or an expires_in"
            " that is no number of seconds)",
            status=401,
        ) from exc
    run.tokens[cache_key] = (access, now + max(0.0, expires_in - 30))
    return access


def _auth_headers(authorization: Mapping[str, Any] | None) -> dict[str, str]:
    if not authorization:
        return {}
    return {"Authorization": f"{authorization['scheme']} {authorization['parameter']}"}


# -- OpenAPI ----------------------------------------------------------------------------------
async def call_openapi(run: Run, step: Step, args: Mapping[str, Any]) -> Any:
    variables = run.variables(step)
    document = args.get("document") or {}
    doc_uri, doc_auth = _endpoint(document.get("endpoint"))
    spec = await _openapi_document(run, step, doc_uri, doc_auth)
    operation_id = args.get("operationId")
    found = _operation(spec, str(operation_id))
    if found is None:
        raise raise_error(
            ErrorKind.CONFIGURATION,
            f"the OpenAPI document {doc_uri} has no operation {operation_id!r}",
        )
    path, method, operation, shared = found
    if args.get("authentication") is not None:
        step.authorization = await authorize(run, step, args["authentication"])
        variables = run.variables(step)
    parameters = dict(run.render(args.get("parameters") or {}, step.input, variables))
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    body: Any = None
    for param in [*shared, *operation.get("parameters", [])]:
        if not isinstance(param, Mapping) or param.get("name") not in parameters:
            continue
        name, where = str(param["name"]), param.get("in")
        value = parameters.pop(name)
        if where == "path":
            path = path.replace("{" + name + "}", expand_uri("{v}", {"v": value}))
        elif where == "query":
            query[name] = _text(value)
        elif where == "header":
            headers[name] = _text(value)
        elif where == "body":  # Swagger 2
            body = value
    if body is None and "requestBody" in operation and parameters:
        body = parameters
    request = HttpRequest(
        method=method.upper(),
        uri=_base_url(spec, doc_uri).rstrip("/") + path,
        headers={**_auth_headers(step.authorization), **headers},
        query=query,
        body=body,
    )
    return await send(run, step, request, args.get("output", "content"), bool(args.get("redirect")))


async def _openapi_document(run: Run, step: Step, uri: str, auth: Any) -> Mapping[str, Any]:
    cached = run.documents.get(uri)
    if cached is not None:
        return cached
    content = await fetch(run, step, {"uri": uri, "authentication": auth}, "the OpenAPI document")
    try:
        document = yaml.safe_load(content)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise raise_error(
            ErrorKind.CONFIGURATION,
            f"the OpenAPI document {uri} is not readable",
        ) from exc
    if not isinstance(document, Mapping):
        raise raise_error(
            ErrorKind.CONFIGURATION,
            f"the OpenAPI document {uri} is not an object",
        )
    run.documents[uri] = document
    return document


async def fetch(run: Run, step: Step, endpoint: Any, what: str) -> bytes:
    """An external resource's content (``endpoint``: a URI, or ``{uri, authentication}``)."""
    uri, auth = _endpoint(endpoint)
    headers = _auth_headers(await authorize(run, step, auth)) if auth is not None else {}
    response = await exchange(run, HttpRequest("GET", uri, headers, {}))
    if not 200 <= response.status <= 299:
        raise raise_error(
            ErrorKind.COMMUNICATION,
            f"{what} {uri} answered {response.status}",
            status=response.status,
        )
    return response.content


def _operation(
    spec: Mapping[str, Any], operation_id: str
) -> tuple[str, str, Mapping[str, Any], list[Any]] | None:
    for path, item in (spec.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            continue
        for method, operation in item.items():
            if method in HTTP_METHODS and isinstance(operation, Mapping):
                if operation.get("operationId") == operation_id:
                    return str(path), method, operation, list(item.get("parameters") or [])
    return None


def _base_url(spec: Mapping[str, Any], doc_uri: str) -> str:
    servers = spec.get("servers")
    if servers and isinstance(servers[0], Mapping):  # OpenAPI 3
        server = servers[0]
        url = str(server.get("url", "/"))
        for name, variable in (server.get("variables") or {}).items():
            url = url.replace("{" + name + "}", str(variable.get("default", "")))
        return urljoin(doc_uri, url)
    if "host" in spec or "basePath" in spec or "swagger" in spec:  # Swagger 2
        parts = urlsplit(doc_uri)
        schemes = spec.get("schemes") or [parts.scheme or "https"]
        scheme = "https" if "https" in schemes else schemes[0]
        return f"{scheme}://{spec.get('host', parts.netloc)}{spec.get('basePath', '')}"
    parts = urlsplit(doc_uri)
    return f"{parts.scheme}://{parts.netloc}"
