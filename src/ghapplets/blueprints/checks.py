"""Semantic checks of a blueprint, after its schema: each finding a located problem.

:func:`check_workflow` walks the plain data of a workflow that the models accepted, and checks
what a schema cannot:

- flow: a ``then`` (of a task or a switch case) that is not ``continue``, ``exit`` or ``end``
  names a task of the same list; task names are unique in their list and are not directives;
  a switch has at most one default case (no ``when``);
- expressions: every runtime expression compiles with jq (:func:`compile_check`), with the
  variables that exist where it is (the runtime arguments, a ``for``'s ``each``/``at``, a
  catch's ``as``, a listen ``foreach``'s ``item``/``at``); ``$secrets.NAME`` is declared;
- references: ``call``, ``raise.error``, a catch's ``retry``, ``timeout``, ``authentication:
  {use}``, a secret-based authentication's ``use`` and ``run.workflow`` name something that
  exists (in ``use``, or in the :class:`Catalog` of the platform when it knows);
- refused features (:class:`~.refusals.Refused`): what this runtime does not execute is refused
  here, at load time, each with what to use instead. A refused construct is reported once; what it
  holds is not checked further.

Schema documents, ``metadata`` and ``document`` are data, not expressions: they are not read.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from croniter import croniter
from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for

from ghapplets.blueprints.expressions import Expression, is_expression
from ghapplets.blueprints.model_tasks import BuiltinCall, FlowDirective, TaskKind, task_kind
from ghapplets.blueprints.refusals import (
    OAUTH2_CLIENT_AUTHENTICATIONS,
    REFUSED_CALLS,
    REFUSED_SCHEMES,
    SCRIPT_LANGUAGES,
    Refused,
    refusal,
)
from ghapplets.blueprints.source import SourceLocator
from ghapplets.config.located import Loc, Problem
from ghapplets.exceptions import ExpressionInvalid


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the platform has, for the references of a blueprint. None: unknown, not checked."""

    applets: frozenset[str] | None = None
    actions: frozenset[str] | None = None
    secrets: frozenset[str] | None = None
    blueprints: frozenset[tuple[str, str, str]] | None = None  # (namespace, name, version)


# The runtime expression arguments, available in every expression (dsl.md)
ARGUMENTS = (
    "context",
    "input",
    "output",
    "secrets",
    "task",
    "workflow",
    "runtime",
    "authorization",
)
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_REF = re.compile(
    r"\$secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\.\s*\"([^\"\\]*)\"|\[\s*\"([^\"\\]*)\"\s*\])"
)
_DSL_1_0 = re.compile(r"^1\.0\.\d+([-+].*)?$")


def expression_body(value: str) -> str:
    """The jq program of a runtime expression: without ``${ }`` when it is written so."""
    text = value.strip()
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1].strip()
    return text


@functools.lru_cache(maxsize=4096)
def _compile(expression: str, variables: tuple[str, ...]) -> str | None:
    try:
        Expression(expression).check(variables)  # as the engine will compile it
    except ExpressionInvalid as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        return first.removeprefix("jq: error: ").removesuffix(":").replace(" at <top-level>", "")
    return None


def project_catalog(applets: Iterable[Any]) -> Catalog:
    """What a project's blueprints may call: its applets (their specs) and the connector
    action catalog; secrets and other blueprints are not checked."""
    from ghapplets.connectors.catalog import catalog  # the vendors register their actions

    return Catalog(
        applets=frozenset(a.name for a in applets),
        actions=frozenset(action.name for action in catalog()),
    )


def compile_check(expression: str, variables: Iterable[str]) -> str | None:
    """Compile the jq ``expression`` (a body, without ``${ }``) with ``$name`` defined for each of
    ``variables``: the error message, or None when it compiles (with the engine's compiler,
    :class:`~ghapplets.blueprints.expressions.Expression`, and its rules)."""
    return _compile(expression, tuple(sorted(set(variables))))


def secret_names(expression: str) -> list[str]:
    """The secrets an expression reads by name (``$secrets.X``, ``$secrets["X"]``)."""
    return [
        next(g for g in match.groups() if g is not None)
        for match in _SECRET_REF.finditer(expression)
    ]


def _names(names: Iterable[str], limit: int = 12) -> str:
    shown = sorted(names)
    if not shown:
        return "none"
    more = f", ... ({len(shown) - limit} more)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _close(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), 1)
    return f" (did you mean {close[0]!r}?)" if close else ""


