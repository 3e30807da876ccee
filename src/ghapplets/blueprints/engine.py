"""The blueprint interpreter: runs a Serverless Workflow 1.0 definition against a :class:`Host`.

A :class:`Run` walks the definition the way the DSL describes it (``dsl.md``, "Task Flow" and
"Data Flow"): each task's ``if``, input schema and ``input.from``, the task itself (within its
``timeout``), ``output.as`` and its schema, ``export.as`` into ``$context`` and its schema, then
its ``then`` directive. Composite tasks (``do``, ``for``, ``fork``, ``try``) run lists of tasks
in child scopes; the other kinds are in :mod:`.calls`, :mod:`.processes` and :mod:`.listening`.

Durability comes from the journal. Each task, at each position it runs at, has a key: its
reference (the JSON pointer of its definition) with the loop iterations, retry attempts and
revisits that led there. When a task completes, its output, the context it leaves and the
directive it takes are checkpointed under that key. Running a run again replays it: a task whose
key is in the journal returns its recorded outcome without running, so a run resumes after a
crash, a long wait or a listener from its last completed task, and the task that was interrupted
runs again with the same key (its idempotency key). State a task must keep while it runs (a
wait's due time, a listener's expectations, the next retry) is checkpointed as a ``running``
record under the task's key.

The interpreter is deterministic given its journal: the only inputs are the definition, the
run's input and start time, the journal, and what the host answers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import jsonschema

from ghapplets.blueprints import calls, listening, processes
from ghapplets.blueprints.durations import parse_duration
from ghapplets.blueprints.errors import ErrorKind, error_matches, raise_error
from ghapplets.blueprints.host import Host, Suspended
from ghapplets.blueprints.model_tasks import FlowDirective, TaskKind, task_kind
from ghapplets.blueprints.program import Program
from ghapplets.blueprints.records import StepRecord, TaskStatus
from ghapplets.exceptions import BlueprintError

RUNTIME_NAME = "ghapplets"


def kind_of(task: Mapping[str, Any]) -> TaskKind:
    kind = task_kind(task)
    if kind is None:  # the loader refuses such a task; a definition built by hand may not
        raise raise_error(ErrorKind.CONFIGURATION, f"not one task: {sorted(task)}")
    return kind


def datetime_descriptor(epoch: float) -> dict[str, Any]:
    """The DSL's ``dateTimeDescriptor`` of an epoch time."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return {
        "iso8601": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "epoch": {"seconds": int(epoch), "milliseconds": int(epoch * 1000)},
    }


def truthy(value: Any) -> bool:
    """jq's truth: everything but ``false`` and ``null``."""
    return value is not None and value is not False


@dataclass(frozen=True)
class Scope:
    """Where a list of tasks runs: the key prefix of its tasks and the variables it sees."""

    key: str
    ref: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1  # inside a try retried n times: n + 1, for the steps' records

    def child(
        self,
        key: str,
        ref: str,
        variables: Mapping[str, Any] | None = None,
        attempt: int | None = None,
    ) -> Scope:
        merged = {**self.variables, **(variables or {})}
        return Scope(key, ref, merged, self.attempt if attempt is None else attempt)


@dataclass
class Step:
    """One task being run: what its expressions see."""

    name: str
    task: Mapping[str, Any]
    ref: str
    key: str
    scope: Scope
    raw_input: Any
    started_at: float
    input: Any = None
    marker: StepRecord | None = None  # its ``running`` record, if it keeps state
    authorization: dict[str, Any] | None = None

    def descriptor(self, output: Any = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference": self.ref,
            "definition": self.task,
            "input": self.raw_input,
            "output": output,
            "startedAt": datetime_descriptor(self.started_at),
        }


@dataclass
class Outcome:
    """What a task's body returns: its raw output, a directive of its own (a switch's case),
    and the events it emits (published once its completion is durable)."""

    output: Any
    then: str | None = None
    emit: list[Mapping[str, Any]] = field(default_factory=list)


