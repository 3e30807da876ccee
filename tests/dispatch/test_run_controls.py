"""The operators' controls of blueprint runs (``ghapplets runs`` uses them): cancel, suspend,
resume and rerun, on the embedded store and broker, in process, with no worker taking the
messages they queue (the test sees them published, and still queued)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ghapplets.backends import Backends, open_backends
from ghapplets.broker.base import OutboundMessage
from ghapplets.config.models import ProjectConfig
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.runs import cancel_run, rerun, resume_run, suspend_run
from ghapplets.exceptions import NotFound
from ghapplets.store.records import RunRecord, RunStatus

DEFINITION = {"document": {"namespace": "test", "name": "twice", "version": "0.2.0"}, "do": []}


def step(name: str, index: int) -> dict[str, Any]:
    return {
        "key": f"/do/{index}/{name}",
        "name": name,
        "reference": f"/do/{index}/{name}",
        "status": "completed",
        "started_at": 1000.0 + index,
        "output": {"n": index},
    }


@pytest.fixture
async def backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backends]:
    async with open_backends(ProjectConfig(), tmp_path / "data") as b:
        real = b.broker.publish_many
        sent: list[OutboundMessage] = []

        async def publish_many(messages: Sequence[OutboundMessage]) -> Any:
            sent.extend(messages)
            return await real(messages)

        monkeypatch.setattr(b.broker, "publish_many", publish_many)
        b.sent = sent  # type: ignore[attr-defined]
        yield b


async def stored_run(b: Backends, status: RunStatus, steps: int = 0) -> RunRecord:
    now = time.time() - 60
    run = RunRecord(
        id="run-1",
        namespace="test",
        name="twice",
        version="0.2.0",
        digest="d" * 64,
        definition=DEFINITION,
        status=status,
        input={"n": 21},
        started_at=now,
        updated_at=now,
        trigger="github:d-1",
    )
    assert await b.store.create_run(run)
    for i, name in enumerate(["first", "second", "third"][:steps]):
        await b.store.checkpoint_step(run.id, step(name, i))
    return await b.store.get_run(run.id)


async def queued(b: Backends) -> list[tuple[str, str]]:
    """The run messages published since the last call: (run id, message id) each; every
    message published so far is still on the jobs stream."""
    sent: list[OutboundMessage] = b.sent  # type: ignore[attr-defined]
    found = [(msg.headers[m.H_RUN], msg.msg_id) for msg in sent if msg.stream == m.JOBS]
    assert len(found) == len(sent)
    b.seen = getattr(b, "seen", 0)  # type: ignore[attr-defined]
    new, b.seen = found[b.seen :], len(found)  # type: ignore[attr-defined]
    assert await b.broker.depth(m.JOBS) == len(found)
    return new


async def test_resume_wakes_a_suspended_run_now_with_a_message_of_its_own(
    backends: Backends,
) -> None:
    await stored_run(backends, RunStatus.SUSPENDED)
    before = time.time()
    assert await resume_run(backends.store, backends.broker, "run-1")
    run = await backends.store.get_run("run-1")
    assert run.status == RunStatus.WAITING
    assert run.wake_at is not None and before <= run.wake_at <= time.time()
    [(run_id, msg_id)] = await queued(backends)
    assert run_id == "run-1" and msg_id.startswith("run:run-1:resume:")
    assert await resume_run(backends.store, backends.broker, "run-1") is False  # not suspended
    assert await queued(backends) == []  # and nothing more was queued
    with pytest.raises(NotFound):
        await resume_run(backends.store, backends.broker, "nope")


async def test_each_resume_is_a_message_of_its_own(backends: Backends) -> None:
    """A second suspend and resume must not be taken for a duplicate of the first."""
    await stored_run(backends, RunStatus.SUSPENDED)
    assert await resume_run(backends.store, backends.broker, "run-1")
    assert await suspend_run(backends.store, "run-1")
    assert await resume_run(backends.store, backends.broker, "run-1")
    ids = [msg_id for _, msg_id in await queued(backends)]
    assert len(ids) == 2 and len(set(ids)) == 2


async def test_suspend_and_cancel_take_only_runs_that_have_not_ended(backends: Backends) -> None:
    await stored_run(backends, RunStatus.WAITING)
    assert await suspend_run(backends.store, "run-1")
    assert await suspend_run(backends.store, "run-1") is False  # already suspended
    assert await cancel_run(backends.store, "run-1")  # a suspended run can be cancelled
    assert (await backends.store.get_run("run-1")).status == RunStatus.CANCELLED
    assert await cancel_run(backends.store, "run-1") is False
    assert await suspend_run(backends.store, "run-1") is False
    for control in (cancel_run, suspend_run):
        with pytest.raises(NotFound):
            await control(backends.store, "nope")


async def test_rerun_is_a_new_run_of_the_same_definition_with_the_steps_before_the_task(
    backends: Backends,
) -> None:
    old = await stored_run(backends, RunStatus.COMPLETED, steps=3)
    before = time.time()
    new_id = await rerun(backends.store, backends.broker, "run-1", "third")
    new = await backends.store.get_run(new_id)
    assert str(uuid.UUID(new_id)) == new_id and new_id != old.id
    assert (new.namespace, new.name, new.version, new.digest) == (
        old.namespace,
        old.name,
        old.version,
        old.digest,
    )
    assert new.definition == DEFINITION  # pinned to the old run's, whatever the files say now
    assert new.input == {"n": 21} and new.status == RunStatus.PENDING
    assert new.trigger == "rerun:run-1"
    assert before <= new.started_at <= time.time()
    assert [s["name"] for s in await backends.store.steps(new_id)] == ["first", "second"]
    assert await queued(backends) == [(new_id, f"run:{new_id}:start")]
    again = await rerun(backends.store, backends.broker, "run-1", "/do/1/second")  # by reference
    assert again != new_id
    assert [s["name"] for s in await backends.store.steps(again)] == ["first"]


async def test_rerun_from_a_task_the_run_never_ran_names_those_it_ran(
    backends: Backends,
) -> None:
    await stored_run(backends, RunStatus.FAULTED, steps=2)
    with pytest.raises(
        NotFound, match=r"run run-1 ran no task 'nowhere' \(it ran: first, second\)"
    ):
        await rerun(backends.store, backends.broker, "run-1", "nowhere")
    await backends.store.create_run(
        dataclasses.replace(await backends.store.get_run("run-1"), id="run-2")
    )
    with pytest.raises(NotFound, match=r"\(it ran: none\)"):
        await rerun(backends.store, backends.broker, "run-2", "first")
    assert await queued(backends) == []
