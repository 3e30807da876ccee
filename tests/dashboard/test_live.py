"""Live streams: the SSE framing, the bound on open streams, changes sent once, the lifetime, the
end at shutdown or with the session, and the place given back however a stream ends."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from ghapplets.dashboard.live import LiveHub, event


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