class EndFlow(Exception):
    """``then: end`` somewhere: the workflow ends now, gracefully, with ``output``."""

    def __init__(self, output: Any) -> None:
        super().__init__()
        self.output = output


Body = Callable[["Run", Step], Awaitable[Outcome]]


class Run:
    """One run of a program: ``await Run(...).execute()`` returns its output or raises the
    :class:`BlueprintError` that faulted it (or :class:`Suspended`, to be run again later)."""

    def __init__(
        self,
        program: Program,
        host: Host,
        *,
        input: Any,
        started_at: float,
        runtime_version: str = "",
        key_prefix: str = "",
        secrets: Mapping[str, Any] | None = None,
    ) -> None:
        self.program = program
        self.host = host
        self.raw_input = input
        self.started_at = started_at
        self.key_prefix = key_prefix  # a subflow's steps live under its task's key
        self.context: Any = None
        self.secrets: Mapping[str, Any] = secrets or {}
        self.workflow = {
            "id": host.run_id,
            "definition": program.definition,
            "input": input,
            "startedAt": datetime_descriptor(started_at),
        }
        self.runtime_version = runtime_version
        self.runtime = {"name": RUNTIME_NAME, "version": runtime_version, "metadata": {}}
        self.tokens: dict[str, tuple[str, float]] = {}  # OAuth2 access tokens, until expiry
        self.documents: dict[str, Mapping[str, Any]] = {}  # OpenAPI documents read
        self.random = random.Random(f"{host.run_id}{key_prefix}")

    # -- expressions ----------------------------------------------------------------------
    def variables(self, step: Step | None, **extra: Any) -> dict[str, Any]:
        found: dict[str, Any] = {
            "context": self.context,
            "input": None,
            "output": None,
            "secrets": self.secrets,
            "task": None,
            "workflow": self.workflow,
            "runtime": self.runtime,
            "authorization": None,
        }
        if step is not None:
            found["input"] = step.input
            found["task"] = step.descriptor()
            found["authorization"] = step.authorization
            found.update(step.scope.variables)
        found.update(extra)
        return found

    def evaluate(self, value: Any, data: Any, variables: Mapping[str, Any]) -> Any:
        """A field that is a runtime expression (``${ }`` optional)."""
        if not isinstance(value, str):
            return self.render(value, data, variables)
        return self.program.expression(value).evaluate(data, variables)

    def render(self, value: Any, data: Any, variables: Mapping[str, Any]) -> Any:
        """A value that may hold ``${ }`` expressions anywhere inside."""
        return self.program.template(value).evaluate(data, variables)

    def validate(self, schema: Mapping[str, Any] | None, value: Any, where: str, ref: str) -> None:
        if not schema:
            return
        error = jsonschema.exceptions.best_match(self.program.validator(schema).iter_errors(value))
        if error is not None:
            path = "/".join(str(p) for p in error.absolute_path)
            raise raise_error(
                ErrorKind.VALIDATION,
                f"the {where} does not match its schema at /{path}: {error.message}",
                instance=ref,
            )

    def duration(self, value: Any, step: Step | None, data: Any = None) -> float:
        if isinstance(value, str) and value.strip().startswith("${"):
            value = self.evaluate(value, data, self.variables(step))
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise raise_error(
                ErrorKind.CONFIGURATION,
                f"not a duration: {exc}",
                instance=step.ref if step else "/",
            ) from exc

    def timeout_of(self, value: Any, step: Step | None) -> float | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = self.program.timeouts.get(value)
            if value is None:
                raise raise_error(
                    ErrorKind.CONFIGURATION,
                    "no such timeout in use.timeouts",
                    instance=step.ref if step else "/timeout",
                )
        return self.duration(value["after"], step)

    # -- the run --------------------------------------------------------------------------
    async def execute(self) -> Any:
        definition = self.program.definition
        spec = definition.get("input") or {}
        self.validate(spec.get("schema"), self.raw_input, "workflow input", "/input")
        data = self.raw_input
        if "from" in spec:
            data = self.evaluate(spec["from"], data, self.variables(None))
        self.context = data
        root = Scope(f"{self.key_prefix}/do", "/do")
        deadline = None
        timeout = self.timeout_of(definition.get("timeout"), None)
        if timeout is not None:
            deadline = self.started_at + timeout
        try:
            output = await self.within(deadline, self.run_list(definition["do"], root, data), "/")
        except EndFlow as end:
            output = end.output
        spec = definition.get("output") or {}
        if "as" in spec:
            output = self.evaluate(spec["as"], output, self.variables(None))
        self.validate(spec.get("schema"), output, "workflow output", "/output")
        return output

    async def within(self, deadline: float | None, work: Awaitable[Any], ref: str) -> Any:
        """``work``, unless ``deadline`` (on the host's clock) passes first: a timeout error."""
        if deadline is None:
            return await work
        task = asyncio.ensure_future(work)
        timer = asyncio.ensure_future(self.host.sleep_until(deadline))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            timer.cancel()
            raise
        outcome = task.exception() if task.done() else None
        if task.done() and not isinstance(outcome, Suspended):
            timer.cancel()  # it ended (or failed) in time
            return task.result()
        if timer.done() and timer.exception() is None:  # the deadline has passed
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise raise_error(
                ErrorKind.TIMEOUT, "the task did not finish within its timeout", instance=ref
            )
        # the host suspended the timer (a long deadline), or the work suspended first: the run
        # goes on later, and wakes at the deadline at the latest
        later = Suspended(wake_at=deadline)
        try:
            return await task
        except Suspended as suspended:
            raise suspended.merge(later) from None
        finally:
            timer.cancel()

    async def run_list(self, tasks: Sequence[Mapping[str, Any]], scope: Scope, data: Any) -> Any:
        """Run a list of tasks in order (or as ``then`` directs); the output of the last."""
        names = [next(iter(item)) for item in tasks]
        visits = [0] * len(tasks)
        index = 0
        while index < len(tasks):
            name = names[index]
            task = tasks[index][name]
            ref = f"{scope.ref}/{index}/{name}"
            visit = visits[index]
            visits[index] += 1
            key = f"{scope.key}/{index}/{name}" + (f"@{visit}" if visit else "")
            data, then = await self.run_task(name, task, ref, key, data, scope)
            if then == FlowDirective.CONTINUE:
                index += 1
            elif then == FlowDirective.EXIT:
                return data
            elif then == FlowDirective.END:
                raise EndFlow(data)
            else:
                index = names.index(then)  # the checks made sure it is there
        return data

    async def run_task(
        self, name: str, task: Mapping[str, Any], ref: str, key: str, raw: Any, scope: Scope
    ) -> tuple[Any, str]:
        recorded = self.host.recorded(key)
        if recorded is not None and recorded.status.done:
            self.context = recorded.context
            return recorded.output, recorded.then
        marker = (
            recorded if recorded is not None and recorded.status == TaskStatus.RUNNING else None
        )
        started = marker.started_at if marker else self.host.now()
        step = Step(name, task, ref, key, scope, raw, started, marker=marker)
        try:
            return await self._run_step(step)
        except BlueprintError as error:
            if error.instance is None:
                error.instance = ref
            await self.host.checkpoint(
                StepRecord(
                    key,
                    ref,
                    name,
                    TaskStatus.FAULTED,
                    started,
                    self.host.now(),
                    input=step.input,
                    error=error.to_dict(),
                    attempt=step.scope.attempt,
                    state=step.marker.state if step.marker else {},
                )
            )
            raise

    async def _run_step(self, step: Step) -> tuple[Any, str]:
        task, ref = step.task, step.ref
        base = self.variables(None, task=step.descriptor(), **step.scope.variables)
        if "if" in task and not truthy(self.evaluate(task["if"], step.raw_input, base)):
            await self._complete(step, TaskStatus.SKIPPED, step.raw_input, FlowDirective.CONTINUE)
            return step.raw_input, FlowDirective.CONTINUE
        spec = task.get("input") or {}
        self.validate(spec.get("schema"), step.raw_input, "task input", ref)
        step.input = step.raw_input
        if "from" in spec:
            step.input = self.evaluate(spec["from"], step.raw_input, base)
        deadline = None
        timeout = self.timeout_of(task.get("timeout"), step)
        if timeout is not None:
            if step.marker is None:  # the deadline must outlive a crash
                await self.mark(step, {})
            deadline = step.started_at + timeout
        kind = kind_of(task)
        outcome: Outcome = await self.within(deadline, BODIES[kind](self, step), ref)
        output = outcome.output
        variables = self.variables(step)
        variables["task"] = step.descriptor(output)
        spec = task.get("output") or {}
        if "as" in spec:
            output = self.evaluate(spec["as"], output, variables)
        self.validate(spec.get("schema"), output, "task output", ref)
        spec = task.get("export") or {}
        if "as" in spec:
            variables["output"] = output
            self.context = self.evaluate(spec["as"], output, variables)
        self.validate(spec.get("schema"), self.context, "exported context", ref)
        then = outcome.then or task.get("then") or FlowDirective.CONTINUE
        await self._complete(step, TaskStatus.COMPLETED, output, then, outcome.emit)
        return output, then

    async def mark(self, step: Step, state: Mapping[str, Any]) -> None:
        """Checkpoint ``state`` as the running task's own (merged with what it had)."""
        merged = {**(step.marker.state if step.marker else {}), **state}
        step.marker = StepRecord(
            step.key,
            step.ref,
            step.name,
            TaskStatus.RUNNING,
            step.started_at,
            input=step.input,
            state=merged,
        )
        await self.host.checkpoint(step.marker)

    async def _complete(
        self,
        step: Step,
        status: TaskStatus,
        output: Any,
        then: str,
        emit: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        await self.host.checkpoint(
            StepRecord(
                step.key,
                step.ref,
                step.name,
                status,
                step.started_at,
                self.host.now(),
                input=step.input,
                output=output,
                context=self.context,
                then=str(then),
                attempt=step.scope.attempt,
                state=step.marker.state if step.marker else {},
            ),
            emit,
        )


# -- flow tasks -------------------------------------------------------------------------------
async def run_do(run: Run, step: Step) -> Outcome:
    scope = step.scope.child(f"{step.key}/do", f"{step.ref}/do")
    output = await run.run_list(step.task["do"], scope, step.input)
    return Outcome(output)


async def run_set(run: Run, step: Step) -> Outcome:
    """The value to set: an object with expressions in it, or one expression (``${ }``); in
    strict mode, any other string is the string itself."""
    return Outcome(run.render(step.task["set"], step.input, run.variables(step)))


async def run_switch(run: Run, step: Step) -> Outcome:
    variables = run.variables(step)
    default: str | None = None
    for case in step.task["switch"]:
        spec = next(iter(case.values()))  # the DSL requires each case's ``then``
        if "when" not in spec:
            default = spec["then"]
        elif truthy(run.evaluate(spec["when"], step.input, variables)):
            return Outcome(step.input, spec["then"])
    return Outcome(step.input, default)


async def run_for(run: Run, step: Step) -> Outcome:
    spec = step.task["for"]
    each, at = spec.get("each", "item"), spec.get("at", "index")
    items = run.evaluate(spec["in"], step.input, run.variables(step))
    if items is None:
        items = []
    if not isinstance(items, list):
        raise raise_error(ErrorKind.EXPRESSION, f"for.in gave a {type(items).__name__}, not a list")
    data = step.input
    for index, item in enumerate(items):
        scope = step.scope.child(
            f"{step.key}/do[{index}]", f"{step.ref}/do", {each: item, at: index}
        )
        looped = replace(step, scope=scope)
        if "while" in step.task and not truthy(
            run.evaluate(step.task["while"], data, run.variables(looped))
        ):
            break
        data = await run.run_list(step.task["do"], scope, data)
    return Outcome(data)


async def run_fork(run: Run, step: Step) -> Outcome:
    spec = step.task["fork"]
    branches = spec.get("branches") or []
    scope = step.scope.child(f"{step.key}/fork/branches", f"{step.ref}/fork/branches")

    async def branch(index: int) -> Any:
        name = next(iter(branches[index]))
        output, then = await run.run_task(
            name,
            branches[index][name],
            f"{scope.ref}/{index}/{name}",
            f"{scope.key}/{index}/{name}",
            step.input,
            scope,
        )
        if then == FlowDirective.END:
            raise EndFlow(output)
        return output

    if spec.get("compete"):
        return Outcome(await _compete(run, step, branch, len(branches)))
    tasks = [asyncio.ensure_future(branch(i)) for i in range(len(branches))]
    return Outcome(await _all(tasks))


async def _all(tasks: Sequence[asyncio.Future[Any]]) -> list[Any]:
    """Every branch's output in order; the first error (cancelling the rest) otherwise. A
    branch that suspends lets the others run on until they end or suspend too."""
    suspended: Suspended | None = None
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if isinstance(error, Suspended):
                    suspended = error if suspended is None else suspended.merge(error)
                elif error is not None:
                    raise error
    finally:
        await _cancel(pending)
    if suspended is not None:
        raise suspended
    return [task.result() for task in tasks]


async def _cancel(pending: Collection[asyncio.Future[Any]]) -> None:
    """Cancel the branches still running, and wait until they have stopped."""
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def _compete(
    run: Run, step: Step, branch: Callable[[int], Awaitable[Any]], count: int
) -> Any:
    """The output of the first branch to complete; the others are cancelled. The winner is
    checkpointed before that, so a resumed run keeps it."""
    winner = step.marker.state.get("winner") if step.marker else None
    if winner is not None:
        return await branch(winner)
    tasks = {asyncio.ensure_future(branch(i)): i for i in range(count)}
    pending = set(tasks)
    failures: list[BaseException] = []
    suspended: Suspended | None = None
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=tasks.__getitem__):
                error = task.exception()
                if error is None:
                    await run.mark(step, {"winner": tasks[task]})
                    return task.result()
                if isinstance(error, Suspended):
                    suspended = error if suspended is None else suspended.merge(error)
                elif isinstance(error, BlueprintError):
                    failures.append(error)
                else:
                    raise error
    finally:
        await _cancel(pending)
    if suspended is not None:
        raise suspended
    raise failures[0]


