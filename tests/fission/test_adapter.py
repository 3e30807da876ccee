"""The Fission adapter: a Fission-style request in, the answer Ghapplets' http runtime (or a
Fission Workflow) reads out, with the applet run as the python runtime runs it."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import orjson
import pytest

from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import Invocation, build_runtime
from ghapplets.events.cloudevent import CloudEvent
from ghapplets.fission import applet_for, entry
from ghapplets.fission.adapter import (
    Dialect,
    FissionApplet,
    FissionRequest,
    read_call,
)
from tests.conftest import write
from tests.fission.conftest import Bridge

EVENT = CloudEvent(
    id="delivery-7",
    source="/github",
    type="com.github.issues.opened",
    subject="octo/repo#7",
    data={"title": "crash on start"},
    extensions={"githubhost": "github.com"},
)


def fission_request(data: dict[str, object], **headers: str) -> FissionRequest:
    """What Fission's router hands the function when Ghapplets' http runtime POSTs an event:
    ce-* headers (in the case Go's router gives them), the data as the body."""
    event = CloudEvent(
        id=EVENT.id, source=EVENT.source, type=EVENT.type, subject=EVENT.subject, data=data
    )
    sent = {k.title(): v for k, v in event.binary_headers().items()}
    sent.update({"Idempotency-Key": "job-1", "X-Ghapplets-Attempt": "2"} | headers)
    return FissionRequest(sent, event.data_bytes())


async def test_a_cloudevent_runs_the_handler_and_answers_the_result(
    applet_folder: Path, secrets_dir: Path
) -> None:
    applet = FissionApplet(applet_folder, secrets_dir=secrets_dir)
    reply = await applet.answer(
        fission_request({"title": "crash"}, **{"X-Ghapplets-Delivery-Id": "d-1"})
    )
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "ok": True,
        "result": {
            "title": "crash",
            "type": "com.github.issues.opened",
            "key": "job-1",
            "attempt": 2,
            "delivery": "d-1",
            "secret_length": len("s3cr3t-jira-token"),
        },
    }
    await applet.aclose()


async def test_errors_answer_the_contract(applet_folder: Path, secrets_dir: Path) -> None:
    applet = FissionApplet(applet_folder, secrets_dir=secrets_dir)
    busy = await applet.answer(fission_request({"busy": True}))
    assert busy.status == 503 and busy.headers["retry-after"] == "30"
    assert busy.json() == {
        "ok": False,
        "error": {
            "type": "RetryableError",
            "message": "Jira is busy",
            "retryable": True,
            "retry_after": 30.0,
        },
    }
    bad = await applet.answer(fission_request({"bad": True}))
    assert bad.status == 422
    assert bad.json()["error"] == {
        "type": "JiraRejected",
        "message": "Jira refused the issue",
        "retryable": False,
    }
    assert bad.json()["errorType"] == "JiraRejected"  # what a workflow's catch routes on
    await applet.aclose()


async def test_secret_values_are_redacted_from_the_answer(
    applet_folder: Path, secrets_dir: Path
) -> None:
    applet = FissionApplet(applet_folder, secrets_dir=secrets_dir)
    reply = await applet.answer(fission_request({"leak": True}))
    assert reply.status == 200 and reply.json()["result"] == {"token": "***"}
    assert b"s3cr3t" not in reply.body
    await applet.aclose()


async def test_a_missing_secret_is_a_permanent_secret_unavailable(
    applet_folder: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no-secrets"
    empty.mkdir()
    applet = FissionApplet(applet_folder, secrets_dir=empty)
    reply = await applet.answer(fission_request({"title": "x"}))
    assert reply.status == 422
    assert reply.json()["error"]["type"] == "SecretUnavailable"
    assert "jira-token" in reply.json()["error"]["message"]


async def test_a_workflow_step_gets_a_call_event_and_answers_the_bare_result(
    applet_folder: Path, secrets_dir: Path
) -> None:
    applet = FissionApplet(applet_folder, secrets_dir=secrets_dir)
    headers = {
        "X-Fission-Workflow-Run": "run-uid-1",
        "X-Fission-Workflow-Attempt": "3",
        "Content-Type": "application/json",
    }
    request = FissionRequest(headers, orjson.dumps({"title": "from a workflow"}))
    reply = await applet.answer(request)
    assert reply.status == 200
    result = reply.json()
    assert result["title"] == "from a workflow" and result["attempt"] == 3
    assert result["type"] == "ghapplets.blueprint.call"
    again = await applet.answer(request)  # another attempt of the same step: the same key
    assert again.json()["key"] == result["key"]
    failed = await applet.answer(FissionRequest(headers, orjson.dumps({"bad": True})))
    assert failed.status == 422 and failed.json()["errorType"] == "JiraRejected"
    await applet.aclose()


def test_read_call_tells_the_dialects_apart() -> None:
    ce = read_call("a", fission_request({"x": 1}))
    assert ce.dialect is Dialect.CLOUDEVENT and ce.event.data == {"x": 1}
    assert ce.job_id == "job-1" and ce.attempt == 2 and ce.delivery_id == EVENT.id
    assert ce.event.extensions == {}  # the test event's ce-* headers hold no extension
    wf = read_call("a", FissionRequest({"x-fission-workflow-run": "r"}, b"[1, 2]"))
    assert wf.dialect is Dialect.WORKFLOW and wf.event.data == [1, 2] and wf.attempt == 1
    other = read_call("b", FissionRequest({"x-fission-workflow-run": "r"}, b"[1, 2]"))
    assert other.job_id != wf.job_id  # another applet's step


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"Content-Type": "application/json"}, b"{}", "not a CloudEvent"),
        (
            {"ce-id": "1", "ce-source": "/s", "ce-type": "t", "content-type": "application/json"},
            b"{not json",
            "not valid JSON",
        ),
        ({"x-fission-workflow-run": "r"}, b"{not json", "not JSON"),
    ],
)
async def test_a_request_that_is_no_event_is_a_permanent_bad_request(
    applet_folder: Path, secrets_dir: Path, headers: dict[str, str], body: bytes, message: str
) -> None:
    applet = FissionApplet(applet_folder, secrets_dir=secrets_dir)
    reply = await applet.answer(FissionRequest(headers, body))
    assert reply.status == 422
    error = reply.json()["error"]
    assert error["type"] == "BadRequest" and message in error["message"]


