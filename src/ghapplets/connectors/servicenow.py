"""The ServiceNow connector (the Table API) and the ``servicenow.*`` actions.

Records are read and written through ``/api/now/table/{table}[/{sys_id}]``; ServiceNow wraps
every answer in ``{"result": ...}`` and the actions output that ``result``. Errors are
``{"error": {"message", "detail"}, "status": "failure"}``, told as ``message: detail``
(:func:`servicenow_message`); the OAuth token endpoint's ``{"error", "error_description"}``
likewise.

Authentication is basic auth (``username`` + ``password``) when the connector names no
``grant``, else OAuth2 (:class:`ServiceNowOAuth`): an access token from ``/oauth_token.do``,
kept in memory and in the store's token cache (shared by every process of the project), and
renewed before it expires.

Table names and sys_ids reach URL paths only after the input schema (:data:`TABLE`,
:data:`SYS_ID`) and :func:`record_path` have checked them, so an input cannot change the path.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import orjson

from ghapplets.connectors.catalog import action
from ghapplets.connectors.config import ConnectorKind, ServiceNowConnector, ServiceNowGrant
from ghapplets.connectors.http import MAX_MESSAGE, VendorApi, json_message
from ghapplets.exceptions import ActionFailed, ActionInputInvalid, ActionUnavailable
from ghapplets.logging import register_secret

if TYPE_CHECKING:
    from ghapplets.secrets.tokens import TokenCache

VENDOR = "ServiceNow"
TOKEN_PATH = "/oauth_token.do"  # noqa: S105 - a path
TABLE_PATTERN = r"^[a-z0-9_]{1,80}$"
SYS_ID_PATTERN = r"^[0-9a-f]{32}$"
_TABLE = re.compile(r"[a-z0-9_]{1,80}")
_SYS_ID = re.compile(r"[0-9a-f]{32}")
RENEW_BEFORE = 60.0  # seconds before its expiry an access token is replaced
DEFAULT_LIFETIME = 1800.0  # ServiceNow's default access token lifespan, in seconds
REFRESH_REFUSED = frozenset({400, 401})  # a refresh token refused: ServiceNow 401, RFC 6749 400
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

TABLE = {
    "type": "string",
    "pattern": TABLE_PATTERN,
    "description": "a table's name, e.g. incident, change_request, u_release",
}
SYS_ID = {"type": "string", "pattern": SYS_ID_PATTERN, "description": "a record's sys_id"}
RECORD_FIELDS = {
    "type": "object",
    "description": "field name -> value (a string, number or boolean; ServiceNow stores text)",
}
FIELD_NAMES = {
    "type": "array",
    "items": {"type": "string", "pattern": r"^[A-Za-z0-9_.]{1,160}$"},
    "minItems": 1,
    "description": "the fields to answer (sysparm_fields; dot-walking allowed); default: all",
}


def servicenow_message(response: httpx.Response) -> str:
    """ServiceNow's error as one line: ``message: detail`` from the Table API's
    ``{"error": {"message", "detail"}}``, ``error: error_description`` from the token
    endpoint's; other bodies as :func:`json_message` reads them."""
    try:
        doc = response.json()
    except ValueError:
        return json_message(response)
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict):
            parts = (error.get("message"), error.get("detail"))
        elif isinstance(error, str):
            parts = (error, doc.get("error_description"))
        else:
            parts = (None, None)
        text = ": ".join(str(p) for p in parts if p)
        if text:
            return text[:MAX_MESSAGE]
    return json_message(response)


