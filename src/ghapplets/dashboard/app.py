"""The dashboard's Starlette application: the login, the pages, their forms and the live
stream.

Every page but the login redirects a browser without a live session to ``/login``. A page's
data comes from the admin API's handlers (:class:`~ghapplets.dashboard.api.ApiCalls`) as the
session's principal; a form's POST first checks the session's CSRF token (403 without it), then
calls the API's handler, whose access rule decides (a viewer's replay is 403 there too). htmx
sends forms with ``X-Requested-With`` and gets a fragment back; without script a form gets a
redirect to the page it came from.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ghapplets.admin.app import AdminApi
from ghapplets.admin.auth import SESSION_COOKIE
from ghapplets.admin.problems import ApiProblem, forbidden, problem_of
from ghapplets.config.models import DashboardConfig, SecureCookie
from ghapplets.dashboard import stats
from ghapplets.dashboard.api import ApiCalls
from ghapplets.dashboard.folding import fold
from ghapplets.dashboard.forms import CSRF_FIELD, LOGIN_COOKIE, new_login_csrf, read_form
from ghapplets.dashboard.graph import layout
from ghapplets.dashboard.live import LiveHub
from ghapplets.dashboard.security import SecurityHeaders
from ghapplets.dashboard.sessions import Sessions, principal_of, same
from ghapplets.exceptions import GhappletsError
from ghapplets.gateway.forwarded import TrustedProxies, parse_address
from ghapplets.logging import get_logger
from ghapplets.store.records import DeliveryStatus, RunStatus, SessionRecord

log = get_logger("ghapplets.dashboard")
STATIC = Path(__file__).parent / "static"
PAGE_SIZE = 50
LOGIN_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")
ID_MAX = 1024  # characters of an id in a live stream's query
RUN_CONTROLS = ("cancel", "suspend", "resume")
DELIVERY_FILTERS = ("source", "type", "q", "status", "applet", "since", "until")
DEAD_FILTERS = ("source", "applet", "since", "until")
RUN_FILTERS = ("status", "blueprint", "since", "until")
Page = Callable[[Request, SessionRecord], Awaitable[Response]]


class Topic(StrEnum):
    """What a live stream follows (its SSE event has the same name)."""

    JOB = "job"  # one job: status, attempts, result
    RUN = "run"  # one run: status, graph, listeners, timeline
    DELIVERIES = "deliveries"  # the first page of the deliveries list, with its filters


def when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def path_part(value: str) -> str:
    """An id as a URL path segment (``/`` kept: the routes take ``{id:path}``)."""
    return quote(value, safe="/:@")


def picked(params: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The filters given and not empty, of those ``names``."""
    return {n: params[n] for n in names if params.get(n, "").strip()}


