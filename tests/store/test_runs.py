"""The run store (blueprint runs, their journals, listeners, inboxes and outbox), one suite for
every backend like test_conformance.py: each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ghapplets.blueprints import records as blueprint_records
from ghapplets.blueprints.records import StepRecord, TaskStatus
from ghapplets.exceptions import InvalidRecord, NotFound
from ghapplets.store import relational, sql
from ghapplets.store.base import RunStore
from ghapplets.store.records import (
    EVENT_ID_MAX,
    EVENT_TYPE_MAX,
    RUN_ID_MAX,
    STEP_KEY_MAX,
    UNCHANGED,
    ListenerRecord,
    RunRecord,
    RunStatus,
)
from tests.conftest import LeaseClock as Clock
from tests.store.test_conformance import BACKENDS, Stores, open_postgres, open_sqlite

T0 = 1_700_000_000.0
DEFINITION = {
    "document": {"dsl": "1.0.0", "namespace": "demo", "name": "hello", "version": "0.1.0"},
    "do": [{"greet": {"set": {"greeting": "${ .name }"}}}],
}


@pytest.fixture(params=BACKENDS)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    if request.param == "sqlite":
        opened = await open_sqlite(tmp_path / "store.db")
    else:
        opened = await open_postgres(request.getfixturevalue("pg_url"))
    yield opened
    await opened.close()


@pytest.fixture
def runs(stores: Stores) -> RunStore:
    assert isinstance(stores.history, RunStore)  # runs live in the history's database
    return stores.history


@pytest.fixture
def clock(lease_clock: Clock) -> Clock:
    """The store's clock (updated_at, finished_at, the outbox's order), moved by hand."""
    lease_clock.now = T0
    return lease_clock


def run(run_id: str = "r1", **changes: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "id": run_id,
        "namespace": "demo",
        "name": "hello",
        "version": "0.1.0",
        "digest": "sha256:" + "ab" * 32,
        "definition": DEFINITION,
        "status": RunStatus.RUNNING,
        "input": {"name": "octo"},
        "started_at": T0,
        "updated_at": T0,
        "trigger": "github:delivery-1",
    }
    return RunRecord(**{**fields, **changes})


def step(
    key: str, status: TaskStatus = TaskStatus.COMPLETED, output: Any = None, **state: Any
) -> dict[str, Any]:
    return StepRecord(
        key, f"/do/0/{key}", key, status, T0, T0 + 1, input={"in": key}, output=output, state=state
    ).to_dict()


def event(event_id: str, type: str = "com.example.ping", source: str = "/test") -> dict[str, Any]:
    return {"id": event_id, "source": source, "type": type, "specversion": "1.0", "data": {}}


def listener(run_id: str, key: str, event_type: str | None) -> ListenerRecord:
    filters = [{"with": {"type": event_type or "com\\.example\\..*"}}]
    return ListenerRecord(
        run_id=run_id, key=key, event_type=event_type, filters=filters, created_at=T0
    )


async def listen(runs: RunStore, run_id: str, key: str, *types: str | None) -> None:
    """Register the listener ``key``: a row per exact type (or one NULL row)."""
    rows = [listener(run_id, key, t) for t in types or (None,)]
    await runs.checkpoint_step(run_id, step(key, TaskStatus.RUNNING, listening=True), listen=rows)


def keyed(listeners: list[ListenerRecord]) -> list[tuple[str, str, str | None]]:
    return sorted((x.run_id, x.key, x.event_type) for x in listeners)


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in events]


# -- runs -------------------------------------------------------------------------------------
async def test_a_run_is_created_once_and_read_back_whole(runs: RunStore) -> None:
    full = run(
        output={"partial": [1, 2]},
        error={"type": "x", "status": 500},
        wake_at=T0 + 60,
        finished_at=None,
        resumes=3,
    )
    assert await runs.create_run(full)
    assert await runs.get_run("r1") == full
    # a redelivered trigger: the stored run is left as it is
    again = run(status=RunStatus.PENDING, input={"name": "other"}, trigger="cli")
    assert not await runs.create_run(again)
    assert await runs.get_run("r1") == full
    with pytest.raises(NotFound, match="no run 'nope'"):
        await runs.get_run("nope")


async def test_runs_are_listed_newest_first_by_status_and_name(runs: RunStore) -> None:
    for i, (status, name) in enumerate(
        [
            (RunStatus.COMPLETED, "hello"),
            (RunStatus.WAITING, "hello"),
            (RunStatus.WAITING, "deploy"),
            (RunStatus.RUNNING, "deploy"),
        ]
    ):
        await runs.create_run(run(f"r{i}", status=status, name=name, started_at=T0 + i))
    assert [r.id for r in await runs.list_runs()] == ["r3", "r2", "r1", "r0"]
    assert [r.id for r in await runs.list_runs(limit=2)] == ["r3", "r2"]
    assert [r.id for r in await runs.list_runs(status=RunStatus.WAITING)] == ["r2", "r1"]
    assert [r.id for r in await runs.list_runs(name="deploy")] == ["r3", "r2"]
    waiting_hello = await runs.list_runs(status=RunStatus.WAITING, name="hello")
    assert [r.id for r in waiting_hello] == ["r1"]
    assert await runs.list_runs(status=RunStatus.SUSPENDED) == []
    await runs.create_run(run("r4", name="deploy", namespace="other", started_at=T0 + 4))
    assert [r.id for r in await runs.list_runs(name="deploy")] == ["r4", "r3", "r2"]
    assert [r.id for r in await runs.list_runs(name="deploy", namespace="other")] == ["r4"]
    assert [r.id for r in await runs.list_runs(namespace="other")] == ["r4"]
    assert await runs.list_runs(name="deploy", namespace="x" * 500) == []  # none so long


async def test_update_sets_what_it_is_given_and_leaves_the_rest(
    runs: RunStore, clock: Clock
) -> None:
    await runs.create_run(run(error={"old": True}, wake_at=T0 + 5))
    clock.now = T0 + 10
    assert await runs.update_run("r1", status=RunStatus.WAITING, wake_at=T0 + 99, resumed=True)
    got = await runs.get_run("r1")
    assert (got.status, got.wake_at, got.updated_at, got.resumes) == (
        "waiting",
        T0 + 99,
        T0 + 10,
        1,
    )
    assert (got.error, got.output, got.finished_at) == ({"old": True}, None, None)  # unchanged
    assert await runs.update_run("r1", status=RunStatus.RUNNING, error=None, wake_at=None)
    got = await runs.get_run("r1")
    assert (got.error, got.wake_at, got.resumes) == (None, None, 1)  # None clears; no resume
    # a final status stamps finished_at (now, unless given) and keeps the output
    clock.now = T0 + 20
    assert await runs.update_run("r1", status=RunStatus.COMPLETED, output={"done": [1, "é"]})
    got = await runs.get_run("r1")
    assert (got.status, got.output, got.finished_at) == ("completed", {"done": [1, "é"]}, T0 + 20)
    error = {"type": "https://serverlessworkflow.io/spec/1.0.0/errors/runtime", "status": 500}
    assert await runs.update_run("r1", status=RunStatus.FAULTED, error=error, finished_at=T0 + 1)
    got = await runs.get_run("r1")
    assert (got.error, got.finished_at) == (error, T0 + 1)
    # run again (a rerun): the end and the error are cleared with None
    assert await runs.update_run("r1", status=RunStatus.RUNNING, error=None, finished_at=None)
    got = await runs.get_run("r1")
    assert (got.error, got.finished_at) == (None, None)
    with pytest.raises(InvalidRecord, match="a run's finished_at must be a number"):
        await runs.update_run("r1", status=RunStatus.FAULTED, finished_at="later")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord, match="a run's error cannot be stored as JSON"):
        await runs.update_run("r1", status=RunStatus.FAULTED, error={"n": 2**70})
    # output None is stored as the JSON null, not left as it was
    assert await runs.update_run(
        "r1", status=RunStatus.COMPLETED, output=None, finished_at=UNCHANGED
    )
    got = await runs.get_run("r1")
    assert (got.output, got.finished_at) == (None, T0 + 20)  # now again: final, not given
    assert not await runs.update_run("nope", status=RunStatus.RUNNING)
    with pytest.raises(InvalidRecord, match="not a run status: 'done'"):
        await runs.update_run("r1", status="done")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord, match="a run's wake_at must be a number"):
        await runs.update_run("r1", status=RunStatus.WAITING, wake_at="soon")  # type: ignore[arg-type]
    assert (await runs.get_run("r1")).status == RunStatus.COMPLETED


async def test_update_is_a_compare_and_set_on_the_status(runs: RunStore) -> None:
    await runs.create_run(run())
    assert await runs.update_run("r1", status=RunStatus.CANCELLED, expect={RunStatus.RUNNING})
    # the worker finishing after the cancel does not overwrite it
    finished = await runs.update_run(
        "r1", status=RunStatus.COMPLETED, output={"late": True}, expect=[RunStatus.RUNNING]
    )
    assert not finished
    got = await runs.get_run("r1")
    assert (got.status, got.output) == ("cancelled", None)
    assert not await runs.update_run("r1", status=RunStatus.RUNNING, expect=())  # none expected
    assert await runs.update_run(
        "r1", status=RunStatus.PENDING, expect={RunStatus.WAITING, RunStatus.CANCELLED}
    )
    assert (await runs.get_run("r1")).status == "pending"
    assert not await runs.update_run("nope", status=RunStatus.RUNNING, expect={RunStatus.PENDING})


async def test_one_of_two_processes_takes_up_a_waiting_run(stores: Stores) -> None:
    other = await stores.other()
    try:
        claimers = [stores.history, other.history]
        for i in range(10):
            await claimers[0].create_run(run(f"w{i}", status=RunStatus.WAITING, wake_at=T0))
            won = await asyncio.gather(
                *(
                    c.update_run(
                        f"w{i}", status=RunStatus.RUNNING, expect={RunStatus.WAITING}, resumed=True
                    )
                    for c in claimers
                )
            )
            assert sorted(won) == [False, True], won
            assert (await claimers[1].get_run(f"w{i}")).resumes == 1
    finally:
        await other.close()


# -- the journal ------------------------------------------------------------------------------
async def test_steps_keep_the_order_their_keys_were_first_recorded(
    runs: RunStore, clock: Clock
) -> None:
    await runs.create_run(run())
    assert await runs.steps("r1") == []
    await runs.checkpoint_step("r1", step("a", TaskStatus.RUNNING, due=T0 + 5))
    await runs.checkpoint_step("r1", step("b"))
    await runs.checkpoint_step("r1", step("c"))
    clock.now = T0 + 7
    done = step("a", output={"x": 1}, due=T0 + 5)
    await runs.checkpoint_step("r1", done)  # a replaced: it stays first
    await runs.checkpoint_step("r1", step("d"))
    steps = await runs.steps("r1")
    assert [s["key"] for s in steps] == ["a", "b", "c", "d"]
    assert steps[0] == done
    assert StepRecord.from_dict(steps[0]).status == TaskStatus.COMPLETED
    assert (await runs.get_run("r1")).updated_at == T0 + 7  # touched
    # another run's journal is its own
    await runs.create_run(run("r2"))
    await runs.checkpoint_step("r2", step("z"))
    await runs.checkpoint_step("r2", step("a"))
    assert [s["key"] for s in await runs.steps("r2")] == ["z", "a"]
    assert [s["key"] for s in await runs.steps("r1")] == ["a", "b", "c", "d"]
    with pytest.raises(NotFound, match="no run 'nope'"):
        await runs.checkpoint_step("nope", step("a"))
    assert await runs.steps("nope") == []


async def test_many_keys_of_one_run_in_one_batch_get_distinct_positions(runs: RunStore) -> None:
    await runs.create_run(run())
    keys = [f"/do/0/loop/for/do[{i}]/0/x" for i in range(40)]
    # written concurrently: group commit puts them in one transaction, in order
    await asyncio.gather(*(runs.checkpoint_step("r1", step(k)) for k in keys))
    assert [s["key"] for s in await runs.steps("r1")] == keys


async def test_a_checkpoint_whose_event_cannot_be_stored_keeps_nothing(
    runs: RunStore, clock: Clock
) -> None:
    await runs.create_run(run())
    await runs.checkpoint_step("r1", step("a", TaskStatus.RUNNING, due=1))
    await listen(runs, "r1", "old", "com.example.old")
    clock.now = T0 + 50
    bad = {"id": "e2", "source": "/s", "type": "t", "data": {1: "not a string key"}}
    with pytest.raises(InvalidRecord, match="an emitted event cannot be stored as JSON"):
        await runs.checkpoint_step(
            "r1",
            step("a", output="replaced"),
            emit=[event("e1"), bad],
            listen=[listener("r1", "new", "com.example.new")],
            unlisten="old",
        )
    # the step was written before the event failed: it was rolled back with the rest
    assert await runs.steps("r1") == [
        step("a", TaskStatus.RUNNING, due=1),
        step("old", TaskStatus.RUNNING, listening=True),
    ]
    assert await runs.take_outbox() == []
    listening = keyed(await runs.listeners_for(["com.example.new", "com.example.old"]))
    assert listening == [("r1", "old", "com.example.old")]
    assert (await runs.get_run("r1")).updated_at == T0


async def test_a_checkpoint_that_fails_in_the_database_midway_keeps_nothing(
    runs: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await runs.create_run(run())
    # the listener's insert is the last statement but one: step and event are written by then
    monkeypatch.setattr(sql, "INSERT_LISTENER", "INSERT INTO no_such_table VALUES (:run_id)")
    with pytest.raises(Exception, match="no_such_table"):
        await runs.checkpoint_step(
            "r1",
            step("a"),
            emit=[event("e1")],
            listen=[listener("r1", "a", None)],
        )
    assert await runs.steps("r1") == []
    assert await runs.take_outbox() == []
    assert await runs.listeners_for([]) == []
    monkeypatch.undo()
    await runs.checkpoint_step("r1", step("a"), emit=[event("e1")])  # the same write, now whole
    assert [s["key"] for s in await runs.steps("r1")] == ["a"]
    assert ids(await runs.take_outbox()) == ["e1"]


# -- the outbox -------------------------------------------------------------------------------
async def test_emitted_events_wait_in_the_outbox_once_each(runs: RunStore, clock: Clock) -> None:
    await runs.create_run(run())
    await runs.create_run(run("r2"))
    await runs.checkpoint_step("r1", step("a"), emit=[event("e3"), event("e1")])
    clock.now = T0 + 1
    await runs.checkpoint_step("r2", step("a"), emit=[event("e2")])
    # the step ran again after a crash and emits the same event: it is not there twice
    changed = {**event("e1"), "data": {"second": True}}
    await runs.checkpoint_step("r1", step("a"), emit=[changed])
    taken = await runs.take_outbox()
    assert ids(taken) == ["e3", "e1", "e2"]  # oldest first, one step's in emitted order
    assert taken[1] == event("e1")  # the first one kept
    assert ids(await runs.take_outbox(limit=2)) == ["e3", "e1"]
    assert ids(await runs.take_outbox()) == ["e3", "e1", "e2"]  # taking is not dropping
    await runs.drop_outbox(["e1", "e3", "unknown"])
    assert ids(await runs.take_outbox()) == ["e2"]
    await runs.drop_outbox([])
    await runs.drop_outbox(["e2"])
    assert await runs.take_outbox() == []


# -- listeners --------------------------------------------------------------------------------
async def test_listeners_for_an_event_type_and_those_for_every_event(runs: RunStore) -> None:
    for r in ("r1", "r2", "r3"):
        await runs.create_run(run(r))
    await listen(runs, "r1", "a", "com.example.push", "com.example.tag")
    await listen(runs, "r2", "b")  # every event (its filters name no one exact type)
    await listen(runs, "r3", "c", "com.example.tag")
    assert keyed(await runs.listeners_for(["com.example.push"])) == [
        ("r1", "a", "com.example.push"),
        ("r2", "b", None),
    ]
    assert keyed(await runs.listeners_for(["com.example.tag", "com.example.push"])) == [
        ("r1", "a", "com.example.push"),
        ("r1", "a", "com.example.tag"),
        ("r2", "b", None),
        ("r3", "c", "com.example.tag"),
    ]
    assert keyed(await runs.listeners_for([])) == [("r2", "b", None)]
    assert keyed(await runs.listeners_for(["com.example"])) == [("r2", "b", None)]  # exact
    [row] = await runs.listeners_for(["nothing"])
    assert row == listener("r2", "b", None)  # filters and all, as written


async def test_listening_again_replaces_a_listener_and_unlisten_drops_it(runs: RunStore) -> None:
    await runs.create_run(run())
    await listen(runs, "r1", "a", "t1", "t2")
    await listen(runs, "r1", "a", "t1", "t2")  # the engine registers again on every resume
    assert keyed(await runs.listeners_for(["t1", "t2"])) == [("r1", "a", "t1"), ("r1", "a", "t2")]
    await listen(runs, "r1", "a", "t3")  # registered with other types: those replace them
    await listen(runs, "r1", "b", "t1")
    assert keyed(await runs.listeners_for(["t1", "t2", "t3"])) == [
        ("r1", "a", "t3"),
        ("r1", "b", "t1"),
    ]
    await runs.checkpoint_step("r1", step("a"), unlisten="a")
    assert keyed(await runs.listeners_for(["t1", "t3"])) == [("r1", "b", "t1")]
    with pytest.raises(InvalidRecord, match="of run 'r2' is checkpointed with run 'r1'"):
        await runs.checkpoint_step("r1", step("c"), listen=[listener("r2", "c", "t1")])


async def test_a_finished_run_stops_listening(runs: RunStore) -> None:
    await runs.create_run(run())
    await runs.create_run(run("r2"))
    await listen(runs, "r1", "a", "t1")
    await listen(runs, "r2", "a")
    assert not await runs.update_run("r1", status=RunStatus.COMPLETED, expect={RunStatus.WAITING})
    assert len(await runs.listeners_for(["t1"])) == 2  # the refused update changed nothing
    assert await runs.update_run("r1", status=RunStatus.WAITING)  # not final: still listening
    assert len(await runs.listeners_for(["t1"])) == 2
    assert await runs.update_run("r1", status=RunStatus.CANCELLED)
    assert keyed(await runs.listeners_for(["t1"])) == [("r2", "a", None)]
    assert await runs.deliver([("r1", "a", event("e1"))]) == set()
    # the worker's checkpoint lands after the cancel: its step and events are kept, but the
    # cancelled run does not listen again
    await runs.checkpoint_step(
        "r1", step("b"), emit=[event("late")], listen=[listener("r1", "b", "t1")]
    )
    assert keyed(await runs.listeners_for(["t1"])) == [("r2", "a", None)]
    assert [s["key"] for s in await runs.steps("r1")] == ["a", "b"]
    assert ids(await runs.take_outbox()) == ["late"]


# -- inboxes ----------------------------------------------------------------------------------
async def test_deliveries_are_numbered_per_listener_and_counted_once(runs: RunStore) -> None:
    await runs.create_run(run())
    await runs.create_run(run("r2"))
    await listen(runs, "r1", "a", "t")
    await listen(runs, "r1", "b", "t")
    await listen(runs, "r2", "a")
    assert await runs.inbox("r1", "a") == []
    got = await runs.deliver(
        [("r1", "a", event("e1")), ("r1", "b", event("e9")), ("r1", "a", event("e2"))]
    )
    assert got == {"r1"}
    assert ids(await runs.inbox("r1", "a")) == ["e1", "e2"]
    assert ids(await runs.inbox("r1", "b")) == ["e9"]
    # a redelivered event is skipped, without a gap in the numbers
    got = await runs.deliver(
        [("r1", "a", event("e2")), ("r1", "a", event("e3")), ("r2", "a", event("e2"))]
    )
    assert got == {"r1", "r2"}
    assert ids(await runs.inbox("r1", "a")) == ["e1", "e2", "e3"]
    assert ids(await runs.inbox("r1", "a", start=1)) == ["e2", "e3"]
    assert ids(await runs.inbox("r1", "a", start=2)) == ["e3"]
    assert await runs.inbox("r1", "a", start=3) == []
    assert await runs.deliver([("r1", "a", event("e1")), ("r1", "a", event("e3"))]) == set()
    # the same event twice in one call counts once; the same id from another source is
    # another event (CloudEvents: source and id identify an event)
    both = [
        ("r1", "b", event("e5")),
        ("r1", "b", event("e5")),
        ("r1", "b", event("e5", source="/x")),
    ]
    assert await runs.deliver(both) == {"r1"}
    assert [(e["id"], e["source"]) for e in await runs.inbox("r1", "b")] == [
        ("e9", "/test"),
        ("e5", "/test"),
        ("e5", "/x"),
    ]
    assert (await runs.inbox("r1", "b"))[1] == event("e5")  # the whole event, as delivered
    assert await runs.deliver([]) == set()


async def test_only_registered_listeners_get_events(runs: RunStore) -> None:
    await runs.create_run(run())
    await listen(runs, "r1", "a", "t")
    assert await runs.deliver([("r1", "other", event("e1")), ("nope", "a", event("e1"))]) == set()
    assert await runs.inbox("r1", "other") == []
    assert await runs.inbox("nope", "a") == []
    await runs.checkpoint_step("r1", step("a"), unlisten="a")  # the listen task completed
    assert await runs.deliver([("r1", "a", event("e2"))]) == set()
    assert await runs.inbox("r1", "a") == []


async def test_concurrent_deliveries_to_one_listener_get_consecutive_numbers(
    stores: Stores,
) -> None:
    """Four processes deliver to one listener at once (each batch a transaction of its own
    process), some events to several of them: every event once, numbered 0, 1, 2... with
    neither gap nor repeat. Without the run's row lock, PostgreSQL gives two transactions the
    same number (a primary key violation)."""
    others = [await stores.other() for _ in range(3)]
    try:
        processes = [s.history for s in (stores, *others)]
        await processes[0].create_run(run())
        await listen(processes[0], "r1", "a", "t")

        async def deliver(p: int) -> None:
            for n in range(8):
                # every process delivers its own events and one all of them deliver
                batch = [("r1", "a", event(f"p{p}-{n}")), ("r1", "a", event(f"shared-{n}"))]
                await processes[p].deliver(batch)

        await asyncio.gather(*(deliver(p) for p in range(len(processes))))
        inbox = await processes[1].inbox("r1", "a")
        expected = {f"p{p}-{n}" for p in range(4) for n in range(8)} | {
            f"shared-{n}" for n in range(8)
        }
        assert len(inbox) == len(expected) == 40
        assert set(ids(inbox)) == expected
        for start in (1, 17, 39):  # numbered without gaps: start counts events
            assert ids(await processes[0].inbox("r1", "a", start=start)) == ids(inbox)[start:]
        # a process's own events keep their order
        for p in range(4):
            mine = [i for i in ids(inbox) if i.startswith(f"p{p}-")]
            assert mine == [f"p{p}-{n}" for n in range(8)]
    finally:
        for other in others:
            await other.close()


async def test_concurrent_deliveries_in_one_process(runs: RunStore) -> None:
    await runs.create_run(run())
    await listen(runs, "r1", "a", "t")
    batches = [[("r1", "a", event(f"e{i}"))] for i in range(30)]
    results = await asyncio.gather(*(runs.deliver(b) for b in batches))
    assert results == [{"r1"}] * 30
    assert ids(await runs.inbox("r1", "a")) == [f"e{i}" for i in range(30)]


# -- timers -----------------------------------------------------------------------------------
async def test_due_runs_are_the_waiting_runs_whose_timer_passed(runs: RunStore) -> None:
    now = T0 + 100
    for run_id, status, wake_at in [
        ("late", RunStatus.WAITING, now - 50),
        ("due", RunStatus.WAITING, now),
        ("later", RunStatus.WAITING, now + 1),
        ("event-only", RunStatus.WAITING, None),  # waits for an event, no timer
        ("busy", RunStatus.RUNNING, now - 60),  # taken up already
        ("over", RunStatus.COMPLETED, now - 60),
        ("first", RunStatus.WAITING, now - 90),
    ]:
        await runs.create_run(run(run_id, status=status, wake_at=wake_at))
    assert await runs.due_runs(now) == ["first", "late", "due"]  # earliest first
    assert await runs.due_runs(now, limit=2) == ["first", "late"]
    assert await runs.due_runs(now - 1000) == []
    await runs.update_run("late", status=RunStatus.RUNNING, expect={RunStatus.WAITING})
    assert await runs.due_runs(now) == ["first", "due"]


# -- retention --------------------------------------------------------------------------------
async def test_prune_deletes_old_final_runs_with_their_state_and_keeps_the_rest(
    runs: RunStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relational, "RUN_PRUNE_CHUNK", 2)  # several chunks
    old = {
        "done": RunStatus.COMPLETED,
        "failed": RunStatus.FAULTED,
        "stopped": RunStatus.CANCELLED,
        "done2": RunStatus.COMPLETED,
        "done3": RunStatus.COMPLETED,
    }
    kept = ["waiting", "running", "recent", "retried"]
    for run_id in [*old, *kept]:
        await runs.create_run(run(run_id, status=RunStatus.RUNNING))
        await listen(runs, run_id, "l", "t")
        await runs.deliver([(run_id, "l", event("e1"))])
        await runs.checkpoint_step(run_id, step("s"), emit=[event(f"out-{run_id}")])
    for run_id, status in old.items():
        await runs.update_run(run_id, status=status)  # finished at T0
    await runs.update_run("waiting", status=RunStatus.WAITING, wake_at=T0 + 10**6)
    # faulted long ago, then taken up again: running, with the old finished_at still there
    await runs.update_run("retried", status=RunStatus.FAULTED)
    await runs.update_run("retried", status=RunStatus.RUNNING, expect={RunStatus.FAULTED})
    await listen(runs, "retried", "l", "t")
    assert (await runs.get_run("retried")).finished_at == T0
    # a stray listener row of a finished run (none is registered through the API): it goes too
    stray = sql.listener_params("done", listener("done", "stray", "t"))

    def plant() -> relational.Write[None]:
        yield relational.Step("execute", sql.INSERT_LISTENER, stray)

    await runs._write(plant)  # type: ignore[attr-defined]
    clock.now = T0 + 40 * 86400
    await runs.update_run("recent", status=RunStatus.COMPLETED)
    cutoff = T0 + 30 * 86400
    assert await runs.prune_runs(cutoff) == 5
    for run_id in old:
        with pytest.raises(NotFound):
            await runs.get_run(run_id)
        assert await runs.steps(run_id) == []
        assert await runs.inbox(run_id, "l") == []
    assert sorted(r.id for r in await runs.list_runs()) == sorted(kept)
    for run_id in kept:
        assert [s["key"] for s in await runs.steps(run_id)] == ["l", "s"]
        assert ids(await runs.inbox(run_id, "l")) == ["e1"]
    # listeners of the pruned runs are gone (those of the recent one went when it finished)
    assert keyed(await runs.listeners_for(["t"])) == [
        ("retried", "l", "t"),
        ("running", "l", "t"),
        ("waiting", "l", "t"),
    ]
    assert len(await runs.take_outbox()) == 9  # what is still to publish stays
    assert await runs.prune_runs(cutoff) == 0
    assert await runs.prune_runs(T0 + 41 * 86400) == 1  # recent, in its turn


# -- what the store refuses, and what it keeps as it is ----------------------------------------
async def test_keys_and_names_are_kept_up_to_their_limit_in_bytes(runs: RunStore) -> None:
    """At the limit in 4-byte characters (the widest index entries PostgreSQL must take)."""
    run_id = "🏃" * (RUN_ID_MAX // 4)
    key = "/do/0/" + "🔑" * ((STEP_KEY_MAX - 6) // 4) + "xx"
    assert len(key.encode()) == STEP_KEY_MAX
    event_type = "é" * (EVENT_TYPE_MAX // 2)
    wide = event("🆔" * (EVENT_ID_MAX // 4), type=event_type, source="§" * (EVENT_ID_MAX // 2))
    await runs.create_run(run(run_id))
    await listen(runs, run_id, key, event_type)
    assert await runs.deliver([(run_id, key, wide)]) == {run_id}
    assert await runs.inbox(run_id, key) == [wide]
    assert keyed(await runs.listeners_for([event_type])) == [(run_id, key, event_type)]
    await runs.checkpoint_step(run_id, step(key), emit=[wide])
    assert await runs.take_outbox() == [wide]
    assert [s["key"] for s in await runs.steps(run_id)] == [key]


async def test_what_is_past_a_limit_is_refused_and_nothing_kept(runs: RunStore) -> None:
    with pytest.raises(InvalidRecord, match=r"a run id is 129 bytes of UTF-8, longer than the 128"):
        await runs.create_run(run("x" * (RUN_ID_MAX + 1)))
    with pytest.raises(InvalidRecord, match="a blueprint name is 256 bytes"):
        await runs.create_run(run(name="n" * 256))
    assert await runs.list_runs() == []
    await runs.create_run(run())
    too_long = "/do/0/" + "é" * STEP_KEY_MAX
    with pytest.raises(
        InvalidRecord, match=r"a step key is 2054 bytes of UTF-8, longer than the 1024"
    ):
        await runs.checkpoint_step("r1", step(too_long))
    with pytest.raises(InvalidRecord, match="a listener's event type is 513 bytes"):
        await listen(runs, "r1", "a", "t" * (EVENT_TYPE_MAX + 1))
    with pytest.raises(InvalidRecord, match="the id of an emitted event is 513 bytes"):
        await runs.checkpoint_step("r1", step("a"), emit=[event("i" * (EVENT_ID_MAX + 1))])
    assert await runs.steps("r1") == []
    await listen(runs, "r1", "a", "t")
    # one bad event refuses the whole delivery
    with pytest.raises(InvalidRecord, match="the id of a delivered event is 513 bytes"):
        await runs.deliver([("r1", "a", event("ok")), ("r1", "a", event("i" * 513))])
    with pytest.raises(InvalidRecord, match="the id of a delivered event must be a non-empty"):
        await runs.deliver([("r1", "a", {"type": "t", "data": {}})])
    assert await runs.inbox("r1", "a") == []


@pytest.mark.parametrize(
    ("what", "bad"),
    [
        ("a step key", "/do/0/a\x00b"),  # PostgreSQL's text cannot hold a NUL
        ("a step key", "/do/0/\ud800"),  # a lone surrogate is not UTF-8
        ("a step key", ""),
    ],
    ids=["nul", "lone-surrogate", "empty"],
)
async def test_keys_that_are_not_storable_text_are_refused(
    runs: RunStore, what: str, bad: str
) -> None:
    await runs.create_run(run())
    with pytest.raises(InvalidRecord, match=what):
        await runs.checkpoint_step("r1", step(bad))
    with pytest.raises(InvalidRecord, match=what):
        await runs.deliver([("r1", bad, event("e1"))])
    assert await runs.steps("r1") == []


async def test_lookups_by_what_cannot_be_stored_find_nothing(runs: RunStore) -> None:
    """A NUL, a lone surrogate or an over-long value names no stored row: the answer is "none"
    on both backends (PostgreSQL would refuse to compare a NUL)."""
    await runs.create_run(run())
    await listen(runs, "r1", "a")  # takes every event
    await runs.checkpoint_step("r1", step("s"), emit=[event("e1")])
    for bad in ("r\x00", "\udc80", "r" * (STEP_KEY_MAX + 1)):
        with pytest.raises(NotFound):
            await runs.get_run(bad)
        assert await runs.list_runs(name=bad) == []
        assert await runs.steps(bad) == []
        assert await runs.inbox(bad, "a") == []
        assert await runs.inbox("r1", bad) == []
        assert keyed(await runs.listeners_for([bad, "t"])) == [("r1", "a", None)]
        await runs.drop_outbox([bad])
    assert ids(await runs.take_outbox()) == ["e1"]


async def test_unicode_and_quotes_are_kept_as_they_are(runs: RunStore) -> None:
    tricky = '\'; DROP TABLE blueprint_runs; -- "ü" 名前 🎉 %_\\'
    data = {tricky: [tricky, "nul \x00 inside JSON", "\u2028", 1.5, -(2**63), 2**64 - 1, None]}
    await runs.create_run(run(tricky[:40], name="名前", input=data, trigger=tricky))
    [got] = await runs.list_runs(name="名前")
    assert (got.id, got.input, got.trigger) == (tricky[:40], data, tricky)
    await listen(runs, got.id, tricky, "com.例え.push")
    assert await runs.deliver([(got.id, tricky, {**event(tricky), "data": data})]) == {got.id}
    assert (await runs.inbox(got.id, tricky))[0]["data"] == data
    await runs.checkpoint_step(got.id, step(tricky, output=data))
    assert (await runs.steps(got.id))[-1]["output"] == data
    assert keyed(await runs.listeners_for(["com.例え.push"])) == [(got.id, tricky, "com.例え.push")]


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = {"d": value} if i % 2 else [value]
    return value


async def test_deep_json_is_kept_up_to_the_depth_it_can_be_written(runs: RunStore) -> None:
    await runs.create_run(run(input=nested(250)))
    assert (await runs.get_run("r1")).input == nested(250)
    await runs.checkpoint_step("r1", step("deep", output=nested(200)))
    assert (await runs.steps("r1"))[0]["output"] == nested(200)
    with pytest.raises(InvalidRecord, match="the step 'a' cannot be stored as JSON"):
        await runs.checkpoint_step("r1", step("a", output=nested(300)))
    with pytest.raises(InvalidRecord, match="a run's output cannot be stored as JSON"):
        await runs.update_run("r1", status=RunStatus.COMPLETED, output=nested(300))
    with pytest.raises(InvalidRecord, match="a run's input cannot be stored as JSON"):
        await runs.create_run(run("r2", input={"n": 2**64}))  # past 64 bits
    with pytest.raises(InvalidRecord, match="a run's input cannot be stored as JSON"):
        await runs.create_run(run("r3", input={1: "x"}))  # an object key that is not a string
    got = await runs.get_run("r1")
    assert (got.status, got.output) == (RunStatus.RUNNING, None)
    assert [s["key"] for s in await runs.steps("r1")] == ["deep"]
    assert [r.id for r in await runs.list_runs()] == ["r1"]


def test_run_status_is_the_stores_and_still_the_blueprints() -> None:
    assert blueprint_records.RunStatus is RunStatus
    assert {s for s in RunStatus if s.final} == {"completed", "faulted", "cancelled"}


def test_unchanged_reads_as_its_name_where_it_is_a_default() -> None:
    """``update_run``'s "leave it as it is" shows as such in help() and in errors."""
    from ghapplets.store.records import UNCHANGED

    assert repr(UNCHANGED) == "UNCHANGED"
    signature = inspect.signature(relational.SqlRunStore.update_run)
    assert "error: 'dict[str, Any] | Unchanged | None' = UNCHANGED" in str(signature)