def record_path(table: str, sys_id: str | None = None) -> str:
    """``/api/now/table/{table}[/{sys_id}]``, both checked again (the schema's ``$`` lets a
    trailing newline pass)."""
    if not _TABLE.fullmatch(table):
        raise ActionInputInvalid(f"{table!r} is not a table name ({TABLE_PATTERN})")
    if sys_id is None:
        return f"/api/now/table/{table}"
    if not _SYS_ID.fullmatch(sys_id):
        raise ActionInputInvalid(f"{sys_id!r} is not a sys_id (32 lowercase hex digits)")
    return f"/api/now/table/{table}/{sys_id}"


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; ``{}`` when it is not one (e.g. a hibernating developer
    instance's HTML page, answered 200)."""
    try:
        doc = response.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def seconds(value: Any) -> float | None:
    """A token's ``expires_in`` (a number, or digits) as seconds; None when it is missing or
    unreadable (the token is then kept until the API refuses it)."""
    if isinstance(value, str) and value.strip().isdigit():
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


class ServiceNowOAuth(httpx.Auth):
    """OAuth2 bearer tokens from ``POST /oauth_token.do`` (the ``client_credentials`` or
    ``password`` grant), for an :class:`httpx.AsyncClient` only.

    The access token is kept in memory until :data:`RENEW_BEFORE` seconds before its
    ``expires_in`` (by :attr:`clock`), then renewed with the ``refresh_token`` grant when
    ServiceNow gave a refresh token (the password grant), else, or when the refresh token is
    refused, with the original grant. An API answer 401 gets one new token and one retry. An
    :class:`asyncio.Lock` makes concurrent requests wait for one renewal instead of each
    asking. A refused or failed token request is an action error like any vendor answer
    (:class:`VendorApi`); tokens are never logged nor part of a message.

    With a :class:`~ghapplets.secrets.tokens.TokenCache` (the store's), the tokens are shared:
    a process without a valid token of its own takes the cached one before it asks
    ServiceNow, and puts each token it gets there (the access and the refresh token together,
    encrypted, until the access token's expiry; a cached refresh token outlives its access
    token and renews it). Without one, each process asks for its own.
    """

    def __init__(
        self,
        config: ServiceNowConnector,
        *,
        name: str = "servicenow",
        tokens: TokenCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert config.grant is not None and config.client_id and config.client_secret
        self.config = config
        self.tokens = tokens
        # one cache entry per connector, instance, OAuth client and user
        self.cache_key = (
            f"servicenow:{name}:{config.base_url.rstrip('/')}:{config.client_id}:"
            f"{config.grant}:{config.username or ''}"
        )
        self.clock = clock  # wall time: expiries are shared with other processes
        self.api = VendorApi(
            VENDOR,
            config.base_url,
            timeout=config.timeout,
            headers={"Accept": "application/json"},
            message_of=servicenow_message,
        )
        self._lock = asyncio.Lock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._renew_at: float | None = None  # None: keep until the API refuses it

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("ServiceNow OAuth works with an httpx.AsyncClient only")
        yield request  # pragma: no cover - makes this a generator

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self.token(stale=token)}"
            yield request

    async def token(self, stale: str | None = None) -> str:
        """A valid access token: the one kept, unless it is ``stale`` (refused by the API) or
        due for renewal, else a new one."""
        async with self._lock:
            if self._access is not None and self._access != stale and not self._due():
                return self._access
            self._access = None
            if await self._adopt_cached(stale):
                assert self._access is not None
                return self._access
            doc = await self._renew()
            self._access = doc["access_token"]
            register_secret(self._access)
            refresh = doc.get("refresh_token")
            if isinstance(refresh, str) and refresh:
                self._refresh = refresh
                register_secret(refresh)
            lifetime = seconds(doc.get("expires_in"))
            self._renew_at = None if lifetime is None else self.clock() + lifetime - RENEW_BEFORE
            await self._share(lifetime)
            return self._access

    async def _adopt_cached(self, stale: str | None) -> bool:
        """Take the cached tokens when the access token is valid and not ``stale``; keep a
        cached refresh token in any case. True when there is an access token to use."""
        if self.tokens is None:
            return False
        cached = await self.tokens.get(self.cache_key)
        if cached is None:
            return False
        text, expires_at = cached
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return False
        access, refresh = doc.get("access_token"), doc.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            register_secret(refresh)
            self._refresh = refresh
        renew_at = expires_at - RENEW_BEFORE
        if not isinstance(access, str) or access == stale or self.clock() >= renew_at:
            return False
        register_secret(access)
        self._access, self._renew_at = access, renew_at
        return True

    async def _share(self, lifetime: float | None) -> None:
        if self.tokens is None or self._access is None:
            return
        doc = {"access_token": self._access, "refresh_token": self._refresh}
        # a token without an expiry is kept for ServiceNow's default lifespan at most
        expires_at = self.clock() + (DEFAULT_LIFETIME if lifetime is None else lifetime)
        await self.tokens.put(self.cache_key, orjson.dumps(doc).decode(), expires_at)

    def _due(self) -> bool:
        return self._renew_at is not None and self.clock() >= self._renew_at

    async def _renew(self) -> dict[str, Any]:
        if self._refresh is not None:
            try:
                return await self._grant(
                    {"grant_type": "refresh_token", "refresh_token": self._refresh}
                )
            except ActionFailed as exc:
                if exc.status not in REFRESH_REFUSED:
                    raise
                self._refresh = None  # expired or revoked: fall back to the original grant
        form = {"grant_type": str(self.config.grant)}
        if self.config.grant is ServiceNowGrant.PASSWORD:
            assert self.config.username is not None and self.config.password is not None
            form.update(username=self.config.username, password=self.config.password)
        return await self._grant(form)

    async def _grant(self, form: dict[str, str]) -> dict[str, Any]:
        """ServiceNow's answer to one token request (form-encoded, as it requires)."""
        assert self.config.client_id is not None and self.config.client_secret is not None
        body = {
            **form,
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
        }
        response = await self.api.request(
            "POST",
            TOKEN_PATH,
            content=urlencode(body).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        doc = json_object(response)
        token = doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise ActionUnavailable(
                f"{VENDOR} answered {response.status_code} to POST {TOKEN_PATH} "
                "without an access token",
                status=response.status_code,
            )
        return doc

    async def aclose(self) -> None:
        await self.api.aclose()


class ServiceNow:
    """An open ServiceNow connector."""

    kind = ConnectorKind.SERVICENOW
    uses_token_cache = True  # its OAuth tokens, shared by the project's processes

    def __init__(
        self, name: str, config: ServiceNowConnector, *, tokens: TokenCache | None = None
    ) -> None:
        self.name = name
        self.config = config
        self.oauth: ServiceNowOAuth | None = None
        auth: httpx.Auth
        if config.grant is None:
            assert config.username is not None and config.password is not None
            auth = httpx.BasicAuth(config.username, config.password)
        else:
            auth = self.oauth = ServiceNowOAuth(config, name=name, tokens=tokens)
        self.api = VendorApi(
            VENDOR,
            config.base_url,
            timeout=config.timeout,
            headers={"Accept": "application/json"},
            auth=auth,
            message_of=servicenow_message,
        )

    async def result(self, method: str, path: str, **kw: Any) -> Any:
        """The ``result`` of ServiceNow's answer to one Table API request."""
        response = await self.api.request(method, path, **kw)
        doc = json_object(response)
        if "result" not in doc:
            raise ActionUnavailable(
                f"{VENDOR} answered {response.status_code} to {method} {path} without a result",
                status=response.status_code,
            )
        return doc["result"]

    async def create(self, table: str, fields: dict[str, Any]) -> Any:
        return await self.result("POST", record_path(table), json=fields)

    async def update(self, table: str, sys_id: str, fields: dict[str, Any]) -> Any:
        return await self.result("PATCH", record_path(table, sys_id), json=fields)

    async def get(self, table: str, sys_id: str, fields: Sequence[str] | None = None) -> Any:
        params = {"sysparm_fields": ",".join(fields)} if fields else None
        return await self.result("GET", record_path(table, sys_id), params=params)

    async def query(
        self,
        table: str,
        query: str,
        limit: int = DEFAULT_LIMIT,
        fields: Sequence[str] | None = None,
    ) -> Any:
        params: dict[str, Any] = {"sysparm_query": query, "sysparm_limit": limit}
        if fields:
            params["sysparm_fields"] = ",".join(fields)
        return await self.result("GET", record_path(table), params=params)

    async def aclose(self) -> None:
        await self.api.aclose()
        if self.oauth is not None:
            await self.oauth.aclose()


@action(
    "servicenow.create_record",
    ConnectorKind.SERVICENOW,
    "Create a record in a ServiceNow table.",
    {"table": TABLE, "fields": RECORD_FIELDS},
    required=("table", "fields"),
    output="ServiceNow's result: the new record, every field as a string (sys_id, number on "
    "task tables, sys_created_on, ...)",
)
async def create_record(connector: ServiceNow, data: dict[str, Any]) -> Any:
    return await connector.create(data["table"], data["fields"])


@action(
    "servicenow.update_record",
    ConnectorKind.SERVICENOW,
    "Update fields of a ServiceNow record.",
    {"table": TABLE, "sys_id": SYS_ID, "fields": {**RECORD_FIELDS, "minProperties": 1}},
    required=("table", "sys_id", "fields"),
    output="ServiceNow's result: the updated record, every field as a string",
)
async def update_record(connector: ServiceNow, data: dict[str, Any]) -> Any:
    return await connector.update(data["table"], data["sys_id"], data["fields"])


@action(
    "servicenow.get_record",
    ConnectorKind.SERVICENOW,
    "Read a ServiceNow record by sys_id.",
    {"table": TABLE, "sys_id": SYS_ID, "fields": FIELD_NAMES},
    required=("table", "sys_id"),
    output="ServiceNow's result: the record (only the fields asked for), every field as a string",
)
async def get_record(connector: ServiceNow, data: dict[str, Any]) -> Any:
    return await connector.get(data["table"], data["sys_id"], data.get("fields"))


@action(
    "servicenow.query",
    ConnectorKind.SERVICENOW,
    "Find ServiceNow records with an encoded query.",
    {
        "table": TABLE,
        "query": {
            "type": "string",
            "description": "an encoded query (sysparm_query), e.g. active=true^priority<=2"
            "^ORDERBYnumber; empty: every record",
        },
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "description": f"at most this many records; default {DEFAULT_LIMIT}",
        },
        "fields": FIELD_NAMES,
    },
    required=("table", "query"),
    output="ServiceNow's result: a list of records (only the fields asked for), every field "
    "as a string",
)
async def query(connector: ServiceNow, data: dict[str, Any]) -> Any:
    return await connector.query(
        data["table"], data["query"], data.get("limit", DEFAULT_LIMIT), data.get("fields")
    )


@action(
    "servicenow.create_change_request",
    ConnectorKind.SERVICENOW,
    "Create a ServiceNow change request.",
    {
        "fields": {
            **RECORD_FIELDS,
            "description": "the change's fields (short_description, type, assignment_group, ...)",
        }
    },
    required=("fields",),
    output="ServiceNow's result: the new change_request record, with number (CHG...) and "
    "sys_id, every field as a string",
)
async def create_change_request(connector: ServiceNow, data: dict[str, Any]) -> Any:
    return await connector.create("change_request", data["fields"])