async def run_raise(run: Run, step: Step) -> Outcome:
    error = step.task["raise"]["error"]
    if isinstance(error, str):
        error = run.program.errors[error]
    fields = run.render(error, step.input, run.variables(step))
    raise BlueprintError(
        type=str(fields["type"]),
        status=int(fields["status"]),
        title=fields.get("title"),
        detail=fields.get("detail"),
        instance=fields.get("instance") or step.ref,
    )


async def run_wait(run: Run, step: Step) -> Outcome:
    due = step.marker.state.get("due") if step.marker else None
    if due is None:
        due = step.started_at + run.duration(step.task["wait"], step, step.input)
        await run.mark(step, {"due": due})
    await run.host.sleep_until(due)
    return Outcome(step.input)


# -- try / catch / retry ----------------------------------------------------------------------
async def run_try(run: Run, step: Step) -> Outcome:
    catch = step.task["catch"]
    policy = catch.get("retry")
    if isinstance(policy, str):
        policy = run.program.retries[policy]
    state = dict(step.marker.state) if step.marker else {}
    attempt = state.get("attempt", 0)
    while True:
        if state.get("caught") is None:
            due = state.get("due")
            if due is not None:
                await run.host.sleep_until(due)
            suffix = f"@{attempt}" if attempt else ""
            scope = step.scope.child(
                f"{step.key}/try{suffix}", f"{step.ref}/try", attempt=attempt + 1
            )
            try:
                output = await run.run_list(step.task["try"], scope, step.input)
                return Outcome(output)
            except BlueprintError as error:
                if not _catches(run, step, catch, error):
                    raise
                state.setdefault("first_failure", run.host.now())
                delay = _retry_delay(run, step, policy, error, attempt + 1, state["first_failure"])
                if delay is not None:
                    attempt += 1
                    state.update(attempt=attempt, due=run.host.now() + delay)
                    await run.mark(step, state)
                    continue
                if policy is not None and not catch.get("do"):
                    raise  # retried as often as allowed, and nothing handles it
                state.update(caught=error.to_dict())
                await run.mark(step, state)
        name = catch.get("as", "error")
        caught = state["caught"]
        if not catch.get("do"):
            return Outcome(step.input)
        scope = step.scope.child(f"{step.key}/catch/do", f"{step.ref}/catch/do", {name: caught})
        output = await run.run_list(catch["do"], scope, step.input)
        return Outcome(output)


