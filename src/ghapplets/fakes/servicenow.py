"""The ServiceNow fake: the Table API, the OAuth token endpoint, and approval webhooks.

Table API: ``GET``/``POST /api/now/table/{table}`` and ``GET``/``PUT``/``PATCH``/``DELETE
/api/now/table/{table}/{sys_id}``, answers wrapped in ``{"result": ...}``; lists take
``sysparm_query`` (:mod:`ghapplets.fakes.encoded_query`), ``sysparm_limit``,
``sysparm_offset`` and ``sysparm_fields``, and answer ``X-Total-Count`` and (with a limit)
a ``Link`` header. Records hold strings, as ServiceNow answers them: ``sys_id`` (32 hex),
``sys_created_on``/``sys_updated_on`` (``YYYY-MM-DD HH:MM:SS``, UTC), ``sys_created_by``,
``sys_updated_by``, ``sys_mod_count``, ``sys_class_name``, a ``number`` on task tables
(``CHG0000001``, ``INC0000001``...) and the table's defaults (a new ``change_request`` is
``state -5`` (New), ``approval "not requested"``). Tables: the built-in ones in
:data:`TABLES` plus ``tables`` from the configuration; another is 400 "Invalid table".

Authentication: basic auth with a configured user, or ``Authorization: Bearer`` with an access
token from ``POST /oauth_token.do`` (form: ``grant_type`` ``password`` (``client_id``,
``client_secret``, ``username``, ``password``), ``client_credentials`` (``client_id``,
``client_secret``) or ``refresh_token`` (``client_id``, ``client_secret``,
``refresh_token``)). Access tokens live ``access_token_ttl`` seconds (``expires_in``: 1799),
refresh tokens ``refresh_token_ttl``. Errors: ``{"error": {"message", "detail"}, "status":
"failure"}``; the token endpoint's ``{"error", "error_description"}``.

Webhooks: :meth:`ServiceNowFake.send_approval` approves (or rejects) a change request as an
approver would and sends what a business rule's outbound REST message sends for it (the
record, ``table``, ``operation: "update"`` and ``changes``), signed as configured
(``bearer``/``basic``/``hmac``, the settings of the gateway's ``servicenow`` source).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ghapplets.exceptions import NotFound
from ghapplets.fakes.config import ServiceNowConfig
from ghapplets.fakes.core import (
    Clock,
    Fake,
    Fault,
    RecordedRequest,
    Refused,
    SentWebhook,
    control_json,
    json_response,
)
from ghapplets.fakes.encoded_query import QueryError, parse_query
from ghapplets.fakes.webhooks import Webhook, hmac_sha256

NUMBER_PREFIXES = {
    "change_request": "CHG",
    "change_task": "CTASK",
    "incident": "INC",
    "problem": "PRB",
    "sc_request": "REQ",
    "sc_req_item": "RITM",
    "sc_task": "SCTASK",
    "task": "TASK",
}
TABLES = frozenset(
    {*NUMBER_PREFIXES, "sys_user", "sys_user_group", "sysapproval_approver", "cmdb_ci",
     "cmdb_ci_service", "sys_journal_field"}
)  # fmt: skip
DEFAULTS: dict[str, dict[str, str]] = {
    "change_request": {"state": "-5", "approval": "not requested", "type": "normal",
                       "priority": "4", "risk": "3", "impact": "3", "active": "true"},
    "incident": {"state": "1", "impact": "3", "urgency": "3", "priority": "5", "active": "true"},
    "problem": {"state": "101", "active": "true"},
    "sysapproval_approver": {"state": "requested"},
}  # fmt: skip
SCHEDULED = "-2"  # change_request state once approved
UNAUTHENTICATED = ("User Not Authenticated", "Required to provide Auth information")


def sn_time(ts: float) -> str:
    """ServiceNow's timestamp format (UTC): ``2024-05-14 09:30:00``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def as_field(value: Any) -> str:
    """A value as ServiceNow stores it: text (``true``/``false``, numbers as written)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and "value" in value:
        return as_field(value["value"])
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


@dataclass
class OAuthToken:
    token: str
    user: str  # sys_created_by of what it writes
    client_id: str
    expires_at: float


class ServiceNowFake(Fake):
    """See the module docstring. State: :attr:`tables` (table -> sys_id -> record);
    :meth:`records`, :meth:`record` and :meth:`find` read it."""

    name: ClassVar[str] = "servicenow"

    def __init__(
        self, config: ServiceNowConfig | None = None, *, clock: Clock | None = None
    ) -> None:
        self.config = config or ServiceNowConfig()
        super().__init__(clock=clock)

    # -- state ------------------------------------------------------------------------------------
    def reset_state(self) -> None:
        self.tables: dict[str, dict[str, dict[str, str]]] = {}
        self._numbers: dict[str, int] = {}
        self.access_tokens: dict[str, OAuthToken] = {}
        self.refresh_tokens: dict[str, OAuthToken] = {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "tables": {name: list(rows.values()) for name, rows in self.tables.items()},
            "access_tokens": len(self.access_tokens),
        }

    def known_table(self, table: str) -> bool:
        return table in TABLES or table in self.config.tables

    # -- the Python API ---------------------------------------------------------------------------
    def records(self, table: str) -> list[dict[str, str]]:
        with self.lock:
            return [dict(r) for r in self.tables.get(table, {}).values()]

    def record(self, table: str, sys_id: str) -> dict[str, str]:
        with self.lock:
            found = self.tables.get(table, {}).get(sys_id)
        if found is None:
            raise NotFound(f"no {table} record {sys_id!r} in the ServiceNow fake")
        return dict(found)

    def find(self, table: str, ref: str) -> dict[str, str]:
        """The record whose ``sys_id`` or ``number`` is ``ref``."""
        with self.lock:
            for row in self.tables.get(table, {}).values():
                if ref in (row["sys_id"], row.get("number")):
                    return dict(row)
        raise NotFound(f"no {table} record {ref!r} in the ServiceNow fake")

    def insert(self, table: str, fields: dict[str, Any], user: str = "admin") -> dict[str, str]:
        """Insert a record as the API would (number, defaults, system fields)."""
        with self.lock:
            now = sn_time(self.now())
            record = dict(DEFAULTS.get(table, {}))
            record.update({k: as_field(v) for k, v in fields.items()})
            record.update(
                sys_id=uuid.uuid4().hex,
                sys_created_on=now,
                sys_created_by=user,
                sys_updated_on=now,
                sys_updated_by=user,
                sys_mod_count="0",
                sys_class_name=table,
                sys_tags="",
            )
            prefix = NUMBER_PREFIXES.get(table)
            if prefix and not record.get("number"):
                self._numbers[table] = self._numbers.get(table, 0) + 1
                record["number"] = f"{prefix}{self._numbers[table]:07d}"
            self.tables.setdefault(table, {})[record["sys_id"]] = record
            return dict(record)

    def update(
        self, table: str, sys_id: str, fields: dict[str, Any], user: str = "admin"
    ) -> dict[str, str]:
        with self.lock:
            record = self.tables.get(table, {}).get(sys_id)
            if record is None:
                raise NotFound(f"no {table} record {sys_id!r} in the ServiceNow fake")
            record.update(
                {k: as_field(v) for k, v in fields.items() if k not in ("sys_id", "number")}
            )
            record["sys_updated_on"] = sn_time(self.now())
            record["sys_updated_by"] = user
            record["sys_mod_count"] = str(int(record.get("sys_mod_count", "0")) + 1)
            return dict(record)

    def approve(
        self, ref: str, decision: str = "approved", approver: str = "admin"
    ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """Approve (``decision="rejected"``: reject) the change request ``ref`` (sys_id or
        number): its ``approval`` becomes the decision (and, approved, its ``state`` Scheduled),
        and an approved/rejected ``sysapproval_approver`` record is added. The updated record
        and its ``changes`` (field -> ``{"previous", "current"}``)."""
        if decision not in ("approved", "rejected"):
            raise ValueError("decision must be approved or rejected")
        with self.lock:
            before = self.find("change_request", ref)
            fields = {"approval": decision}
            if decision == "approved":
                fields["state"] = SCHEDULED
            after = self.update("change_request", before["sys_id"], fields, approver)
            self.insert(
                "sysapproval_approver",
                {
                    "state": decision,
                    "approver": approver,
                    "sysapproval": before["sys_id"],
                    "document_id": before["sys_id"],
                    "source_table": "change_request",
                },
                approver,
            )
        changes = {
            k: {"previous": before.get(k, ""), "current": after[k]}
            for k in fields
            if before.get(k, "") != after[k]
        }
        return after, changes

    def record_webhook(
        self, table: str, record: dict[str, str], changes: dict[str, Any], operation: str = "update"
    ) -> Webhook:
        """What a business rule's outbound REST message sends for ``record``, signed as the
        configured webhook says."""
        base = (self.base_url or "https://instance.service-now.com").rstrip("/")
        payload = {
            "table": table,
            "operation": operation,
            **record,
            "changes": changes,
            "url": f"{base}/nav_to.do?uri={table}.do?sys_id={record['sys_id']}",
        }
        body = orjson.dumps(payload)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "ServiceNow/1.0",
            "X-Request-Id": str(uuid.uuid4()),
        }
        target = self.config.webhook
        if target is not None:
            if target.auth == "hmac":
                headers[target.header] = target.prefix + hmac_sha256(
                    target.secret, body, target.encoding
                )
            elif target.auth == "basic":
                pair = f"{target.username or ''}:{target.secret}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            else:
                headers["Authorization"] = f"Bearer {target.secret}"
        return Webhook(target.url if target else "", headers, body)

    async def send_approval(
        self,
        ref: str,
        decision: str = "approved",
        *,
        approver: str = "admin",
        url: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> SentWebhook:
        """Approve (or reject) the change request ``ref`` and send the webhook for it."""
        record, changes = self.approve(ref, decision, approver)
        hook = self.record_webhook("change_request", record, changes)
        return await self.send_signed("change_request.updated", hook, url=url, client=client)

    # -- errors -----------------------------------------------------------------------------------
    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return self._failure(status, message, None, headers)

    def _failure(
        self, status: int, message: str, detail: str | None, headers: dict[str, str] | None = None
    ) -> Response:
        body = {"error": {"message": message, "detail": detail}, "status": "failure"}
        return json_response(body, status, headers)

    def fault_response(self, fault: Fault, request: RecordedRequest) -> Response:
        status = fault.status or 503
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if status == 401:
            return self._failure(401, *UNAUTHENTICATED, headers)
        if status == 429:
            return self._failure(429, "Too many requests", "Rate limit exceeded", headers)
        return self._failure(status, HTTPStatus(status).phrase, None, headers)

    # -- authentication ---------------------------------------------------------------------------
    def _auth(self, request: Request) -> str:
        """The user name the request acts as, or :class:`Refused` 401."""
        scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                name, password = "", ""
            for user in self.config.users:
                if secrets.compare_digest(f"{name}:{password}", f"{user.username}:{user.password}"):
                    return user.username
        elif scheme.lower() == "bearer":
            token = self.access_tokens.get(value)
            if token is not None and token.expires_at > self.now():
                return token.user
        raise Refused(self._failure(401, *UNAUTHENTICATED))

    # -- routes -----------------------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        return [
            Route("/oauth_token.do", self._oauth_token, methods=["POST"]),
            Route("/api/now/table/{table}", self._collection, methods=["GET", "POST"]),
            Route(
                "/api/now/table/{table}/{sys_id}",
                self._single,
                methods=["GET", "PUT", "PATCH", "DELETE"],
            ),
        ]

    def _table(self, request: Request) -> str:
        table = str(request.path_params["table"])
        if not self.known_table(table):
            raise Refused(self._failure(400, f"Invalid table {table}", None))
        return table

    async def _fields(self, request: Request) -> dict[str, Any]:
        def bad() -> Response:
            return self._failure(
                400, "Exception while reading request", "The payload is not valid JSON."
            )

        doc = await self.read_json(request, bad)
        if not isinstance(doc, dict):
            raise Refused(bad())
        return doc

    async def _collection(self, request: Request) -> Response:
        user = self._auth(request)
        table = self._table(request)
        base = f"{request.url.scheme}://{request.url.netloc}"
        if request.method == "POST":
            record = self.insert(table, await self._fields(request), user)
            headers = {"Location": f"{base}/api/now/table/{table}/{record['sys_id']}"}
            return json_response({"result": record}, 201, headers)
        params = request.query_params
        try:
            query = parse_query(params.get("sysparm_query", ""))
            limit = int(params["sysparm_limit"]) if params.get("sysparm_limit") else None
            offset = int(params.get("sysparm_offset") or 0)
        except (QueryError, ValueError) as exc:
            raise Refused(self._failure(400, "Invalid query", str(exc))) from None
        with self.lock:
            rows = query.sort([dict(r) for r in self.tables.get(table, {}).values()])
        found = [r for r in rows if query.matches(r)]
        page = found[offset : offset + limit] if limit is not None else found[offset:]
        page = [_only(r, params.get("sysparm_fields")) for r in page]
        headers = {"X-Total-Count": str(len(found))}
        if limit is not None and limit > 0:
            headers["Link"] = _links(f"{base}{request.url.path}", params, offset, limit, len(found))
        return json_response({"result": page}, headers=headers)

    async def _single(self, request: Request) -> Response:
        user = self._auth(request)
        table = self._table(request)
        sys_id = str(request.path_params["sys_id"])
        fields = await self._fields(request) if request.method in ("PUT", "PATCH") else {}
        with self.lock:
            if sys_id not in self.tables.get(table, {}):
                raise Refused(
                    self._failure(
                        404,
                        "No Record found",
                        "Record doesn't exist or ACL restricts the record retrieval",
                    )
                )
            if request.method == "DELETE":
                del self.tables[table][sys_id]
                return Response(status_code=204)
            if request.method == "GET":
                record = dict(self.tables[table][sys_id])
            else:
                record = self.update(table, sys_id, fields, user)
        return json_response({"result": _only(record, request.query_params.get("sysparm_fields"))})

    async def _oauth_token(self, request: Request) -> Response:
        form = {
            k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()
        }
        grant = form.get("grant_type", "")
        denied = json_response({"error_description": "access_denied", "error": "server_error"}, 401)
        client = next(
            (
                c
                for c in self.config.oauth_clients
                if c.client_id == form.get("client_id")
                and secrets.compare_digest(c.client_secret, form.get("client_secret", ""))
            ),
            None,
        )
        if grant not in ("password", "client_credentials", "refresh_token"):
            return json_response(
                {"error_description": "Unsupported grant type", "error": "unsupported_grant_type"},
                400,
            )
        if client is None:
            return denied
        now = self.now()
        with self.lock:
            refresh: OAuthToken | None = None
            if grant == "password":
                user = next(
                    (
                        u
                        for u in self.config.users
                        if u.username == form.get("username")
                        and secrets.compare_digest(u.password, form.get("password", ""))
                    ),
                    None,
                )
                if user is None:
                    return denied
                name = user.username
                refresh = OAuthToken(
                    secrets.token_urlsafe(64), name, client.client_id,
                    now + self.config.refresh_token_ttl,
                )  # fmt: skip
                self.refresh_tokens[refresh.token] = refresh
            elif grant == "refresh_token":
                refresh = self.refresh_tokens.get(form.get("refresh_token", ""))
                if (
                    refresh is None
                    or refresh.expires_at <= now
                    or refresh.client_id != client.client_id
                ):
                    return denied
                name = refresh.user
            else:
                name = client.client_id
            access = OAuthToken(
                secrets.token_urlsafe(64),
                name,
                client.client_id,
                now + self.config.access_token_ttl,
            )
            self.access_tokens[access.token] = access
        body: dict[str, Any] = {
            "access_token": access.token,
            "scope": "useraccount",
            "token_type": "Bearer",
            "expires_in": self.config.access_token_ttl,
        }
        if refresh is not None:
            body["refresh_token"] = refresh.token
        return json_response(body)

    # -- control ----------------------------------------------------------------------------------
    def control_routes(self) -> list[BaseRoute]:
        return [Route("/_fakes/approve", self._c_approve, methods=["POST"])]

    async def _c_approve(self, request: Request) -> Response:
        """``{"change": SYS_ID_OR_NUMBER, "decision": "approved", "notify": true, "url": ...}``."""
        doc = await control_json(request)
        try:
            ref, decision = str(doc["change"]), str(doc.get("decision", "approved"))
            if doc.get("notify", True):
                sent = await self.send_approval(ref, decision, url=doc.get("url"))
                return json_response(
                    {"status_code": sent.outcome.status_code, "error": sent.outcome.error}
                )
            record, changes = self.approve(ref, decision)
        except (KeyError, NotFound, ValueError) as exc:
            return json_response({"error": str(exc)}, 422)
        return json_response({"result": record, "changes": changes})


def _only(record: dict[str, str], fields: str | None) -> dict[str, str]:
    if not fields:
        return record
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {f: record.get(f, "") for f in wanted}


def _links(url: str, params: Any, offset: int, limit: int, total: int) -> str:
    def link(at: int, rel: str) -> str:
        query = {**dict(params), "sysparm_offset": str(at), "sysparm_limit": str(limit)}
        return f'<{url}?{urlencode(query)}>;rel="{rel}"'

    last = max(0, (total - 1) // limit * limit)
    parts = [link(0, "first")]
    if offset > 0:
        parts.append(link(max(0, offset - limit), "prev"))
    if offset + limit < total:
        parts.append(link(offset + limit, "next"))
    parts.append(link(last, "last"))
    return ",".join(parts)