def list_query(
    params: Mapping[str, str], names: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, Any]]:
    """A list page's filters (those ``names`` given) and the API query: them, a page's size,
    and the cursor when there is one."""
    filters = picked(params, names)
    query: dict[str, Any] = {**filters, "limit": PAGE_SIZE}
    if params.get("cursor"):
        query["cursor"] = params["cursor"]
    return filters, query


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class Dashboard:
    """The dashboard's ASGI application over an :class:`~ghapplets.admin.app.AdminApi`."""

    def __init__(
        self,
        api: AdminApi,
        sessions: Sessions,
        config: DashboardConfig,
        proxies: TrustedProxies,
        *,
        live_interval: float = 1.0,
    ) -> None:
        self.calls = ApiCalls(api)
        self.auth = api.auth
        self.sessions = sessions
        self.config = config
        self.proxies = proxies
        self.body_timeout = api.body_timeout
        self.live = LiveHub(config.live_connections, config.live_seconds, live_interval)
        self.env = Environment(
            loader=PackageLoader("ghapplets.dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = when
        self.env.filters["path"] = path_part
        self.env.globals.update(urlencode=urlencode, when=when, fold=fold)
        routes: list[BaseRoute] = [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/", self._page(self.overview), methods=["GET"]),
            Route("/deliveries", self._page(self.deliveries), methods=["GET"]),
            Route(
                "/deliveries/{source}/{id:path}/replay",
                self._action(self.replay_delivery),
                methods=["POST"],
            ),
            Route("/deliveries/{source}/{id:path}", self._page(self.delivery), methods=["GET"]),
            Route("/jobs/{id:path}/replay", self._action(self.replay_job), methods=["POST"]),
            Route("/jobs/{id:path}", self._page(self.job), methods=["GET"]),
            Route("/dead-letters", self._page(self.dead_letters), methods=["GET"]),
            Route("/dead-letters/replay", self._action(self.replay_dead_letters), methods=["POST"]),
            Route("/runs", self._page(self.runs), methods=["GET"]),
            Route("/runs/{id:path}/{action:str}", self._action(self.control_run), methods=["POST"]),
            Route("/runs/{id:path}", self._page(self.run), methods=["GET"]),
            Route("/events", self.events, methods=["GET"]),
            Route("/favicon.ico", self.favicon, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
        self.app = SecurityHeaders(
            Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def close(self) -> None:
        """The server is shutting down: end the live streams (it waits for them)."""
        self.live.close()

    # -- rendering ---------------------------------------------------------------------------
    def render(
        self,
        request: Request,
        template: str,
        session: SessionRecord | None = None,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        context: dict[str, Any] = {"request": request, "session": session, **values}
        if session is not None:
            who = principal_of(session)
            context["can_operate"] = self.calls.allowed(who, "replay_job_now")
            context["csrf"] = session.csrf
        html = self.env.get_template(template).render(context)
        return HTMLResponse(html, status_code=status)

    def fragment(self, template: str, **values: Any) -> str:
        return self.env.get_template(template).render(values)

    def error(
        self, request: Request, session: SessionRecord | None, problem: ApiProblem
    ) -> HTMLResponse:
        if is_htmx(request) and session is not None:
            html = self.fragment("_notice.html", ok=False, message=problem.detail)
            return HTMLResponse(html, status_code=problem.status)
        return self.render(request, "error.html", session, problem.status, problem=problem)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        session = await self.sessions.find(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return RedirectResponse("/login", 303)
        detail = "There is no such page." if exc.status_code == 404 else str(exc.detail)
        return self.error(request, session, ApiProblem(exc.status_code, "error", detail))

    # -- who ---------------------------------------------------------------------------------
    async def session_of(self, request: Request) -> SessionRecord | None:
        return await self.sessions.find(request.cookies.get(SESSION_COOKIE))

    def _page(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await self.session_of(request)
            if session is None:
                return RedirectResponse("/login", 303)
            try:
                return await page(request, session)
            except ApiProblem as problem:
                return self.error(request, session, problem)
            except GhappletsError as exc:
                return self._failed(request, session, exc)
            except Exception as exc:  # a bug: a page that says so, and the log says what
                return self._bug(request, session, exc)

        endpoint.__name__ = page.__name__
        return endpoint

    def _action(
        self, action: Callable[[Request, SessionRecord, dict[str, str]], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A form's POST: a live session (else the login page), its CSRF token (else 403),
        then ``action`` with the form's fields."""

        async def endpoint(request: Request) -> Response:
            session = await self.session_of(request)
            if session is None:
                return RedirectResponse("/login", 303)
            try:
                form = await read_form(request, self.body_timeout)
                if not same(session.csrf, form.get(CSRF_FIELD)):
                    raise forbidden("The form's security token is missing or wrong: reload it.")
                return await action(request, session, form)
            except ApiProblem as problem:
                return self.error(request, session, problem)
            except GhappletsError as exc:
                return self._failed(request, session, exc)
            except Exception as exc:
                return self._bug(request, session, exc)

        endpoint.__name__ = action.__name__
        return endpoint

    def _failed(
        self, request: Request, session: SessionRecord, exc: GhappletsError
    ) -> HTMLResponse:
        problem = problem_of(exc)
        if problem.status >= 500:
            log.error("dashboard request failed", path=request.url.path, error=str(exc))
        return self.error(request, session, problem)

    def _bug(self, request: Request, session: SessionRecord, exc: Exception) -> HTMLResponse:
        log.exception("dashboard request failed", path=request.url.path, error=repr(exc))
        return self.error(request, session, problem_of(GhappletsError()))

    async def api(self, request: Request, session: SessionRecord, name: str, **kw: Any) -> Any:
        return await self.calls.call(request, principal_of(session), name, **kw)

    def _secure(self, request: Request) -> bool:
        mode = self.config.secure_cookie
        if mode != SecureCookie.AUTO:
            return mode == SecureCookie.ALWAYS
        if request.url.scheme == "https":
            return True
        peer = parse_address(request.client.host) if request.client else None
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return peer is not None and self.proxies.trusts(peer) and forwarded == "https"

    # -- login -------------------------------------------------------------------------------
    def _login_form(
        self, request: Request, status: int = 200, message: str | None = None
    ) -> Response:
        # the nonce the browser holds already, if any: another tab's form (or the favicon's
        # redirect here) must not make the form on screen stale
        held = request.cookies.get(LOGIN_COOKIE, "")
        nonce = held if LOGIN_NONCE.fullmatch(held) else new_login_csrf()
        answer = self.render(request, "login.html", None, status, login_csrf=nonce, message=message)
        answer.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=3600,
            path="/login",
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )
        return answer

    async def login_page(self, request: Request) -> Response:
        if await self.session_of(request) is not None:
            return RedirectResponse("/", 303)
        try:
            vouched = self.auth.single_sign_on(request)
        except ApiProblem as problem:  # a user the proxy knows, with no role here
            return self.render(request, "error.html", None, problem.status, problem=problem)
        if vouched is not None:
            secret, session = await self.sessions.sign_in_as(vouched)
            log.info("dashboard sign-in", user=session.name, role=session.role.value, sso=True)
            return self._signed_in(request, secret)
        return self._login_form(request)

    async def login(self, request: Request) -> Response:
        try:
            form = await read_form(request, self.body_timeout)
        except ApiProblem as problem:
            return self._login_form(request, problem.status, "The form could not be read.")
        if not same(request.cookies.get(LOGIN_COOKIE, ""), form.get(CSRF_FIELD)):
            message = "The sign-in form expired. Please try again."
            return self._login_form(request, 403, message)
        started = await self.sessions.sign_in(form.get("token", ""))
        if started is None:
            return self._login_form(request, 401, "That token was not accepted.")
        secret, session = started
        log.info("dashboard sign-in", user=session.name, role=session.role.value)
        return self._signed_in(request, secret)

    def _signed_in(self, request: Request, secret: str) -> Response:
        answer = RedirectResponse("/", 303)
        answer.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(self.sessions.lifetime),
            path="/",
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )
        answer.delete_cookie(LOGIN_COOKIE, path="/login")
        return answer

    async def logout(self, request: Request) -> Response:
        session = await self.session_of(request)
        if session is not None:
            try:
                form = await read_form(request, self.body_timeout)
            except ApiProblem as problem:
                return self.error(request, session, problem)
            if not same(session.csrf, form.get(CSRF_FIELD)):
                return self.error(
                    request, session, forbidden("The form's security token is wrong.")
                )
            await self.sessions.sign_out(request.cookies.get(SESSION_COOKIE))
        answer = RedirectResponse("/login", 303)
        answer.delete_cookie(SESSION_COOKIE, path="/")
        return answer

    # -- pages -------------------------------------------------------------------------------
    async def overview(self, request: Request, session: SessionRecord) -> Response:
        async def fetch(name: str, query: dict[str, Any]) -> Any:
            return await self.api(request, session, name, query=query or None)

        figures = await stats.overview(fetch)
        return self.render(request, "overview.html", session, nav="overview", figures=figures)

    async def _delivery_rows(
        self, request: Request, session: SessionRecord, filters: dict[str, str]
    ) -> Any:
        query: dict[str, Any] = {**filters, "limit": PAGE_SIZE}
        return await self.api(request, session, "list_deliveries", query=query)

    async def deliveries(self, request: Request, session: SessionRecord) -> Response:
        filters, query = list_query(request.query_params, DELIVERY_FILTERS)
        sources = await self.api(request, session, "list_sources")
        try:
            page = await self.api(request, session, "list_deliveries", query=query)
        except ApiProblem as problem:
            if problem.status != 400:
                raise
            return self.render(
                request, "deliveries.html", session, 400, nav="deliveries", page=None,
                filters=filters, problem=problem, sources=sources.items,
                statuses=list(DeliveryStatus), live=None,
            )  # fmt: skip
        first = "cursor" not in query  # only the first page follows what arrives
        live = urlencode({"topic": Topic.DELIVERIES.value, **filters}) if first else None
        return self.render(
            request, "deliveries.html", session, nav="deliveries", page=page, filters=filters,
            sources=sources.items, statuses=list(DeliveryStatus), live=live, problem=None,
            next_url=_next(request, page.next_cursor),
        )  # fmt: skip

    async def delivery(self, request: Request, session: SessionRecord) -> Response:
        path = {"source": request.path_params["source"], "id": request.path_params["id"]}
        detail = await self.api(request, session, "get_delivery", path=path)
        return self.render(
            request, "delivery.html", session, nav="deliveries", d=detail,
            payload=None if detail.payload_redacted else fold(detail.payload),
        )  # fmt: skip

    async def _job_live(self, request: Request, session: SessionRecord, job_id: str) -> str:
        job = await self.api(request, session, "get_job", path={"id": job_id})
        return self.fragment("_job_live.html", job=job, fold=fold, when=when)

    async def job(self, request: Request, session: SessionRecord) -> Response:
        job_id = request.path_params["id"]
        job = await self.api(request, session, "get_job", path={"id": job_id})
        live_html = self.fragment("_job_live.html", job=job, fold=fold, when=when)
        return self.render(
            request, "job.html", session, nav="deliveries", job=job, live_html=live_html,
            live=urlencode({"topic": Topic.JOB.value, "id": job_id}),
        )  # fmt: skip

    async def dead_letters(self, request: Request, session: SessionRecord) -> Response:
        filters, query = list_query(request.query_params, DEAD_FILTERS)
        page = await self.api(request, session, "list_dead_letters", query=query)
        return self.render(
            request, "dead_letters.html", session, nav="dead-letters", page=page,
            filters=filters, next_url=_next(request, page.next_cursor),
        )  # fmt: skip

    async def runs(self, request: Request, session: SessionRecord) -> Response:
        filters, query = list_query(request.query_params, RUN_FILTERS)
        page = await self.api(request, session, "list_runs", query=query)
        return self.render(
            request, "runs.html", session, nav="runs", page=page, filters=filters,
            statuses=list(RunStatus), next_url=_next(request, page.next_cursor),
        )  # fmt: skip

    async def _run_view(
        self, request: Request, session: SessionRecord, run_id: str
    ) -> dict[str, Any]:
        run = await self.api(request, session, "get_run", path={"id": run_id})
        definition: dict[str, Any] = {}
        missing = False
        blueprint = {"namespace": run.namespace, "name": run.name, "version": run.version}
        try:
            found = await self.api(request, session, "get_blueprint", path=blueprint)
            definition = found.definition
        except GhappletsError:
            missing = True
        graph = layout(definition, run.steps, waiting=run.status == RunStatus.WAITING)
        steps = sorted(run.steps, key=lambda s: float(s.get("started_at") or 0))
        tasks = [n.name for n in graph.nodes]
        return {
            "run": run, "graph": graph, "steps": steps, "missing": missing, "tasks": tasks,
            "fold": fold, "when": when,
        }  # fmt: skip

    async def run(self, request: Request, session: SessionRecord) -> Response:
        run_id = request.path_params["id"]
        view = await self._run_view(request, session, run_id)
        live_html = self.fragment("_run_live.html", **view)
        return self.render(
            request, "run.html", session, nav="runs", live_html=live_html,
            live=urlencode({"topic": Topic.RUN.value, "id": run_id}), **view,
        )  # fmt: skip

    # -- actions -----------------------------------------------------------------------------
    def _done(self, request: Request, message: str, back: str) -> Response:
        if is_htmx(request):
            return HTMLResponse(self.fragment("_notice.html", ok=True, message=message))
        return RedirectResponse(back, 303)

    async def replay_job(
        self, request: Request, session: SessionRecord, form: dict[str, str]
    ) -> Response:
        job_id = request.path_params["id"]
        await self.api(request, session, "replay_job_now", path={"id": job_id})
        return self._done(request, "Queued again.", f"/jobs/{path_part(job_id)}")

    async def replay_delivery(
        self, request: Request, session: SessionRecord, form: dict[str, str]
    ) -> Response:
        path = {"source": request.path_params["source"], "id": request.path_params["id"]}
        done = await self.api(request, session, "replay_delivery_now", path=path)
        back = f"/deliveries/{path_part(path['source'])}/{path_part(path['id'])}"
        return self._done(request, f"{len(done.jobs)} job(s) queued again.", back)

    async def replay_dead_letters(
        self, request: Request, session: SessionRecord, form: dict[str, str]
    ) -> Response:
        filters = picked(form, DEAD_FILTERS)
        if form.get("confirm") != "yes":
            query: dict[str, Any] = {**filters, "limit": 200}
            page = await self.api(request, session, "list_dead_letters", query=query)
            if not self.calls.allowed(principal_of(session), "replay_dead_letters"):
                raise forbidden("the role viewer may not replay dead letters")
            return self.render(
                request, "dead_letters_confirm.html", session, nav="dead-letters",
                filters=filters, count=len(page.items), more=page.next_cursor is not None,
            )  # fmt: skip
        body: dict[str, Any] = {**filters, "limit": 1000}
        result = await self.api(request, session, "replay_dead_letters", body=body)
        return self.render(
            request, "dead_letters_done.html", session, nav="dead-letters", result=result,
            filters=filters,
        )  # fmt: skip

    async def control_run(
        self, request: Request, session: SessionRecord, form: dict[str, str]
    ) -> Response:
        run_id, action = request.path_params["id"], request.path_params["action"]
        path = {"id": run_id}
        if action in RUN_CONTROLS:
            done = await self.api(request, session, action, path=path)
            message = f"The run is {done.status.value}."
            back = f"/runs/{path_part(run_id)}"
        elif action == "rerun":
            started = await self.api(
                request, session, "rerun_run", path=path, body={"from": form.get("from", "")}
            )
            message = f"A new run started: {started.id}."
            back = f"/runs/{path_part(started.id)}"
        else:
            raise ApiProblem(404, "not-found", "There is no such action.")
        return self._done(request, message, back)

    async def favicon(self, request: Request) -> Response:
        return RedirectResponse("/static/favicon.svg", 301)

    # -- live --------------------------------------------------------------------------------
    async def events(self, request: Request) -> Response:
        session = await self.session_of(request)
        if session is None:
            return Response("sign in first", 401, media_type="text/plain")
        params = request.query_params
        item = params.get("id", "")
        try:
            topic = Topic(params.get("topic", ""))
        except ValueError:
            return Response("unknown topic", 400, media_type="text/plain")
        if len(item) > ID_MAX:
            return Response("the id is too long", 400, media_type="text/plain")
        if topic != Topic.DELIVERIES and not item:
            return Response("an id is needed", 400, media_type="text/plain")
        filters = picked(params, DELIVERY_FILTERS)
        secret = request.cookies.get(SESSION_COOKIE)

        async def poll() -> dict[str, str] | None:
            current = await self.sessions.find(secret)
            if current is None:
                return None
            try:
                if topic == Topic.JOB:
                    return {topic: await self._job_live(request, current, item)}
                if topic == Topic.RUN:
                    view = await self._run_view(request, current, item)
                    return {topic: self.fragment("_run_live.html", **view)}
                page = await self._delivery_rows(request, current, filters)
                return {topic: self.fragment("_delivery_rows.html", page=page, when=when)}
            except (ApiProblem, GhappletsError) as exc:
                log.info("live update stopped", topic=topic, error=str(exc))
                return None
            except Exception as exc:  # a bug: the stream ends, and the log says what
                log.exception("live update failed", topic=topic, error=repr(exc))
                return None

        if not self.live.admit():
            return Response(
                "too many live streams", 503, {"retry-after": "10"}, media_type="text/plain"
            )
        return self.live.response(poll)


def _next(request: Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    params = {k: v for k, v in request.query_params.items() if k != "cursor"}
    return f"{request.url.path}?{urlencode({**params, 'cursor': cursor})}"