def _catches(run: Run, step: Step, catch: Mapping[str, Any], error: BlueprintError) -> bool:
    filters = (catch.get("errors") or {}).get("with")
    if filters and not error_matches(filters, error):
        return False
    return _when(run, step, catch, error, catch.get("as", "error"))


def _when(run: Run, step: Step, spec: Mapping[str, Any], error: BlueprintError, name: str) -> bool:
    """``when`` / ``exceptWhen`` of a catch or a retry policy: evaluated on the error, which
    is also ``$<as>``."""
    value = error.to_dict()
    variables = run.variables(step, **{name: value})
    if "when" in spec and not truthy(run.evaluate(spec["when"], value, variables)):
        return False
    return not ("exceptWhen" in spec and truthy(run.evaluate(spec["exceptWhen"], value, variables)))


def _retry_delay(
    run: Run,
    step: Step,
    policy: Mapping[str, Any] | None,
    error: BlueprintError,
    retry: int,
    first_failure: float,
) -> float | None:
    """The delay before retry number ``retry`` (1 is the first), or None when the policy
    does not retry (again)."""
    if policy is None:
        return None
    if not _when(run, step, policy, error, step.task["catch"].get("as", "error")):
        return None
    limit = policy.get("limit") or {}
    attempts = limit.get("attempt") or {}
    if "count" in attempts and retry > int(attempts["count"]):
        return None
    elapsed = run.host.now() - first_failure
    for window in (limit.get("duration"), attempts.get("duration")):
        if window is not None and elapsed >= run.duration(window, step):
            return None
    base = run.duration(policy["delay"], step) if "delay" in policy else 0.0
    backoff = policy.get("backoff") or {}
    delay: float
    if "exponential" in backoff:
        delay = base * 2 ** (retry - 1)
    elif "linear" in backoff:
        delay = base * retry
    else:
        delay = base
    jitter = policy.get("jitter")
    if jitter:
        low, high = run.duration(jitter["from"], step), run.duration(jitter["to"], step)
        delay += run.random.uniform(low, max(low, high))
    return delay


BODIES: dict[TaskKind, Body] = {
    TaskKind.CALL: calls.run_call,
    TaskKind.DO: run_do,
    TaskKind.EMIT: listening.run_emit,
    TaskKind.FOR: run_for,
    TaskKind.FORK: run_fork,
    TaskKind.LISTEN: listening.run_listen,
    TaskKind.RAISE: run_raise,
    TaskKind.RUN: processes.run_process,
    TaskKind.SET: run_set,
    TaskKind.SWITCH: run_switch,
    TaskKind.TRY: run_try,
    TaskKind.WAIT: run_wait,
}