async def test_an_applet_that_does_not_load_is_a_permanent_entry_error(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    write(folder / "applet.yaml", "name: broken\nruntime: python\nentry: handler.py\n")
    write(folder / "handler.py", "raise RuntimeError('no database')\n")
    reply = await FissionApplet(folder).answer(fission_request({}))
    assert reply.status == 422
    assert reply.json()["error"]["type"] == "EntryError"
    assert "no database" in reply.json()["error"]["message"]


async def test_the_http_runtime_reads_the_answers_as_the_applet_meant_them(
    applet_folder: Path, secrets_dir: Path, bridge: Bridge
) -> None:
    """Ghapplets' own http runtime, POSTing to the adapter: success, retryable, permanent."""
    applet = FissionApplet(applet_folder, secrets_dir=secrets_dir)
    spec = AppletSpec(name="triage", runtime="http", url="http://router.fission/ghapplets/triage")
    async with bridge(applet) as client, build_runtime(spec, http=client) as runtime:

        async def invoke(data: dict[str, object]) -> AppletOutcome:
            event = CloudEvent(id="e-1", source="/github", type=EVENT.type, data=data)
            return await runtime.invoke(Invocation(event=event, job_id="job-9", attempt=4))

        ok = await invoke({"title": "t"})
        assert ok.ok and ok.result["key"] == "job-9" and ok.result["attempt"] == 4
        busy = await invoke({"busy": True})
        assert not busy.ok and busy.retryable and busy.retry_after == 30
        assert busy.error_type == "RetryableError"
        bad = await invoke({"bad": True})
        assert not bad.ok and not bad.retryable and bad.error_type == "JiraRejected"
    await applet.aclose()


def test_the_synchronous_call_runs_on_the_adapters_own_loop(
    applet_folder: Path, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How Flask calls it: from a thread with no event loop, twice (the runtime stays warm)."""
    monkeypatch.setenv("GHAPPLETS_FISSION_SECRETS_DIR", str(secrets_dir))
    applet = applet_for(applet_folder / "handler.py", secrets="/secrets/nowhere")
    assert applet.secrets_dir == secrets_dir  # the variable wins over the export's default
    first = applet(fission_request({"title": "one"}))
    second = applet(fission_request({"title": "two"}))
    assert first.json()["result"]["title"] == "one"
    assert second.json()["result"]["title"] == "two"


def test_main_answers_flasks_request_as_a_tuple(
    applet_folder: Path, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry Fission's Python environment calls: Flask's ``request`` in, a tuple out."""
    request = fission_request({"title": "via flask"})

    class FlaskRequest:
        headers = request.headers

        @staticmethod
        def get_data() -> bytes:
            return request.body

    monkeypatch.setitem(sys.modules, "flask", types.SimpleNamespace(request=FlaskRequest))
    main = entry(applet_folder / "ghapplets_fission_entry.py", secrets=str(secrets_dir))
    body, status, headers = main()
    assert status == 200 and headers["content-type"] == "application/json"
    assert orjson.loads(body)["result"]["title"] == "via flask"


async def test_an_exec_applet_runs_through_the_adapter_with_the_exec_runtime(
    tmp_path: Path,
) -> None:
    """``--exec-env python``: the adapter runs an exec applet with Ghapplets' exec runtime."""
    folder = tmp_path / "exec"
    write(
        folder / "applet.yaml",
        "name: shell\nruntime: exec\ncommand: [./run]\non: [com.github.*]\n",
    )
    write(
        folder / "run",
        "#!/bin/sh\nif grep -q busy; then exit 75; fi\n"
        'echo "{\\"type\\": \\"$GHAPPLETS_EVENT_TYPE\\"}"\n',
        mode=0o755,
    )
    applet = FissionApplet(folder)
    ok = await applet.answer(fission_request({"title": "x"}))
    assert ok.status == 200 and ok.json() == {"ok": True, "result": {"type": EVENT.type}}
    busy = await applet.answer(fission_request({"busy": True}))
    assert busy.status == 503 and busy.json()["error"]["retryable"] is True
    await applet.aclose()
