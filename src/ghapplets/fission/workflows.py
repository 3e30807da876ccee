"""A blueprint as a Fission ``Workflow`` (RFC-0022), or the first task that does not map, and why.

A blueprint maps when every task maps onto a state of the ``Workflow`` CRD:

| blueprint | Workflow |
|---|---|
| ``call: <applet>`` (an applet exported as a function) | ``Task`` invoking the function |
| ``switch`` on simple comparisons (:mod:`.conditions`) | ``Choice`` (no match: the next task) |
| ``fork`` (not ``compete``) | ``Parallel``, one branch per task |
| ``for`` whose body starts with a call taking ``input.from: ${ $item }`` | ``Map`` over
  ``itemsPath``, one element at a time, output: the last iteration's |
| ``wait`` (a written duration) | ``Wait`` |
| ``raise`` | ``Fail`` (the error's details are lost: a Fail state has none) |
| ``do`` | its tasks, in line |
| ``try`` of one call, whose ``catch`` only retries | that ``Task``'s ``retry`` |
| the end, ``then: end``, ``then: exit`` at the top | ``end: true``, or a ``Succeed`` state |

``input.from`` and ``output.as`` that are simple paths become ``inputPath`` and ``outputPath``;
a call's ``timeout`` its Task's ``timeout``; the workflow's ``timeout`` the run's. Data flows as
in the DSL: each state's output is the next one's input. Anything else refuses the blueprint:
an HTTP or OpenAPI call, a connector action, ``listen``, ``emit``, ``set``, ``run``, ``with``,
``if``, ``export``, schemas, expressions beyond paths and comparisons, a fan-out inside a
fan-out... :func:`compile_blueprint` then returns a :class:`Refusal` naming the first such task
by its JSON pointer (``/do/2/notify``) with the reason. Sans-I/O: it reads the definition as
loaded (and validated) by :mod:`ghapplets.blueprints.loader`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ghapplets.blueprints.durations import parse_duration
from ghapplets.blueprints.errors import ErrorKind
from ghapplets.blueprints.loader import Blueprint
from ghapplets.blueprints.model_tasks import BuiltinCall, FlowDirective, TaskKind, task_kind
from ghapplets.exceptions import NotExportable
from ghapplets.fission.conditions import choice_rule, json_path, unwrap

API_VERSION = "fission.io/v1"
MAX_STATES = 100  # the CRD's maxProperties of spec.states (validation.MaxWorkflowStates)
MAX_BRANCH_STATES = 20  # of a branch's states (validation.MaxWorkflowBranchStates)
MAX_BRANCHES = 10  # the CRD's maxItems of a state's branches
MAX_ATTEMPTS = 10  # validation.MaxWorkflowAttempts
_NOT_STATE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")  # state names: ^[A-Za-z0-9_-]{1,64}$
_NO_NESTING = "a fork or for inside a fork or for: Fission does not nest fan-out"
_BRANCH_END = "then: end inside a fork or for: a Fission branch can end only itself"


@dataclass(frozen=True)
class Refusal:
    """A blueprint that is not exported: the first task that does not map, and why."""

    blueprint: str  # namespace/name
    version: str
    pointer: str  # JSON pointer of the task (or of its part) in the definition
    reason: str

    def __str__(self) -> str:
        return f"{self.blueprint} {self.version}: {self.pointer}: {self.reason}"


class _End:
    """The target "the graph ends here": ``end: true``, or a Succeed state."""


END = _End()
Target = str | _End
Link = Callable[[Target], None]
Exit = tuple[Link, str]  # how to point a loose end, and the flow directive it takes


def go_duration(seconds: float, pointer: str) -> str:
    """``seconds`` as a Kubernetes (Go) duration: ``90s``, ``1500ms``."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise NotExportable(
            f"a duration of {seconds:g}s: Fission needs 1ms or more", pointer=pointer
        )
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def written_duration(value: Any, pointer: str) -> float:
    """The seconds of a DSL duration written in the file (not computed by an expression)."""
    if isinstance(value, str) and value.strip().startswith("${"):
        raise NotExportable(
            "a duration computed by an expression: Fission needs it written", pointer=pointer
        )
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise NotExportable(str(exc), pointer=pointer) from None


