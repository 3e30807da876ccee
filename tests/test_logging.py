"""Logging: registered secret values never reach a log line; the delivery id is on every line
logged inside ``bind_delivery`` and on none after it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import ghapplets.logging as ghlog
from ghapplets.logging import bind_delivery, configure, get_logger, redact, register_secret
from tests.cli.helpers import logging_restored

SECRET = "tok-3f9a1c77e2"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start with no registered secrets; put the global logging setup back afterwards."""
    monkeypatch.setattr(ghlog, "_SECRETS", set())
    monkeypatch.setattr(ghlog, "_ORDERED", ())
    with logging_restored():
        yield


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Any:
    """JSON logging to the captured stderr; call the fixture to get the parsed lines so far."""
    configure("json", "debug")

    def read() -> list[dict[str, Any]]:
        err = capsys.readouterr().err
        return [json.loads(line) for line in err.splitlines() if line.strip()]

    return read


def raw(lines: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(line) for line in lines)


def test_a_registered_value_is_redacted_everywhere(lines: Any) -> None:
    register_secret(SECRET)
    log = get_logger("test")
    log.info(f"event text with {SECRET}")
    log.info("fields", token=SECRET, url=f"https://x/?t={SECRET}&a=1")
    log.info(
        "nested",
        request={"headers": {"authorization": f"Bearer {SECRET}"}, "items": [SECRET, (1, SECRET)]},
        ids={SECRET, "other"},
    )
    log.warning("objects", error=ValueError(f"rejected {SECRET}"), body=SECRET.encode())
    log.info("positional %s", SECRET)
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        log.exception("with traceback")
    got = lines()
    assert len(got) == 6
    text = raw(got)
    assert SECRET not in text
    assert got[0]["event"] == "event text with ***"
    assert got[1]["token"] == "***" and got[1]["url"] == "https://x/?t=***&a=1"
    assert got[2]["request"]["headers"]["authorization"] == "Bearer ***"
    assert got[2]["request"]["items"] == ["***", [1, "***"]]
    assert "***" in got[3]["error"] and "***" in got[3]["body"]
    assert got[4]["event"] == "positional ***"
    assert "RuntimeError: failed with ***" in got[5]["exception"]


def test_other_values_and_types_are_untouched(lines: Any) -> None:
    register_secret(SECRET)
    get_logger().info(
        "plain", n=3, f=1.5, b=True, none=None, d={"k": [1, "v"]}, error=KeyError("x")
    )
    (line,) = lines()
    assert line["n"] == 3 and line["f"] == 1.5 and line["b"] is True and line["none"] is None
    assert line["d"] == {"k": [1, "v"]} and line["error"] == "KeyError('x')"


def test_a_secret_containing_another_is_redacted_whole(lines: Any) -> None:
    # whatever the order they were registered in, no part of the longer one shows
    for pair in (("abcd1234", "abcd1234-efgh5678"), ("wxyz-9876-stuv", "wxyz")):
        for value in pair:
            register_secret(value)
    get_logger().info("x", a="abcd1234-efgh5678", b="wxyz-9876-stuv", c="abcd1234 and wxyz")
    (line,) = lines()
    assert line["a"] == "***" and line["b"] == "***" and line["c"] == "*** and ***"
    assert redact("abcd1234-efgh5678!") == "***!"


def test_many_nested_secrets_leave_nothing_behind() -> None:
    longest = "k3y-" + "0123456789abcdef" * 3
    for n in range(8, len(longest) + 1, 5):  # prefixes, registered shortest first
        register_secret(longest[:n])
    register_secret(longest)
    assert redact(f"<{longest}>") == "<***>"


def test_short_and_empty_values_are_not_registered(lines: Any) -> None:
    for value in (None, "", b"", "abc"):
        register_secret(value)
    get_logger().info("the abc of it")
    assert lines()[0]["event"] == "the abc of it"
    register_secret(SECRET.encode())  # bytes count too
    assert redact(f"[{SECRET}]") == "[***]"


def test_redaction_applies_to_values_registered_after_configure(lines: Any) -> None:
    log = get_logger()
    log.info("before", v=SECRET)
    register_secret(SECRET)
    log.info("after", v=SECRET)
    before, after = lines()
    assert before["v"] == SECRET  # not registered yet
    assert after["v"] == "***"


def test_bind_delivery_is_on_every_line_inside_and_none_after(lines: Any) -> None:
    log = get_logger("test")
    log.info("before")
    with bind_delivery("d-1", source="github"):
        log.info("inside")
        get_logger("other").warning("another logger")
        with bind_delivery("d-2"):
            log.info("nested")
        log.info("inside again")
    log.info("after")
    got = {line["event"]: line for line in lines()}
    assert "delivery_id" not in got["before"] and "delivery_id" not in got["after"]
    assert "source" not in got["after"]
    for event in ("inside", "another logger", "inside again"):
        assert got[event]["delivery_id"] == "d-1" and got[event]["source"] == "github"
    assert got["nested"]["delivery_id"] == "d-2" and got["nested"]["source"] == "github"


def test_bind_delivery_is_reset_when_the_block_raises(lines: Any) -> None:
    with pytest.raises(ValueError), bind_delivery("d-err"):
        raise ValueError("boom")
    get_logger().info("after")
    assert "delivery_id" not in lines()[0]


def test_concurrent_tasks_keep_their_own_delivery_id(lines: Any) -> None:
    async def job(delivery: str) -> None:
        with bind_delivery(delivery):
            for _ in range(3):
                await asyncio.sleep(0)
                get_logger().info("step")

    async def main() -> None:
        await asyncio.gather(job("a"), job("b"))
        get_logger().info("done")

    asyncio.run(main())
    got = lines()
    assert sorted(line.get("delivery_id") for line in got[:-1]) == ["a"] * 3 + ["b"] * 3
    assert got[-1]["event"] == "done" and "delivery_id" not in got[-1]


def test_in_a_subprocess_stderr_has_no_secret() -> None:
    script = textwrap.dedent(
        f"""
        from ghapplets.logging import configure, get_logger, register_secret, bind_delivery
        configure("json", "info")
        register_secret({SECRET!r})
        with bind_delivery("d-sub"):
            get_logger("x").info("calling", headers={{"x-token": {SECRET!r}}})
        get_logger("x").info("done", note="no secret here")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    first, second = (json.loads(line) for line in proc.stderr.splitlines())
    assert SECRET not in proc.stderr
    assert first["headers"] == {"x-token": "***"} and first["delivery_id"] == "d-sub"
    assert "delivery_id" not in second


def test_console_format_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure("console", "info")
    register_secret(SECRET)
    get_logger().info("console", token=SECRET, nested={"a": [SECRET]})
    err = capsys.readouterr().err
    assert "console" in err and SECRET not in err and "***" in err


def test_the_level_filters(lines: Any) -> None:
    configure("json", "warning")
    get_logger().info("hidden")
    get_logger().warning("shown")
    assert [line["event"] for line in lines()] == ["shown"]


def test_a_value_that_contains_itself_is_redacted_not_looped_over(lines: Any) -> None:
    register_secret(SECRET)
    looped: dict[str, Any] = {"token": SECRET}
    looped["self"] = looped
    deep: Any = SECRET
    for _ in range(ghlog.MAX_NESTING + 5):
        deep = [deep]
    get_logger("test").info("odd values", looped=looped, deep=deep)
    [line] = lines()
    assert SECRET not in raw([line])
    assert line["looped"]["token"] == "***"
    assert "***" in json.dumps(line["deep"])
