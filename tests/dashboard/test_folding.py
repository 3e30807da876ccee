"""Folded JSON keeps to its budget of values and of characters."""

from __future__ import annotations

from ghapplets.dashboard.folding import BUDGET, TEXT_MAX, fold


def test_folded_json_keeps_to_its_budget() -> None:
    tree = fold({"items": list(range(BUDGET * 3))})
    ((key, items),) = tree.children
    assert key == "items" and items.kind == "array"
    assert len(items.children) < BUDGET and items.hidden == BUDGET * 3 - len(items.children)
    long = fold("x" * (TEXT_MAX * 2))
    assert long.kind == "scalar" and len(long.text) < TEXT_MAX + 50
    assert fold({"a": [1, {"b": None}]}).children[0][1].children[1][1].children[0][1].text == "null"
