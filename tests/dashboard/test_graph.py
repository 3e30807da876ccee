"""The blueprint graph's layout: a box per top-level task with its status in the run, the
flow's arrows and jumps, and definitions it cannot fully read."""

from __future__ import annotations

from typing import Any

import pytest

from ghapplets.dashboard import graph

NO = {"then": "end"}
DEFINITION = {
    "do": [
        {"check": {"switch": [{"ok": {"when": "${ .ok }", "then": "ship"}}, {"no": NO}]}},
        {"ask": {"listen": {"to": {"one": {"with": {"type": "x"}}}}}},
        {"ship": {"call": "http", "then": "end"}},
        {"never": {"set": {"a": 1}}},
    ]
}


def step(ref: str, status: str, at: float) -> dict[str, Any]:
    return {"reference": ref, "status": status, "started_at": at, "name": ref.split("/")[-1]}


def test_the_graph_has_a_box_per_task_with_its_status() -> None:
    steps = [
        step("/do/0/check", "completed", 1),
        step("/do/1/ask", "faulted", 2),
        step("/do/1/ask", "running", 3),  # its latest step counts
    ]
    drawn = graph.layout(DEFINITION, steps, waiting=True)
    assert [(n.name, n.kind, n.status) for n in drawn.nodes] == [
        ("check", "switch", "completed"),
        ("ask", "listen", "waiting"),
        ("ship", "call", "not run"),
        ("never", "set", "not run"),
    ]
    ys = [n.y for n in drawn.nodes]
    assert ys == sorted(ys) and len(set(ys)) == 4  # one under the other
    jumps = [e.label for e in drawn.edges if e.jump]
    assert jumps == ["case ok: ship", "case no: end", "then: end"]
    nexts = [e for e in drawn.edges if not e.jump]
    assert len(nexts) == 1  # ask -> ship; a switch and a then: end do not fall through
    assert "ask (listen): waiting" in drawn.summary
    assert drawn.width > graph.LEFT * 2 + graph.BOX_W  # room for the jump lanes
    last = drawn.nodes[-1]
    assert last.y + last.height < drawn.height  # room below for the jumps to the end
    plain = graph.layout({"do": [{"a": {"set": {}}}]}, [])
    (only,) = plain.nodes
    assert only.y + only.height < plain.height <= only.y + only.height + graph.GAP


def test_a_task_inside_a_task_marks_its_parent_running() -> None:
    nested = {"do": [{"outer": {"do": [{"inner": {"set": {}}}]}}]}
    drawn = graph.layout(nested, [step("/do/0/outer/do/0/inner", "completed", 1)])
    assert drawn.nodes[0].status == "running"


@pytest.mark.parametrize("definition", [{}, {"do": "no"}, {"do": [1, {"a": None}]}])
def test_a_strange_definition_draws_what_it_can(definition: dict[str, Any]) -> None:
    drawn = graph.layout(definition, [])
    assert all(n.status == "not run" for n in drawn.nodes)