@dataclass
class _Graph:
    """The states of one machine: the workflow, or one branch of a Parallel or Map."""

    limit: int
    branch: bool  # a branch: no fan-out in it, no ``then: end``
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    _succeed: str | None = None

    def add(self, task_name: str, state: dict[str, Any], pointer: str) -> str:
        if len(self.states) >= self.limit:
            raise NotExportable(f"more than {self.limit} states in one graph", pointer=pointer)
        base = _NOT_STATE_CHARS.sub("-", task_name).strip("-")[:60] or "state"
        name, n = base, 1
        while name in self.states:
            n += 1
            name = f"{base}-{n}"
        self.states[name] = state
        return name

    def succeed(self, pointer: str) -> str:
        if self._succeed is None:
            self._succeed = self.add("done", {"type": "Succeed"}, pointer)
        return self._succeed

    def link(self, state: dict[str, Any], pointer: str, key: str = "next") -> Link:
        """How to point ``state[key]`` (``next``, a Choice's ``default``) at a target."""

        def point(target: Target) -> None:
            if isinstance(target, _End):
                if key == "next":
                    state["end"] = True
                    return
                target = self.succeed(pointer)
            state[key] = target

        return point

    def rule(self, rule: dict[str, Any], pointer: str) -> Link:
        def point(target: Target) -> None:
            rule["next"] = self.succeed(pointer) if isinstance(target, _End) else target

        return point

    def close(self, entry: str, exits: Sequence[Exit]) -> dict[str, Any]:
        """Every loose end ends the graph: its ``startAt`` and ``states``."""
        for point, _directive in exits:
            point(END)
        return {"startAt": entry, "states": self.states}


@dataclass(frozen=True)
class _Fragment:
    entry: str
    exits: list[Exit]


def _continue(graph: _Graph, state: dict[str, Any], name: str, pointer: str) -> _Fragment:
    """A fragment of one state that goes on to whatever comes next."""
    return _Fragment(graph.add(name, state, pointer), [(graph.link(state, pointer), "continue")])


def _rooted_at(expression: Any, variable: str) -> bool:
    text = unwrap(expression) if isinstance(expression, str) else ""
    return text == f"${variable}" or text.startswith((f"${variable}.", f"${variable}["))


