"""The dashboard's parts without a browser or a server: live streams' bounds, the graph's
layout, the charts' geometry, folded JSON's budget, form reading, the security headers, the
vendored files' checksums and the ``server.dashboard`` settings."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ghapplets.admin.problems import ApiProblem
from ghapplets.config.loader import load_config
from ghapplets.config.models import DashboardConfig, SecureCookie
from ghapplets.dashboard import charts, graph
from ghapplets.dashboard.folding import BUDGET, TEXT_MAX, fold
from ghapplets.dashboard.forms import MAX_FIELDS, MAX_FORM, read_form
from ghapplets.dashboard.live import LiveHub, event
from ghapplets.dashboard.security import CSP, SecurityHeaders
from ghapplets.dashboard.sessions import same
from ghapplets.dashboard.stats import p95

STATIC = Path(__file__).resolve().parents[2] / "src" / "ghapplets" / "dashboard" / "static"


# -- live streams ---------------------------------------------------------------------------
async def collect(hub: LiveHub, poll: Any, limit: int = 50) -> list[bytes]:
    frames: list[bytes] = []
    async for frame in hub.frames(poll):
        frames.append(frame)
        if len(frames) >= limit:
            break
    return frames


def test_an_event_puts_every_line_on_a_data_line() -> None:
    assert event("job", "<p>a</p>\n<p>b</p>") == b"event: job\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
    assert event("x", "a\r\nb\rc") == b"event: x\ndata: a\ndata: b\ndata: c\n\n"


def test_streams_are_admitted_up_to_the_limit() -> None:
    hub = LiveHub(limit=2, lifetime=60)
    assert hub.admit() and hub.admit()
    assert not hub.admit()
    hub.leave()
    assert hub.admit()
    hub.close()
    hub.leave()
    assert not hub.admit()  # closing: none more
    nobody = LiveHub(limit=0, lifetime=60)
    assert not nobody.admit()


async def test_a_stream_sends_changes_only_and_ends_after_its_lifetime() -> None:
    hub = LiveHub(limit=1, lifetime=0.35, interval=0.05)
    shown = iter(["a", "a", "b", "b", "b", "b", "b", "b", "b", "b", "b", "b"])

    async def poll() -> dict[str, str]:
        return {"job": next(shown)}

    started = asyncio.get_running_loop().time()
    frames = await collect(hub, poll)
    took = asyncio.get_running_loop().time() - started
    assert frames[0].startswith(b"retry: ")
    assert frames[1:] == [event("job", "a"), event("job", "b")]
    assert 0.3 <= took < 2


async def test_a_stream_ends_when_the_hub_closes() -> None:
    hub = LiveHub(limit=1, lifetime=3600, interval=30)

    async def poll() -> dict[str, str]:
        return {"job": "same"}

    task = asyncio.create_task(collect(hub, poll))
    await asyncio.sleep(0.1)
    assert not task.done()  # it waits for the next poll, 30 s away
    hub.close()
    frames = await asyncio.wait_for(task, 2)
    assert frames[-1] == event("job", "same")


async def test_a_stream_ends_with_its_session() -> None:
    hub = LiveHub(limit=1, lifetime=3600, interval=0.01)
    answers: list[dict[str, str] | None] = [{"job": "x"}, None]

    async def poll() -> dict[str, str] | None:
        return answers.pop(0)

    frames = await asyncio.wait_for(collect(hub, poll), 2)
    assert frames[-1] == event("ended", "")


async def test_a_stream_gives_its_place_back_however_it_ends() -> None:
    hub = LiveHub(limit=1, lifetime=0.05, interval=0.01)

    async def poll() -> dict[str, str]:
        return {"job": "x"}

    assert hub.admit()
    app = Starlette(routes=[Route("/", lambda request: hub.response(poll))])
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/")
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "event: job" in answer.text
    assert hub.open == 0 and hub.admit()


# -- CSRF compare ----------------------------------------------------------------------------
def test_csrf_tokens_compare_exactly() -> None:
    assert same("abc", "abc")
    assert not same("abc", "abd")
    assert not same("abc", None)
    assert not same("abc", "")
    assert not same("", "")  # a session without a token never matches


# -- graph -----------------------------------------------------------------------------------
NO = {"then": "end"}
DEFINITION = {
    "do": [
        {"check": {"switch": [{"ok": {"when": "${ .ok }", "then": "ship"}}, {"no": NO}]}},
        {"ask": {"listen": {"to": {"one": {"with": {"type": "x"}}}}}},
        {"ship": {"call": "http", "then": "end"}},
        {"never": {"set": {"a": 1}}},
    ]
}


def step(ref: str, status: str, at: float) -> dict[str, Any]:
    return {"reference": ref, "status": status, "started_at": at, "name": ref.split("/")[-1]}


def test_the_graph_has_a_box_per_task_with_its_status() -> None:
    steps = [
        step("/do/0/check", "completed", 1),
        step("/do/1/ask", "faulted", 2),
        step("/do/1/ask", "running", 3),  # its latest step counts
    ]
    drawn = graph.layout(DEFINITION, steps, waiting=True)
    assert [(n.name, n.kind, n.status) for n in drawn.nodes] == [
        ("check", "switch", "completed"),
        ("ask", "listen", "waiting"),
        ("ship", "call", "not run"),
        ("never", "set", "not run"),
    ]
    ys = [n.y for n in drawn.nodes]
    assert ys == sorted(ys) and len(set(ys)) == 4  # one under the other
    jumps = [e.label for e in drawn.edges if e.jump]
    assert jumps == ["case ok: ship", "case no: end", "then: end"]
    nexts = [e for e in drawn.edges if not e.jump]
    assert len(nexts) == 1  # ask -> ship; a switch and a then: end do not fall through
    assert "ask (listen): waiting" in drawn.summary
    assert drawn.width > graph.LEFT * 2 + graph.BOX_W  # room for the jump lanes


def test_a_task_inside_a_task_marks_its_parent_running() -> None:
    nested = {"do": [{"outer": {"do": [{"inner": {"set": {}}}]}}]}
    drawn = graph.layout(nested, [step("/do/0/outer/do/0/inner", "completed", 1)])
    assert drawn.nodes[0].status == "running"


@pytest.mark.parametrize("definition", [{}, {"do": "no"}, {"do": [1, {"a": None}]}])
def test_a_strange_definition_draws_what_it_can(definition: dict[str, Any]) -> None:
    drawn = graph.layout(definition, [])
    assert all(n.status == "not run" for n in drawn.nodes)


# -- charts ----------------------------------------------------------------------------------
def test_axes_end_on_round_numbers() -> None:
    assert [charts.nice_max(v) for v in (0, 0.3, 1, 3, 7, 12, 101)] == [1, 0.5, 1, 5, 10, 20, 200]
    assert charts.nice_max(float("nan")) == 1


def test_a_line_chart_scales_its_points_to_the_axis() -> None:
    c = charts.line_chart("t", "d", ["a", "b", "c"], {"s": [0, 5, 10]})
    (s,) = c.series
    points = [tuple(map(float, p.split(","))) for p in s.points.split()]
    bottom, top = charts.HEIGHT - charts.PAD_BOTTOM, charts.PAD_TOP
    assert [y for _, y in points] == [bottom, (bottom + top) / 2, top]
    assert points[0][0] == charts.PAD_LEFT and points[-1][0] == charts.WIDTH - charts.PAD_RIGHT
    assert [t.label for t in c.y_ticks] == ["0", "5", "10"]
    assert c.rows == [["", "s"], ["a", "0"], ["b", "5"], ["c", "10"]]
    assert s.total == 15


def test_a_bar_chart_shows_an_unknown_value_as_none() -> None:
    c = charts.bar_chart("t", "d", {"events": 4, "jobs": None})
    assert [(b.label, b.height > 0) for b in c.bars] == [("events", True), ("jobs", False)]
    assert c.rows[2] == ["jobs", "n/a"]
    assert charts.bar_chart("t", "d", {}).empty


def test_p95_is_the_nearest_rank() -> None:
    assert p95([]) == 0
    assert p95([3.0]) == 3.0
    assert p95([float(i) for i in range(1, 101)]) == 95.0


# -- folded JSON -----------------------------------------------------------------------------
def test_folded_json_keeps_to_its_budget() -> None:
    tree = fold({"items": list(range(BUDGET * 3))})
    ((key, items),) = tree.children
    assert key == "items" and items.kind == "array"
    assert len(items.children) < BUDGET and items.hidden == BUDGET * 3 - len(items.children)
    long = fold("x" * (TEXT_MAX * 2))
    assert long.kind == "scalar" and len(long.text) < TEXT_MAX + 50
    assert fold({"a": [1, {"b": None}]}).children[0][1].children[1][1].children[0][1].text == "null"


# -- forms -----------------------------------------------------------------------------------
async def form_of(body: bytes, ctype: str = "application/x-www-form-urlencoded") -> Any:
    async def echo(request: Request) -> Response:
        try:
            return PlainTextResponse(repr(sorted((await read_form(request)).items())))
        except ApiProblem as problem:
            return PlainTextResponse(problem.kind, problem.status)

    app = Starlette(routes=[Route("/", echo, methods=["POST"])])
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/", content=body, headers={"content-type": ctype})


async def test_forms_are_bounded() -> None:
    ok = await form_of(b"csrf=a&token=b&token=c")
    assert ok.text == "[('csrf', 'a'), ('token', 'b')]"  # the first of a repeated name
    assert (await form_of(b"a=" + b"x" * MAX_FORM)).status_code == 413
    assert (await form_of(b"{}", "application/json")).status_code == 415
    many = "&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1)).encode()
    assert (await form_of(many)).status_code == 400
    assert (await form_of(b"a=%ff%fe")).status_code == 200  # replaced, not a crash


# -- headers ---------------------------------------------------------------------------------
async def test_every_answer_gets_the_security_headers() -> None:
    async def page(request: Request) -> Response:
        return PlainTextResponse("hi", headers={"x-frame-options": "ALLOWALL"})

    async def cached(request: Request) -> Response:
        return PlainTextResponse("hi", headers={"cache-control": "max-age=60"})

    app = SecurityHeaders(Starlette(routes=[Route("/", page), Route("/c", cached)]))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/")
        other = await client.get("/c")
    assert answer.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert answer.headers["x-frame-options"] == "DENY"  # never what the page said
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    assert other.headers["cache-control"] == "max-age=60"


# -- vendored files and static assets --------------------------------------------------------
def test_the_vendored_files_are_the_ones_published() -> None:
    table = (STATIC / "VENDORED.md").read_text()
    rows = re.findall(r"^\| `(vendor/[^`]+)` \|.*?\| `([0-9a-f]{64})` \|", table, re.MULTILINE)
    assert len(rows) == 2
    for name, digest in rows:
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name
    templates = (STATIC.parent / "templates" / "base.html").read_text()
    for name, _ in rows:
        assert f"/static/{name}" in templates  # the page loads the file the table vouches for


def test_no_template_or_asset_has_inline_code() -> None:
    for template in (STATIC.parent / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert not re.search(r"\sstyle\s*=", text), template.name


# -- settings --------------------------------------------------------------------------------
def test_dashboard_settings_and_their_bounds(tmp_path: Path) -> None:
    defaults = DashboardConfig()
    assert (defaults.enabled, defaults.session_hours, defaults.secure_cookie) == (
        True,
        8.0,
        SecureCookie.AUTO,
    )
    assert (defaults.live_connections, defaults.live_seconds) == (50, 300.0)
    env = {
        "GHAPPLETS_SERVER__DASHBOARD__ENABLED": "false",
        "GHAPPLETS_SERVER__DASHBOARD__SECURE_COOKIE": "always",
        "GHAPPLETS_SERVER__DASHBOARD__LIVE_CONNECTIONS": "3",
    }
    yaml = "project: demo\nserver:\n  dashboard:\n    session_hours: 2\n"
    (tmp_path / "ghapplets.yaml").write_text(yaml)
    loaded = load_config(tmp_path, environ=env).config.server.dashboard
    assert loaded.session_hours == 2
    assert not loaded.enabled and loaded.secure_cookie == SecureCookie.ALWAYS
    assert loaded.live_connections == 3
    for bad in ({"session_hours": 0}, {"secure_cookie": "sometimes"}, {"live_seconds": 1}):
        with pytest.raises(ValidationError):
            DashboardConfig.model_validate(bad)
    with pytest.raises(ValidationError):
        DashboardConfig.model_validate({"colour": "blue"})
