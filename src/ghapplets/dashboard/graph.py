"""A blueprint drawn as a graph: its top-level tasks as boxes, one under the other in the
order of its ``do`` list (a column reads on a phone as well as on a laptop), each with its
status in this run; arrows for the flow: on to the next task, and, on the right, the jumps a
task's ``then`` or a switch's cases take to a named task (or to the end)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KINDS = (
    "call", "do", "emit", "for", "fork", "listen", "raise", "run", "set", "switch", "try", "wait",
)  # fmt: skip
BOX_W = 260
BOX_H = 48
GAP = 28
LEFT = 16
JUMP_SPACING = 14
NOT_RUN = "not run"


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    status: str  # a task status (completed, running, faulted...), waiting, or "not run"
    x: int
    y: int
    width: int = BOX_W
    height: int = BOX_H


@dataclass(frozen=True)
class Edge:
    d: str  # the SVG path
    label: str  # what it is, for the reader ("then: end", "case approved")
    jump: bool


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: int = LEFT * 2 + BOX_W
    height: int = GAP

    @property
    def summary(self) -> str:
        """The graph in words (the SVG's description)."""
        return "; ".join(f"{n.name} ({n.kind}): {n.status}" for n in self.nodes) or "no tasks"


def kind_of(task: Mapping[str, Any]) -> str:
    for kind in KINDS:
        if kind in task:
            return kind
    return "task"


def task_status(index: int, name: str, steps: Sequence[Mapping[str, Any]], waiting: bool) -> str:
    """The status of the top-level task ``index`` (named ``name``) in a run's journal: its own
    latest step's, else "running" when a task inside it has started, else "not run"."""
    ref = f"/do/{index}/{name}"
    own = [s for s in steps if s.get("reference") == ref]
    inside = [s for s in steps if str(s.get("reference", "")).startswith(ref + "/")]
    if own:
        latest = max(own, key=lambda s: float(s.get("started_at") or 0))
        status = str(latest.get("status", NOT_RUN))
        return "waiting" if waiting and status == "running" else status
    if inside:
        return "waiting" if waiting else "running"
    return NOT_RUN


def _targets(task: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The named tasks (or end/exit) a task may jump to, with what takes it there."""
    found: list[tuple[str, str]] = []
    then = task.get("then")
    if isinstance(then, str) and then != "continue":
        found.append((then, f"then: {then}"))
    cases = task.get("switch")
    if isinstance(cases, list):
        for case in cases:
            if isinstance(case, Mapping):
                for case_name, body in case.items():
                    target = body.get("then") if isinstance(body, Mapping) else None
                    if isinstance(target, str) and target != "continue":
                        found.append((target, f"case {case_name}: {target}"))
    return found


def layout(
    definition: Mapping[str, Any], steps: Sequence[Mapping[str, Any]], *, waiting: bool = False
) -> Graph:
    """The graph of ``definition``'s top-level tasks with their status among ``steps``."""
    graph = Graph()
    entries = definition.get("do")
    tasks: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, Mapping):
                tasks.extend(
                    (str(n), t if isinstance(t, Mapping) else {}) for n, t in entry.items()
                )
    y = GAP
    place: dict[str, Node] = {}
    for index, (name, task) in enumerate(tasks):
        node = Node(name, kind_of(task), task_status(index, name, steps, waiting), LEFT, y)
        graph.nodes.append(node)
        place[name] = node
        y += BOX_H + GAP
    end_y = y  # where a jump to the end arrives: below the last box
    graph.height = end_y - GAP // 2
    mid = LEFT + BOX_W // 2
    for index, (_name, task) in enumerate(tasks):
        node = graph.nodes[index]
        jumps = _targets(task)
        plain_then = task.get("then") in (None, "continue")
        if index + 1 < len(tasks) and plain_then and not isinstance(task.get("switch"), list):
            graph.edges.append(
                Edge(f"M{mid},{node.y + BOX_H} V{node.y + BOX_H + GAP - 4}", "next", False)
            )
        for lane, (target, label) in enumerate(jumps, start=1):
            to = place.get(target)
            target_y = end_y if to is None else to.y + BOX_H // 2
            out_x = LEFT + BOX_W
            lane_x = out_x + lane * JUMP_SPACING + 6
            from_y = node.y + BOX_H // 2
            d = f"M{out_x},{from_y} H{lane_x} V{target_y} H{out_x + 4}"
            graph.edges.append(Edge(d, label, True))
            graph.width = max(graph.width, lane_x + LEFT)
            if to is None:
                graph.height = end_y + GAP // 2
    return graph