class _Compiler:
    def __init__(
        self,
        blueprint: Blueprint,
        functions: Mapping[str, str],
        timeouts: Mapping[str, float],
        not_exported: Mapping[str, str],
    ) -> None:
        self.definition = blueprint.definition
        self.functions = functions  # applet name -> Fission function name
        self.timeouts = timeouts  # applet name -> its Task's timeout, seconds
        self.not_exported = not_exported  # applet name -> why it is no function
        use = self.definition.get("use") or {}
        self.retries: Mapping[str, Any] = use.get("retries") or {}
        self.named_timeouts: Mapping[str, Any] = use.get("timeouts") or {}

    def workflow(self) -> dict[str, Any]:
        definition = self.definition
        for part, keys in (("input", ("schema", "from")), ("output", ("schema", "as"))):
            for key in keys:
                if key in (definition.get(part) or {}):
                    raise NotExportable(
                        f"{part}.{key} of the workflow: a Fission run has no such step",
                        pointer=f"/{part}/{key}",
                    )
        graph = _Graph(MAX_STATES, branch=False)
        fragment = self.task_list(graph, definition["do"], "/do")
        spec = graph.close(fragment.entry, fragment.exits)
        if "timeout" in definition:
            seconds = self.timeout(definition["timeout"], "/timeout")
            spec["timeout"] = go_duration(seconds, "/timeout")
        return spec

    # -- lists of tasks ------------------------------------------------------------------
    def task_list(
        self,
        graph: _Graph,
        items: Sequence[Mapping[str, Any]],
        pointer: str,
        item: str | None = None,
    ) -> _Fragment:
        """The tasks of ``items`` in order, their ``then`` jumps among them resolved; the exits
        left are ``continue`` (the list is done: ``exit`` too) and ``end`` (the workflow is).
        ``item``: the loop variable the first task takes its input from (a for's body)."""
        if not items:
            raise NotExportable("an empty list of tasks", pointer=pointer)
        names = [next(iter(entry)) for entry in items]
        fragments = [
            self.task(graph, name, entry[name], f"{pointer}/{i}/{name}", item if i == 0 else None)
            for i, (name, entry) in enumerate(zip(names, items, strict=True))
        ]
        exits: list[Exit] = []
        for i, fragment in enumerate(fragments):
            following = fragments[i + 1].entry if i + 1 < len(fragments) else None
            for point, directive in fragment.exits:
                if directive == FlowDirective.CONTINUE and following is not None:
                    point(following)
                elif directive in (FlowDirective.CONTINUE, FlowDirective.EXIT):
                    exits.append((point, FlowDirective.CONTINUE))
                elif directive == FlowDirective.END:
                    exits.append((point, FlowDirective.END))
                else:  # a task of this list: the loader checked that it is there
                    point(fragments[names.index(directive)].entry)
        return _Fragment(fragments[0].entry, exits)

    def branch(self, name: str, task: Mapping[str, Any], pointer: str) -> dict[str, Any]:
        """One task as the sub-machine of a Parallel's branch."""
        graph = _Graph(MAX_BRANCH_STATES, branch=True)
        fragment = self.task(graph, name, task, pointer, None)
        for _, directive in fragment.exits:
            if directive not in (FlowDirective.CONTINUE, FlowDirective.EXIT):
                raise NotExportable(f"then: {directive} from a fork's branch", pointer=pointer)
        return graph.close(fragment.entry, fragment.exits)

    # -- one task ------------------------------------------------------------------------
    def task(
        self, graph: _Graph, name: str, task: Mapping[str, Any], pointer: str, item: str | None
    ) -> _Fragment:
        kind = task_kind(task)
        if "if" in task:
            raise NotExportable(
                "a task with a condition (if): a state always runs", pointer=f"{pointer}/if"
            )
        if "export" in task:
            raise NotExportable(
                "export.as: a Fission Workflow has no context", pointer=f"{pointer}/export"
            )
        for part in ("input", "output"):
            if "schema" in (task.get(part) or {}):
                raise NotExportable(
                    f"a {part} schema: Fission checks none", pointer=f"{pointer}/{part}/schema"
                )
        if item is not None and kind is not TaskKind.CALL:
            raise self._not_the_element(pointer, item)
        if kind is TaskKind.CALL:
            fragment = self.call(graph, name, task, pointer, item)
        else:
            self._plain(task, pointer, kind)
            fragment = self.other(graph, name, task, pointer, kind)
        then = task.get("then")
        if then == FlowDirective.END and graph.branch:
            raise NotExportable(_BRANCH_END, pointer=f"{pointer}/then")
        if then is None or then == FlowDirective.CONTINUE or kind is TaskKind.SWITCH:
            return fragment  # a switch's own then is its fallback, already in place
        exits = [(p, str(then) if d == FlowDirective.CONTINUE else d) for p, d in fragment.exits]
        return _Fragment(fragment.entry, exits)

    @staticmethod
    def _not_the_element(pointer: str, item: str) -> NotExportable:
        return NotExportable(
            f"the body of a for must start with an applet call that takes the element "
            f"(input.from: ${{ ${item} }}): a Fission Map hands each iteration its element, "
            "where the DSL hands it the loop's input",
            pointer=pointer,
        )

    @staticmethod
    def _plain(task: Mapping[str, Any], pointer: str, kind: TaskKind | None) -> None:
        """Refuse what only a Task, Parallel or Map state can carry, on other tasks."""
        shaping = kind in (TaskKind.FORK, TaskKind.FOR)
        for part, key in (("input", "from"), ("output", "as")):
            if key in (task.get(part) or {}) and not shaping:
                raise NotExportable(
                    f"{part}.{key} on a {kind} task: its Fission state does not shape data",
                    pointer=f"{pointer}/{part}/{key}",
                )
        if "timeout" in task:
            raise NotExportable(
                f"a timeout on a {kind} task: only a Task state has one",
                pointer=f"{pointer}/timeout",
            )

    def _shape(
        self, state: dict[str, Any], task: Mapping[str, Any], pointer: str, item: str | None = None
    ) -> None:
        source = (task.get("input") or {}).get("from")
        if source is not None:
            state["inputPath"] = self.path(source, f"{pointer}/input/from", item)
        target = (task.get("output") or {}).get("as")
        if target is not None:
            state["outputPath"] = self.path(target, f"{pointer}/output/as")

    @staticmethod
    def path(expression: Any, pointer: str, item: str | None = None) -> str:
        if not isinstance(expression, str):
            raise NotExportable(
                "an object built with expressions: JSONPath only selects", pointer=pointer
            )
        try:
            return json_path(expression, variable=item)
        except NotExportable as exc:
            raise NotExportable(str(exc), pointer=pointer) from None

    def call(
        self, graph: _Graph, name: str, task: Mapping[str, Any], pointer: str, item: str | None
    ) -> _Fragment:
        target = str(task["call"])
        function = self.functions.get(target)
        if function is None:
            raise NotExportable(self._no_function(target), pointer=f"{pointer}/call")
        if "with" in task:
            raise NotExportable(
                "with: builds the applet's input; a Task passes its input on as it is "
                "(input.from with a path may select a part of it)",
                pointer=f"{pointer}/with",
            )
        if item is not None and not _rooted_at((task.get("input") or {}).get("from"), item):
            raise self._not_the_element(pointer, item)
        state: dict[str, Any] = {"type": "Task", "function": {"name": function, "type": "name"}}
        self._shape(state, task, pointer, item)
        seconds = self.timeouts.get(target)
        if "timeout" in task:
            seconds = self.timeout(task["timeout"], f"{pointer}/timeout")
        if seconds is not None:
            state["timeout"] = go_duration(seconds, f"{pointer}/timeout")
        return _continue(graph, state, name, pointer)

    def _no_function(self, target: str) -> str:
        if target in set(BuiltinCall):
            return f"call: {target} runs in Ghapplets; a Fission Task calls a function"
        if target in self.not_exported:
            return f"call: {target}: {self.not_exported[target]}, so it is no Fission function"
        if target in ((self.definition.get("use") or {}).get("functions") or {}):
            return f"call: {target} is a function of use.functions, which runs in Ghapplets"
        if "." in target:
            return f"call: {target} is a connector action; actions run in Ghapplets"
        return f"call: {target}: no applet of that name is exported"

    def timeout(self, value: Any, pointer: str) -> float:
        if isinstance(value, str):
            if value not in self.named_timeouts:
                raise NotExportable(f"no timeout named {value!r} in use.timeouts", pointer=pointer)
            value = self.named_timeouts[value]
        return written_duration(value.get("after"), f"{pointer}/after")

    def other(
        self, graph: _Graph, name: str, task: Mapping[str, Any], pointer: str, kind: TaskKind | None
    ) -> _Fragment:
        if kind is TaskKind.DO:
            return self.task_list(graph, task["do"], f"{pointer}/do")
        if kind is TaskKind.SWITCH:
            return self.switch(graph, name, task, pointer)
        if kind is TaskKind.WAIT:
            seconds = written_duration(task["wait"], f"{pointer}/wait")
            state = {"type": "Wait", "duration": go_duration(seconds, f"{pointer}/wait")}
            return _continue(graph, state, name, pointer)
        if kind is TaskKind.RAISE:
            return _Fragment(graph.add(name, {"type": "Fail"}, pointer), [])
        if kind is TaskKind.FORK:
            return self.fork(graph, name, task, pointer)
        if kind is TaskKind.FOR:
            return self.loop(graph, name, task, pointer)
        if kind is TaskKind.TRY:
            return self.attempt(graph, task, pointer)
        reasons = {
            TaskKind.LISTEN: "listen waits for events; a Fission Workflow cannot",
            TaskKind.EMIT: "emit publishes an event to Ghapplets",
            TaskKind.SET: "set builds data with expressions; a Fission Workflow has no such state",
            TaskKind.RUN: "run starts a process or a workflow; Fission runs functions only",
        }
        reason = reasons.get(kind) if kind is not None else None
        raise NotExportable(reason or f"a {kind} task has no Fission state", pointer=pointer)

    def switch(self, graph: _Graph, name: str, task: Mapping[str, Any], pointer: str) -> _Fragment:
        state: dict[str, Any] = {"type": "Choice", "choices": []}
        exits: list[Exit] = []
        default: str | None = None
        for i, case in enumerate(task["switch"]):
            case_name = next(iter(case))
            spec = case[case_name]
            then = str(spec.get("then", FlowDirective.CONTINUE))
            if "when" not in spec:
                default = then if default is None else default
                continue
            try:
                rule = choice_rule(str(spec["when"]))
            except NotExportable as exc:
                raise NotExportable(
                    str(exc), pointer=f"{pointer}/switch/{i}/{case_name}/when"
                ) from None
            state["choices"].append(rule)
            exits.append((graph.rule(rule, pointer), then))
        if not state["choices"]:
            raise NotExportable(
                "a switch without a condition: a Choice needs a rule", pointer=f"{pointer}/switch"
            )
        # no case matches: the default case, else the switch's own then, else the next task
        fallback = default or str(task.get("then", FlowDirective.CONTINUE))
        exits.append((graph.link(state, pointer, "default"), fallback))
        if graph.branch and any(d == FlowDirective.END for _, d in exits):
            raise NotExportable(_BRANCH_END, pointer=f"{pointer}/switch")
        return _Fragment(graph.add(name, state, pointer), exits)

    def fork(self, graph: _Graph, name: str, task: Mapping[str, Any], pointer: str) -> _Fragment:
        if graph.branch:
            raise NotExportable(_NO_NESTING, pointer=pointer)
        spec = task["fork"]
        if spec.get("compete"):
            raise NotExportable(
                "compete: a Fission Parallel waits for every branch",
                pointer=f"{pointer}/fork/compete",
            )
        branches = spec["branches"]
        if len(branches) > MAX_BRANCHES:
            raise NotExportable(
                f"more than {MAX_BRANCHES} branches", pointer=f"{pointer}/fork/branches"
            )
        state: dict[str, Any] = {"type": "Parallel", "branches": []}
        for i, entry in enumerate(branches):
            branch_name = next(iter(entry))
            where = f"{pointer}/fork/branches/{i}/{branch_name}"
            state["branches"].append(self.branch(branch_name, entry[branch_name], where))
        self._shape(state, task, pointer)
        return _continue(graph, state, name, pointer)

    def loop(self, graph: _Graph, name: str, task: Mapping[str, Any], pointer: str) -> _Fragment:
        if graph.branch:
            raise NotExportable(_NO_NESTING, pointer=pointer)
        if "while" in task:
            raise NotExportable(
                "for ... while: a Fission Map visits every element", pointer=f"{pointer}/while"
            )
        spec = task["for"]
        body = _Graph(MAX_BRANCH_STATES, branch=True)
        fragment = self.task_list(body, task["do"], f"{pointer}/do", str(spec.get("each", "item")))
        state: dict[str, Any] = {
            "type": "Map",
            "itemsPath": self.path(spec["in"], f"{pointer}/for/in"),
            "maxConcurrency": 1,  # one element after the other, as the DSL loops
            "branches": [body.close(fragment.entry, fragment.exits)],
        }
        self._shape(state, task, pointer)
        # the DSL's for outputs its last iteration's output, a Map the list of them all
        state["outputPath"] = "$[-1]" + state.get("outputPath", "$")[1:]
        return _continue(graph, state, name, pointer)

    def attempt(self, graph: _Graph, task: Mapping[str, Any], pointer: str) -> _Fragment:
        catch = task["catch"]
        where = f"{pointer}/catch"
        for key, reason in (
            ("do", "catch.do: a Fission catch hands its target the error, not the input"),
            ("when", "catch.when: a Fission catch matches error types only"),
            ("exceptWhen", "catch.exceptWhen: a Fission catch matches error types only"),
        ):
            if key in catch:
                raise NotExportable(reason, pointer=f"{where}/{key}")
        if "retry" not in catch:
            raise NotExportable(
                "a catch that swallows the error: Fission has no such state", pointer=where
            )
        self._filter((catch.get("errors") or {}).get("with"), f"{where}/errors/with")
        body = task["try"]
        if len(body) != 1 or task_kind(next(iter(body[0].values()))) is not TaskKind.CALL:
            raise NotExportable(
                "a try around anything but one applet call: the DSL retries the whole block, "
                "Fission retries one Task",
                pointer=f"{pointer}/try",
            )
        retry = self.retry(catch["retry"], f"{where}/retry")
        fragment = self.task_list(graph, body, f"{pointer}/try")
        graph.states[fragment.entry]["retry"] = retry
        return fragment

    @staticmethod
    def _filter(filter_with: Any, pointer: str) -> None:
        if not filter_with:
            return
        kind = ErrorKind.from_type(str(filter_with.get("type", "")))
        if kind is not ErrorKind.COMMUNICATION or set(filter_with) != {"type"}:
            raise NotExportable(
                "a catch of other errors than communication ones (an applet's retryable "
                "failures), which are what Fission retries",
                pointer=pointer,
            )

    def retry(self, policy: Any, pointer: str) -> dict[str, Any]:
        if isinstance(policy, str):
            if policy not in self.retries:
                raise NotExportable(
                    f"no retry policy named {policy!r} in use.retries", pointer=pointer
                )
            policy = self.retries[policy]
        for key in ("when", "exceptWhen"):
            if key in policy:
                raise NotExportable(
                    f"retry.{key}: Fission retries by error type only", pointer=f"{pointer}/{key}"
                )
        limit = policy.get("limit") or {}
        if "duration" in limit or "duration" in (limit.get("attempt") or {}):
            raise NotExportable(
                "a retry limited in time: Fission counts attempts", pointer=f"{pointer}/limit"
            )
        count = (limit.get("attempt") or {}).get("count")
        if count is None:
            raise NotExportable(
                "retries without limit.attempt.count: Fission needs a count",
                pointer=f"{pointer}/limit",
            )
        if count + 1 > MAX_ATTEMPTS:
            raise NotExportable(
                f"more than {MAX_ATTEMPTS - 1} retries", pointer=f"{pointer}/limit/attempt/count"
            )
        retry: dict[str, Any] = {"maxAttempts": count + 1}
        backoff = policy.get("backoff") or {}
        if "linear" in backoff:
            raise NotExportable(
                "a linear backoff: Fission's grows exponentially", pointer=f"{pointer}/backoff"
            )
        if "delay" in policy:
            delay = go_duration(
                written_duration(policy["delay"], f"{pointer}/delay"), f"{pointer}/delay"
            )
            retry["backoffBase"] = delay
            if "exponential" not in backoff:  # constant: a cap at the base keeps it there
                retry["backoffCap"] = delay
        if "jitter" not in policy:
            retry["jitter"] = False
        return retry


def compile_blueprint(
    blueprint: Blueprint,
    functions: Mapping[str, str],
    *,
    name: str,
    namespace: str,
    timeouts: Mapping[str, float] | None = None,
    not_exported: Mapping[str, str] | None = None,
) -> dict[str, Any] | Refusal:
    """The ``Workflow`` object (``name`` in ``namespace``) of ``blueprint``, whose applets are
    the Fission functions in ``functions`` (applet name -> function name), their Task states
    bounded by ``timeouts`` (applet name -> seconds); or a :class:`Refusal`. ``not_exported``
    says why an applet has no function (for the refusal of a blueprint that calls it)."""
    compiler = _Compiler(blueprint, functions, timeouts or {}, not_exported or {})
    try:
        spec = compiler.workflow()
    except NotExportable as exc:
        where = f"{blueprint.namespace}/{blueprint.name}"
        return Refusal(where, blueprint.version, exc.pointer or "/", str(exc))
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
