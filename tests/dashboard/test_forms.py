"""Forms as the dashboard reads them: bounded in size and fields, URL-encoded only."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ghapplets.admin.problems import ApiProblem
from ghapplets.dashboard.forms import MAX_FIELDS, MAX_FORM, read_form


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
