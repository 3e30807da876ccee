"""A real ``ghapplets serve`` stops promptly with a dashboard open: uvicorn waits for every
open answer (up to ``server.drain_timeout``, 60 s here) before it exits, and a live stream
never ends by itself, so the server tells the streams to end when it shuts down."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from ghapplets.store.records import Role
from tests.conftest import ProjectBuilder
from tests.dashboard.browser import running_site

pytestmark = pytest.mark.slow
DRAIN = 60.0  # the drain timeout: without the hook, SIGTERM would take this long


def test_serve_stops_promptly_with_live_streams_open(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    env = {"GHAPPLETS_SERVER__DRAIN_TIMEOUT": str(DRAIN)}
    with running_site(project, tmp_path, **env) as site:
        with httpx.Client(base_url=site.admin_url, timeout=10) as browser:
            form = browser.get("/login").text
            nonce = re.search(r'name="csrf" value="([^"]+)"', form)
            assert nonce
            done = browser.post(
                "/login", data={"csrf": nonce.group(1), "token": site.tokens[Role.VIEWER]}
            )
            assert done.status_code == 303
            job = site.api("/jobs")["items"][0]["id"]
            with (
                browser.stream("GET", "/events", params={"topic": "deliveries"}) as one,
                browser.stream("GET", "/events", params={"topic": "job", "id": job}) as two,
            ):
                readers = []
                for stream in (one, two):
                    assert stream.status_code == 200
                    chunks = stream.iter_bytes()
                    assert next(chunks).startswith(b"retry: ")
                    readers.append(chunks)
                started = time.monotonic()
                site.server.proc.send_signal(signal.SIGTERM)
                code = site.server.proc.wait(timeout=DRAIN + 15)
                took = time.monotonic() - started
                for chunks in readers:  # each stream ended cleanly (not cut off)
                    b"".join(chunks)
    assert code == 0, site.server.log.read_text()
    assert took < DRAIN / 3, f"serve took {took:.1f}s to stop with two live streams open"
