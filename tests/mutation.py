"""Mutation testing of the critical modules with mutmut: which broken lines does the suite miss?

``python3 tasks.py mutate [GROUP...]`` runs it (or, with the project's Python, ``python -m
tests.mutation`` from the repository root); docs/testing.md keeps the scores. It runs on demand,
not in CI: a whole pass takes about an hour on two cores.

Each group (``GROUPS``) names the modules to mutate and the tests that guard them. A group runs
in its own work folder, ``.mutmut/<group>/``, holding a fresh copy of ``src/`` and ``tests/``
and a ``pyproject.toml`` with the group's ``[tool.mutmut]`` table, so groups never share
mutmut's state and the repository's own ``pyproject.toml`` stays free of it. mutmut keeps its
results there between runs: a second run only tests the mutants of functions that changed.
``--survivors`` tests again the mutants that survived (after a new test was written).

mutmut runs, for each mutant, the tests that reached the mutated function in the same process;
a mutant reached only in a child process (a ``ghapplets`` command started by a test) counts as
"no tests", which the score counts as not killed. What a test started and left running when
mutmut killed it on a timeout (a server, a ``serve``) is ended by the runner (tests/orphans.py).

Before testing, mypy (strict, as CI runs it) checks the mutated sources: a mutant it rejects
(a ``None`` where a string must be, an argument dropped) could not pass CI, so it counts as
caught, in a column of its own, without running a test.

A surviving mutant that cannot change anything observable (an *equivalent* mutant) is listed in
``tests/equivalent_mutants.toml`` with its reason; the score is ``(killed + caught by mypy) /
(mutants - equivalent)``. ``--write-docs`` puts the scores and that list into docs/testing.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.orphans import become_subreaper, reaping

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutmut"
EQUIVALENTS = ROOT / "tests" / "equivalent_mutants.toml"
MYPY = Path(sys.executable).parent / "mypy"  # the project's, beside its Python
DOCS = ROOT / "docs" / "testing.md"
DOCS_BEGIN = "<!-- mutation scores: written by python3 tasks.py mutate --write-docs -->"
DOCS_END = "<!-- end of mutation scores -->"
TARGET = 0.90


@dataclass(frozen=True)
class Group:
    """Modules mutated together, and the tests that guard them."""

    modules: tuple[str, ...]  # globs under src/, as mutmut's only_mutate takes them
    tests: tuple[str, ...]  # paths under tests/
    skip: tuple[str, ...] = ()  # globs under src/ left alone (sample data, not logic)


GROUPS: dict[str, Group] = {
    "sources": Group(
        ("ghapplets/sources/*",), ("sources", "gateway"), skip=("ghapplets/sources/fixtures/*",)
    ),
    "gateway": Group(
        (
            "ghapplets/gateway/ingest.py",
            "ghapplets/gateway/forwarded.py",
            "ghapplets/gateway/app.py",
        ),
        ("gateway",),
    ),
    # the brokers' and stores' own tests guard them: the dispatch tests reach them too, but
    # would make each mutant cost minutes (a lower bound of the kills, then)
    # (not the three-node cluster's failovers, which take a minute for each mutant they reach)
    "broker": Group(
        ("ghapplets/broker/*",),
        tuple(
            f"broker/{name}.py"
            for name in (
                "test_conformance",
                "test_dedup_batches",
                "test_nats_bookkeeping",
                "test_nats_broker",
                "test_sqlite_broker",
                "test_sqlite_dedup_window",
            )
        ),
    ),
    # (the admin API's tests drive its lists and audit, the vault's the secrets' table; the
    # migrations run from alembic's files, which mutmut cannot reach: the schema tests check
    # them, against both databases)
    "store": Group(
        ("ghapplets/store/*.py",),
        ("store", "test_data_folder.py", "admin", "secrets/test_vault_and_refs.py"),
        skip=("ghapplets/store/migrations/*",),
    ),
    "dispatch": Group(
        ("ghapplets/dispatch/*",),
        (
            "dispatch",
            "connectors/test_applet_actions.py",
            "connectors/test_job_actions.py",
            "connectors/test_applet_clients.py",  # ctx.github and the others through a job
            "cli/test_runs_cli.py",
        ),
    ),
    "connectors": Group(
        (
            "ghapplets/secrets/tokens.py",
            "ghapplets/connectors/registry.py",
            "ghapplets/connectors/endpoint.py",
            "ghapplets/connectors/wire.py",
            "ghapplets/connectors/github_kit.py",
            "ghapplets/connectors/github_catchup.py",
        ),
        (
            "connectors",
            "secrets/test_tokens.py",
            "cli/test_action_cli.py",
            "cli/test_action_github_cli.py",
            "cli/test_action_servicenow_cli.py",
        ),
    ),
    "blueprints": Group(
        ("ghapplets/blueprints/*",),
        (
            "blueprints",
            "examples",
            "dispatch/test_runs_parts.py",
            "dispatch/test_blueprint_runs.py",
        ),
        skip=("ghapplets/blueprints/model*.py",),  # declarations: pydantic does the work
    ),
    "secrets": Group(
        ("ghapplets/secrets/*",),
        (
            "secrets",
            "applets/test_runtime_redaction.py",
            "cli/test_secrets_cli.py",
            "cli/test_secrets_scopes.py",
            "cli/test_secrets_backends_cli.py",
        ),
        skip=("ghapplets/secrets/tokens.py",),  # in the connectors group, with its users
    ),
}

# mutmut's exit codes, by what they mean for the score (see mutmut.stats.status_by_exit_code)
KILLED = {1, 3}
TYPED = {37}  # caught by the type checker
SURVIVED = {0}
NO_TESTS = {5, 33}
TIMEOUT = {36, -24, 24, 152, 255}


ALSO_COPY = ("examples",)  # what tests read besides src/ and tests/ (the example projects)
# the Serverless Workflow specification the blueprint tests check against, where they look for
# it from the repository (a work folder is elsewhere)
DSL_SPEC = ROOT.parent / "shared" / "serverless-workflow"


def _config(group: Group) -> str:
    """The ``[tool.mutmut]`` table for one group, in TOML."""
    lines = [
        "",
        "[tool.mutmut]",
        'source_paths = ["src/ghapplets"]',
        "only_mutate = " + json.dumps([f"src/{m}" for m in group.modules]),
        "do_not_mutate = " + json.dumps([f"src/{m}" for m in group.skip]),
        "pytest_add_cli_args_test_selection = " + json.dumps([f"tests/{t}" for t in group.tests]),
        'pytest_add_cli_args = ["-p", "no:randomly", "-p", "no:cacheprovider", "-q"]',
        # mutants mypy rejects are caught without a test (CI runs mypy, strict, on every change)
        # (named "mypy": mutmut reads the report by that name; run_group puts it on the PATH)
        'type_check_command = ["mypy", "-O", "json"]',
        "also_copy = " + json.dumps(list(ALSO_COPY)),
        "use_git_change_detection = false",
        "timeout_multiplier = 5.0",
    ]
    return "\n".join(lines) + "\n"


def prepare(name: str, group: Group) -> Path:
    """The group's work folder with today's sources and tests (mutmut's results are kept)."""
    folder = WORK / name
    folder.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("src", "tests", *ALSO_COPY):
        shutil.rmtree(folder / part, ignore_errors=True)
        shutil.copytree(ROOT / part, folder / part, ignore=ignore)  # copy2: mtimes kept
    text = (ROOT / "pyproject.toml").read_text()
    (folder / "pyproject.toml").write_text(text + _config(group))
    (folder / COMMIT_FILE).write_text(_commit() + "\n")
    return folder


COMMIT_FILE = "measured-at"


def _commit() -> str:
    """HEAD's short hash, with ``+changes`` when ``src/`` or ``tests/`` differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    return head + "+changes" if git("status", "--porcelain", "src", "tests") else head


def measured_at(folder: Path) -> str:
    path = folder / COMMIT_FILE
    return path.read_text().strip() if path.exists() else "unknown"


def results(folder: Path) -> dict[str, int | None]:
    """Each mutant's exit code, from mutmut's ``.meta`` files (None: not tested yet)."""
    codes: dict[str, int | None] = {}
    for meta in sorted((folder / "mutants" / "src").rglob("*.py.meta")):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def equivalents() -> dict[str, str]:
    """Mutants listed as equivalent, each with its reason."""
    with EQUIVALENTS.open("rb") as f:
        return {str(k): str(v) for k, v in tomllib.load(f).items()}


def module_of(mutant: str) -> str:
    """``ghapplets.store.sql.x_f__mutmut_3`` -> ``ghapplets.store.sql``."""
    parts = mutant.split(".")
    return ".".join(p for p in parts if not p.startswith(("x_", "xǁ")))


@dataclass
class Score:
    module: str
    total: int = 0
    killed: int = 0
    typed: int = 0  # caught by mypy
    survived: int = 0
    no_tests: int = 0
    timeout: int = 0
    equivalent: int = 0
    commit: str = ""  # the commit its mutants were made from

    @property
    def ratio(self) -> float:
        counted = self.total - self.equivalent
        return (self.killed + self.timeout + self.typed) / counted if counted else 1.0


def score(
    codes: dict[str, int | None], equivalent: dict[str, str], commit: str = ""
) -> list[Score]:
    """Scores per module; a timeout counts as killed (the mutant hung a test), and a mutant mypy
    rejects as caught."""
    by_module: dict[str, Score] = {}
    for mutant, code in codes.items():
        s = by_module.setdefault(module_of(mutant), Score(module_of(mutant), commit=commit))
        s.total += 1
        if code in KILLED:
            s.killed += 1
        elif code in TIMEOUT:
            s.timeout += 1
        elif code in TYPED:
            s.typed += 1
        elif mutant in equivalent:
            s.equivalent += 1
        elif code in NO_TESTS:
            s.no_tests += 1
        else:
            s.survived += 1
    return sorted(by_module.values(), key=lambda s: s.module)


def survivors(codes: dict[str, int | None], equivalent: dict[str, str]) -> list[str]:
    caught = KILLED | TIMEOUT | TYPED
    return sorted(m for m, c in codes.items() if c not in caught and m not in equivalent)


def choose(
    codes: dict[str, int | None],
    equivalent: dict[str, str],
    *,
    survivors_only: bool,
    only: list[str] | None,
) -> list[str] | None:
    """What to hand mutmut: the survivors (matching ``only``, fnmatch patterns) with
    ``survivors_only``, else the patterns themselves ([]: every mutant); None: nothing to run."""
    if not survivors_only:
        return list(only or [])
    names = survivors(codes, equivalent)
    if only:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in only)]
    return names or None


def unchecked(codes: dict[str, int | None], only: list[str] | None) -> list[str]:
    """The mutants mutmut made but has not tested (matching ``only``): after a run of the
    survivors, those of functions changed since the last run, which it renamed anew."""
    names = sorted(m for m, c in codes.items() if c is None)
    if only:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in only)]
    return names


def _mutmut(name: str, folder: Path, mutants: list[str], jobs: int) -> None:
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *mutants]
    path = os.pathsep.join([str(MYPY.parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PATH": path}
    if DSL_SPEC.is_dir():
        env.setdefault("GHAPPLETS_DSL_SPEC", str(DSL_SPEC))
    with subprocess.Popen(command, cwd=folder, env=env) as mutmut:
        with reaping(keep={mutmut.pid}) as reaper:
            returncode = mutmut.wait()
    if reaper.killed:
        print(f"==> {name}: ended {reaper.killed} processes killed mutants left", flush=True)
    if returncode != 0:
        sys.exit(f"mutmut failed in {folder} (exit {returncode})")


def run_group(name: str, args: argparse.Namespace) -> list[Score]:
    folder = prepare(name, GROUPS[name])
    chosen = choose(results(folder), equivalents(), survivors_only=args.survivors, only=args.only)
    if chosen is None:
        print(f"==> {name}: no surviving mutant", flush=True)
        return score(results(folder), equivalents(), measured_at(folder))
    print(f"==> mutating {name} in {folder.relative_to(ROOT)}", flush=True)
    _mutmut(name, folder, chosen, args.jobs)
    fresh = unchecked(results(folder), args.only) if args.survivors else []
    if fresh:
        print(f"==> {name}: {len(fresh)} mutants of changed functions, not tested yet", flush=True)
        _mutmut(name, folder, fresh, args.jobs)
    return score(results(folder), equivalents(), measured_at(folder))


def table(scores: list[Score]) -> str:
    head = (
        "| module | mutants | killed | caught by mypy | survived | no test | equivalent | score "
        "| measured at |"
    )
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in scores:
        rows.append(
            f"| `{s.module}` | {s.total} | {s.killed + s.timeout} | {s.typed} | {s.survived} "
            f"| {s.no_tests} | {s.equivalent} | {s.ratio:.0%} | `{s.commit}` |"
        )
    return "\n".join(rows)


ROW = re.compile(
    # (rows measured before mypy took part have no "caught by mypy" column)
    r"^\| `(?P<module>[\w.]+)` \| (?P<total>\d+) \| (?P<killed>\d+) (?:\| (?P<typed>\d+) )?"
    r"\| (?P<survived>\d+) "
    r"\| (?P<no_tests>\d+) \| (?P<equivalent>\d+) \| \d+% \| `(?P<commit>[^`]*)` \|$",
    re.MULTILINE,
)


def recorded(text: str) -> dict[str, Score]:
    """The rows of a score table written before, by module."""
    rows: dict[str, Score] = {}
    for m in ROW.finditer(text):
        numbers = {
            k: int(v or 0) for k, v in m.groupdict().items() if k not in ("module", "commit")
        }
        rows[m["module"]] = Score(m["module"], commit=m["commit"], **numbers)
    return rows


def write_docs(scores: list[Score], equivalent: dict[str, str]) -> None:
    """Put ``scores`` into docs/testing.md; rows of modules not measured now are kept as they
    were, each with the commit it was measured at."""
    text = DOCS.read_text()
    start, end = text.index(DOCS_BEGIN), text.index(DOCS_END) + len(DOCS_END)
    rows = recorded(text[start:end]) | {s.module: s for s in scores}
    merged = sorted(rows.values(), key=lambda s: s.module)
    total = Counter[str]()
    for s in merged:
        total.update(
            {
                "total": s.total,
                "killed": s.killed + s.timeout,
                "typed": s.typed,
                "equivalent": s.equivalent,
            }
        )
    overall = (total["killed"] + total["typed"]) / max(1, total["total"] - total["equivalent"])
    block = [
        DOCS_BEGIN,
        f"Over all modules: {total['killed']} of {total['total']} mutants killed by the tests, "
        f"{total['typed']} caught by mypy, {total['equivalent']} equivalent, score "
        f"{overall:.0%}. Each row gives the commit its mutants were made from (`+changes`: with "
        "changes not yet committed).",
        "",
        table(merged),
        "",
        "Equivalent mutants (they change nothing observable; `tests/equivalent_mutants.toml`):",
        "",
        *(f"- `{name}`: {reason}" for name, reason in sorted(equivalent.items())),
        DOCS_END,
    ]
    DOCS.write_text(text[:start] + "\n".join(block) + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "groups", nargs="*", metavar="GROUP", help=f"among {', '.join(GROUPS)} (default: all)"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--survivors", action="store_true", help="test again the mutants that survived the last run"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="GLOB",
        help="only the mutants whose names match (repeatable), e.g. 'ghapplets.dispatch.worker.*'",
    )
    parser.add_argument("--report", action="store_true", help="only print the last scores")
    parser.add_argument("--list", action="store_true", help="also list the surviving mutants")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="put the scores of all groups into docs/testing.md",
    )
    args = parser.parse_args(argv)
    names = args.groups or list(GROUPS)
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        parser.error(f"unknown group {', '.join(unknown)}: choose among {', '.join(GROUPS)}")
    if not args.report:
        become_subreaper()  # a killed mutant's test leaves its processes to this one to end
    equivalent = equivalents()
    scores: list[Score] = []
    left: list[str] = []
    for name in names:
        folder = WORK / name
        if args.report:
            codes = results(folder)
            scores += score(codes, equivalent, measured_at(folder))
        else:
            scores += run_group(name, args)
            codes = results(folder)
        left += survivors(codes, equivalent)
    print(table(scores))
    if args.list:
        print("\n".join(left))
    known = {m for name in names for m in results(WORK / name)}
    stale = sorted(set(equivalent) - known) if set(names) == set(GROUPS) else []
    if stale:
        print("listed as equivalent but no longer a mutant:", *stale, sep="\n  ")
    if args.write_docs:
        write_docs(scores, equivalent)
    low = [s.module for s in scores if s.ratio < TARGET]
    if low:
        print(f"below {TARGET:.0%}: {', '.join(low)}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