Scope = frozenset[str]  # the variables an expression may read
TaskData = dict[str, Any]  # a task's definition, as read
Siblings = list[str] | None  # the task names of its list (None: a function, in no list)


class _Checker:
    def __init__(self, data: dict[str, Any], locator: SourceLocator, catalog: Catalog) -> None:
        self.data = data
        self.locator = locator
        self.catalog = catalog
        self.problems: list[Problem] = []
        use = data.get("use") or {}
        self.use = use
        self.secrets = set(use.get("secrets") or [])
        self.tasks_anywhere: dict[str, list[Loc]] = {}
        self.pending_then: list[tuple[Loc, str, list[str]]] = []
        self.by_kind: dict[TaskKind, Callable[[TaskData, Loc, Scope, Siblings], None]] = {
            TaskKind.CALL: self.task_call,
            TaskKind.DO: self.task_do,
            TaskKind.EMIT: self.task_emit,
            TaskKind.FOR: self.task_for,
            TaskKind.FORK: self.task_fork,
            TaskKind.LISTEN: self.task_listen,
            TaskKind.RAISE: self.task_raise,
            TaskKind.RUN: self.task_run,
            TaskKind.SET: self.task_set,
            TaskKind.SWITCH: self.task_switch,
            TaskKind.TRY: self.task_try,
            TaskKind.WAIT: self.task_wait,
        }

    # --- reporting ----------------------------------------------------------------------------

    def at_key(self, loc: Loc, message: str) -> None:
        self.problems.append(self.locator.problem(loc, message))

    def at_value(self, loc: Loc, message: str) -> None:
        self.problems.append(self.locator.value_problem(loc, message))

    def refuse(
        self, loc: Loc, feature: Refused, shown: str | None = None, *, value: bool = False
    ) -> None:
        (self.at_value if value else self.at_key)(loc, refusal(feature, shown))

    def defined(self, section: str) -> Collection[str]:
        return self.use.get(section) or {}

    def reference(self, name: str, section: str, loc: Loc, what: str) -> None:
        """``name`` (at ``loc``) must name one of ``use.<section>``."""
        names = self.defined(section)
        if name not in names:
            self.at_value(
                loc,
                f"no {what} named {name!r} in use.{section} (it has: {_names(names)})"
                + _close(name, names),
            )

    # --- expressions --------------------------------------------------------------------------

    def compile(self, body: str, loc: Loc, scope: Scope) -> None:
        error = compile_check(body, scope)
        if error is not None:
            self.at_value(loc, f"invalid runtime expression: {error}")
        for name in secret_names(body):
            if name not in self.secrets:
                self.at_value(loc, f"uses secret {name!r}, which is not listed in use.secrets")

    def bare(self, value: Any, loc: Loc, scope: Scope) -> None:
        """A property whose value is a runtime expression, with or without ``${ }``."""
        if isinstance(value, str):
            self.compile(expression_body(value), loc, scope)

    def strings(self, value: Any, loc: Loc, scope: Scope) -> None:
        """Every ``${ ... }`` string in ``value``, at any depth."""
        if isinstance(value, str):
            if is_expression(value):
                self.compile(expression_body(value), loc, scope)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.strings(item, (*loc, key), scope)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.strings(item, (*loc, i), scope)

    def variable(self, name: str, loc: Loc) -> None:
        """A name that an expression will read as ``$name``."""
        if not _VARIABLE.match(name):
            self.at_value(loc, f"{name!r} cannot name a variable: use letters, digits and '_'")
        elif name in ARGUMENTS:
            self.at_value(loc, f"{name!r} would hide the runtime argument ${name}: pick another")

    # --- the workflow -------------------------------------------------------------------------

    def run(self) -> list[Problem]:
        self.document()
        self.evaluate()
        self.components()
        self.data_flow(self.data.get("input"), ("input",), "from", frozenset(ARGUMENTS))
        self.data_flow(self.data.get("output"), ("output",), "as", frozenset(ARGUMENTS))
        self.timeout(self.data.get("timeout"), ("timeout",), frozenset(ARGUMENTS))
        self.schedule()
        self.task_list(self.data["do"], ("do",), frozenset(ARGUMENTS))
        self.resolve_then()
        return self.problems

    def document(self) -> None:
        dsl = self.data["document"]["dsl"]
        if not _DSL_1_0.match(dsl):
            self.refuse(("document", "dsl"), Refused.DSL_VERSION, f"dsl {dsl!r}", value=True)

    def evaluate(self) -> None:
        evaluate = self.data.get("evaluate") or {}
        language = evaluate.get("language", "jq")
        if language != "jq":
            shown = f"evaluate.language {language!r}"
            self.refuse(("evaluate", "language"), Refused.EXPRESSION_LANGUAGE, shown, value=True)
        if evaluate.get("mode") == "loose":
            self.refuse(("evaluate", "mode"), Refused.LOOSE_MODE, value=True)

    def components(self) -> None:
        scope = frozenset(ARGUMENTS)
        use = self.use
        for section, feature in (
            ("catalogs", Refused.CATALOGS),
            ("extensions", Refused.EXTENSIONS),
        ):
            if section in use:
                self.refuse(("use", section), feature)
        for name, policy in (use.get("authentications") or {}).items():
            self.authentication(policy, ("use", "authentications", name), scope)
        for name, error in (use.get("errors") or {}).items():
            self.strings(error, ("use", "errors", name), scope)
        for name, task in (use.get("functions") or {}).items():
            self.task(task, ("use", "functions", name), scope, None)
        for name, policy in (use.get("retries") or {}).items():
            self.retry(policy, ("use", "retries", name), scope)
        for name, timeout in (use.get("timeouts") or {}).items():
            self.strings(timeout, ("use", "timeouts", name), scope)
        known = self.catalog.secrets
        for i, name in enumerate(use.get("secrets") or []):
            if known is not None and name not in known:
                self.at_value(
                    ("use", "secrets", i),
                    f"no secret named {name!r} in this project" + _close(name, known),
                )

    def schedule(self) -> None:
        schedule = self.data.get("schedule")
        if schedule is None:
            return
        if len(schedule) > 1:
            shown = f"a schedule with {' and '.join(schedule)}"
            self.refuse(("schedule",), Refused.COMBINED_SCHEDULE, shown)
        scope = frozenset(ARGUMENTS)
        if "cron" in schedule:
            cron = schedule["cron"]
            try:
                croniter(cron)
            except (ValueError, KeyError, TypeError) as exc:  # croniter's errors are ValueErrors
                self.at_value(("schedule", "cron"), f"invalid cron expression {cron!r}: {exc}")
        for key in ("every", "after"):
            self.strings(schedule.get(key), ("schedule", key), scope)
        if "on" in schedule:
            on = schedule["on"]
            if isinstance(on, dict) and ("until" in on or len(on.get("all") or []) > 1):
                self.refuse(("schedule", "on"), Refused.SCHEDULE_ON_SEVERAL)
            self.consumption(on, ("schedule", "on"), scope)

    # --- tasks --------------------------------------------------------------------------------

    def task_list(self, items: list[dict[str, Any]], loc: Loc, scope: Scope) -> None:
        first: dict[str, Loc] = {}
        for i, item in enumerate(items):
            name = next(iter(item))
            task_loc = (*loc, i, name)
            if name in first:
                line, _ = self.locator.find(first[name])
                self.at_key(
                    task_loc, f"duplicate task name {name!r} in this list (first at line {line})"
                )
            elif name in set(FlowDirective):
                self.at_key(task_loc, f"a task cannot be named {name!r}: it is a flow directive")
            else:
                first[name] = task_loc
            self.tasks_anywhere.setdefault(name, []).append(task_loc)
        siblings = list(first)
        for i, item in enumerate(items):
            name, task = next(iter(item.items()))
            self.task(task, (*loc, i, name), scope, siblings)

    def flow(self, target: Any, loc: Loc, siblings: list[str] | None) -> None:
        if not isinstance(target, str) or target in set(FlowDirective):
            return
        if siblings is None:
            self.at_value(
                loc,
                f"then: {target!r} names a task, but a function has no sibling tasks: use "
                "continue, exit or end",
            )
        elif target not in siblings:
            self.pending_then.append((loc, target, siblings))

    def resolve_then(self) -> None:
        """Report the ``then`` targets not found, now that every task name is known."""
        for loc, target, siblings in self.pending_then:
            here = f"the tasks of this list are: {_names(siblings)}; or continue, exit, end"
            elsewhere = self.tasks_anywhere.get(target)
            if elsewhere:
                line, _ = self.locator.find(elsewhere[0])
                self.at_value(
                    loc,
                    f"then: {target!r} is a task at another depth (line {line}); a flow "
                    f"directive only reaches the tasks of its own list ({here})",
                )
            else:
                close = _close(target, siblings)
                self.at_value(loc, f"then: no task named {target!r} in this list{close} ({here})")

    def task(
        self, task: dict[str, Any], loc: Loc, scope: Scope, siblings: list[str] | None
    ) -> None:
        self.flow(task.get("then"), (*loc, "then"), siblings)
        if "if" in task:
            self.bare(task["if"], (*loc, "if"), scope)
        self.data_flow(task.get("input"), (*loc, "input"), "from", scope)
        self.data_flow(task.get("output"), (*loc, "output"), "as", scope)
        self.data_flow(task.get("export"), (*loc, "export"), "as", scope)
        self.timeout(task.get("timeout"), (*loc, "timeout"), scope)
        kind = task_kind(task)
        if kind is not None:
            self.by_kind[kind](task, loc, scope, siblings)

    def task_call(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        call: str = task["call"]
        arguments = task.get("with") or {}
        with_loc = (*loc, "with")
        if call in REFUSED_CALLS:
            self.refuse((*loc, "call"), REFUSED_CALLS[BuiltinCall(call)], value=True)
            return
        if call == BuiltinCall.HTTP:
            self.endpoint(arguments["endpoint"], (*with_loc, "endpoint"), scope)
        elif call == BuiltinCall.OPENAPI:
            self.resource(arguments["document"], (*with_loc, "document"), scope)
            if "authentication" in arguments:
                self.authentication_reference(
                    arguments["authentication"], (*with_loc, "authentication"), scope
                )
        elif not self.function(call, (*loc, "call")):
            return
        self.strings(arguments, with_loc, scope)

    def function(self, name: str, loc: Loc) -> bool:
        """Check a called function's name; False when the call is refused."""
        if "://" in name:
            self.refuse(loc, Refused.FUNCTION_URI, f"{Refused.FUNCTION_URI} ({name})", value=True)
            return False
        if ":" in name or "@" in name:
            shown = f"{Refused.CATALOGED_FUNCTION}: {name!r}"
            self.refuse(loc, Refused.CATALOGED_FUNCTION, shown, value=True)
            return False
        functions = self.defined("functions")
        applets, actions = self.catalog.applets, self.catalog.actions
        if name in functions or name in (applets or ()) or name in (actions or ()):
            return True
        if "." in name:
            if actions is not None:
                self.at_value(
                    loc,
                    f"no connector action named {name!r}{_close(name, actions)} (actions: "
                    f"{_names(actions)})",
                )
        elif applets is not None:
            known = {*functions, *applets}
            self.at_value(
                loc,
                f"call: {name!r} is not http, openapi, a function of use.functions nor an "
                f"applet{_close(name, known)} (functions: {_names(functions)}; applets: "
                f"{_names(applets)})",
            )
        return True

    def task_do(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        self.task_list(task["do"], (*loc, "do"), scope)

    def task_emit(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        self.strings(task["emit"], (*loc, "emit"), scope)

    def task_for(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        loop = task["for"]
        each, at = loop.get("each", "item"), loop.get("at", "index")
        for key in ("each", "at"):
            if key in loop:
                self.variable(loop[key], (*loc, "for", key))
        self.bare(loop["in"], (*loc, "for", "in"), scope)
        inner = scope | {each, at}
        if "while" in task:
            self.bare(task["while"], (*loc, "while"), inner)
        self.task_list(task["do"], (*loc, "do"), inner)

    def task_fork(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        self.task_list(task["fork"]["branches"], (*loc, "fork", "branches"), scope)

    def task_listen(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        self.consumption(task["listen"]["to"], (*loc, "listen", "to"), scope)
        iterator = task.get("foreach")
        if iterator is None:
            return
        item, at = iterator.get("item", "item"), iterator.get("at", "index")
        for key in ("item", "at"):
            if key in iterator:
                self.variable(iterator[key], (*loc, "foreach", key))
        inner = scope | {item, at}
        if "do" in iterator:
            self.task_list(iterator["do"], (*loc, "foreach", "do"), inner)
        self.data_flow(iterator.get("output"), (*loc, "foreach", "output"), "as", inner)
        self.data_flow(iterator.get("export"), (*loc, "foreach", "export"), "as", inner)

    def task_raise(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        error = task["raise"]["error"]
        if isinstance(error, str):
            self.reference(error, "errors", (*loc, "raise", "error"), "error")
        else:
            self.strings(error, (*loc, "raise", "error"), scope)

    def task_run(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        run = task["run"]
        run_loc = (*loc, "run")
        if "container" in run:
            self.refuse((*run_loc, "container"), Refused.RUN_CONTAINER)
            return
        if "script" in run:
            script = run["script"]
            language = script["language"]
            if language.lower() not in SCRIPT_LANGUAGES:
                shown = f"run.script language {language!r}"
                self.refuse(
                    (*run_loc, "script", "language"), Refused.SCRIPT_LANGUAGE, shown, value=True
                )
            if "source" in script:
                self.resource(script["source"], (*run_loc, "script", "source"), scope)
        if "workflow" in run:
            self.subflow(run["workflow"], (*run_loc, "workflow"))
        self.strings(run, run_loc, scope)

    def subflow(self, ref: dict[str, Any], loc: Loc) -> None:
        known = self.catalog.blueprints
        if known is None:
            return
        namespace, name, version = ref["namespace"], ref["name"], ref["version"]
        versions = sorted(v for (ns, n, v) in known if (ns, n) == (namespace, name))
        if version in versions or (version == "latest" and versions):
            return
        if versions:
            detail = f"no version {version!r} (it has: {_names(versions)})"
        else:
            detail = "no such blueprint"
        self.at_key(loc, f"run.workflow: {namespace}/{name}: {detail}")

    def task_set(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        # an object with expressions in it, or one ``${ }`` expression; in strict mode any
        # other string is the value itself
        self.strings(task["set"], (*loc, "set"), scope)

    def task_switch(self, task: TaskData, loc: Loc, scope: Scope, siblings: Siblings) -> None:
        default: str | None = None
        for i, item in enumerate(task["switch"]):
            name, case = next(iter(item.items()))
            case_loc = (*loc, "switch", i, name)
            if "when" in case:
                self.bare(case["when"], (*case_loc, "when"), scope)
            elif default is None:
                default = name
            else:
                self.at_key(
                    case_loc,
                    f"a second default case (no 'when'): {default!r} is already the default; "
                    "a switch has at most one",
                )
            self.flow(case["then"], (*case_loc, "then"), siblings)

    def task_try(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        self.task_list(task["try"], (*loc, "try"), scope)
        catch = task["catch"]
        catch_loc = (*loc, "catch")
        if "as" in catch:
            self.variable(catch["as"], (*catch_loc, "as"))
        inner = scope | {catch.get("as", "error")}
        for key in ("when", "exceptWhen"):
            if key in catch:
                self.bare(catch[key], (*catch_loc, key), inner)
        retry = catch.get("retry")
        if isinstance(retry, str):
            self.reference(retry, "retries", (*catch_loc, "retry"), "retry policy")
        elif retry is not None:
            self.retry(retry, (*catch_loc, "retry"), inner)
        if "do" in catch:
            self.task_list(catch["do"], (*catch_loc, "do"), inner)

    def task_wait(self, task: TaskData, loc: Loc, scope: Scope, _: Siblings) -> None:
        self.strings(task["wait"], (*loc, "wait"), scope)

    # --- the parts of tasks -------------------------------------------------------------------

    def data_flow(self, value: dict[str, Any] | None, loc: Loc, key: str, scope: Scope) -> None:
        """An ``input`` (``key``: ``from``), ``output`` or ``export`` (``as``)."""
        if value is None:
            return
        if "schema" in value:
            self.schema(value["schema"], (*loc, "schema"), scope)
        transform = value.get(key)
        if isinstance(transform, str):
            self.bare(transform, (*loc, key), scope)
        else:
            self.strings(transform, (*loc, key), scope)

    def schema(self, schema: dict[str, Any], loc: Loc, scope: Scope) -> None:
        form = schema.get("format", "json")
        if form.split(":", 1)[0] != "json":
            self.refuse(
                (*loc, "format"), Refused.SCHEMA_FORMAT, f"schema format {form!r}", value=True
            )
        if "resource" in schema:
            self.refuse((*loc, "resource"), Refused.SCHEMA_RESOURCE)
            return
        document = schema["document"]
        try:
            validator_for(document, default=Draft202012Validator).check_schema(document)
        except SchemaError as exc:
            where = (*loc, "document", *exc.path)
            self.at_key(where, f"not a valid JSON Schema: {exc.message}")

    def timeout(self, value: Any, loc: Loc, scope: Scope) -> None:
        if isinstance(value, str):
            self.reference(value, "timeouts", loc, "timeout")
        else:
            self.strings(value, loc, scope)

    def retry(self, policy: dict[str, Any], loc: Loc, scope: Scope) -> None:
        for key, value in policy.items():
            if key in ("when", "exceptWhen"):
                self.bare(value, (*loc, key), scope)
            else:
                self.strings(value, (*loc, key), scope)

    def consumption(self, strategy: dict[str, Any], loc: Loc, scope: Scope) -> None:
        """An event consumption strategy (listen ``to``, schedule ``on``, an ``until``)."""
        filters: list[tuple[Loc, dict[str, Any]]] = []
        if "one" in strategy:
            filters.append((("one",), strategy["one"]))
        for key in ("all", "any"):
            filters += [((key, i), f) for i, f in enumerate(strategy.get(key) or [])]
        for sub, event_filter in filters:
            self.strings(event_filter["with"], (*loc, *sub, "with"), scope)
            for name, correlation in (event_filter.get("correlate") or {}).items():
                where = (*loc, *sub, "correlate", name)
                self.bare(correlation["from"], (*where, "from"), scope)
                self.strings(correlation.get("expect"), (*where, "expect"), scope)
        until = strategy.get("until")
        if isinstance(until, str):
            self.bare(until, (*loc, "until"), scope)
        elif until is not None:
            self.consumption(until, (*loc, "until"), scope)

    def endpoint(self, endpoint: Any, loc: Loc, scope: Scope) -> None:
        if isinstance(endpoint, dict) and "authentication" in endpoint:
            self.authentication_reference(
                endpoint["authentication"], (*loc, "authentication"), scope
            )

    def resource(self, resource: dict[str, Any], loc: Loc, scope: Scope) -> None:
        self.endpoint(resource["endpoint"], (*loc, "endpoint"), scope)

    def authentication_reference(self, value: dict[str, Any], loc: Loc, scope: Scope) -> None:
        if "use" in value:
            self.reference(value["use"], "authentications", (*loc, "use"), "authentication")
        else:
            self.authentication(value, loc, scope)

    def authentication(self, policy: dict[str, Any], loc: Loc, scope: Scope) -> None:
        scheme, settings = next(iter(policy.items()))
        scheme_loc = (*loc, scheme)
        if scheme in REFUSED_SCHEMES:
            self.refuse(scheme_loc, REFUSED_SCHEMES[scheme])
            return
        if "use" in settings:
            secret = settings["use"]
            if secret not in self.secrets:
                self.at_value(
                    (*scheme_loc, "use"),
                    f"uses secret {secret!r}, which is not listed in use.secrets",
                )
            return
        if scheme == "oauth2":
            self.oauth2(settings, scheme_loc)
        self.strings(settings, scheme_loc, scope)

    def oauth2(self, settings: dict[str, Any], loc: Loc) -> None:
        grant = settings["grant"]
        if grant != "client_credentials":
            self.refuse(
                (*loc, "grant"), Refused.OAUTH2_GRANT, f"oauth2 grant {grant!r}", value=True
            )
        method = (settings.get("client") or {}).get("authentication")
        if method is not None and method not in OAUTH2_CLIENT_AUTHENTICATIONS:
            shown = f"oauth2 client authentication {method!r}"
            where = (*loc, "client", "authentication")
            self.refuse(where, Refused.OAUTH2_CLIENT_AUTHENTICATION, shown, value=True)
        for key in ("subject", "actor"):
            if key in settings:
                self.refuse((*loc, key), Refused.OAUTH2_TOKEN_EXCHANGE, f"oauth2 {key}")


def check_workflow(
    data: dict[str, Any], locator: SourceLocator, catalog: Catalog | None = None
) -> list[Problem]:
    """The semantic problems of ``data``, a workflow that the models accepted."""
    return _Checker(data, locator, catalog or Catalog()).run()


__all__ = [
    "ARGUMENTS",
    "Catalog",
    "check_workflow",
    "compile_check",
    "expression_body",
    "secret_names",
]
