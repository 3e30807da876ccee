"""JSON as a tree the page folds with ``<details>`` elements, bounded: past :data:`BUDGET`
nodes the rest is summarised, so a 25 MiB payload does not make a page of millions of
elements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

BUDGET = 2000  # nodes of one tree, at most
TEXT_MAX = 2000  # characters of one string shown


@dataclass
class Fold:
    """One value: ``kind`` object, array, or scalar (``text`` its JSON); ``children`` the
    entries of an object or array, by key or index; ``hidden`` how many were left out."""

    kind: str
    text: str = ""
    children: list[tuple[str, Fold]] = field(default_factory=list)
    hidden: int = 0

    @property
    def size(self) -> int:
        return len(self.children) + self.hidden


def fold(value: Any, budget: int = BUDGET) -> Fold:
    left = [budget]
    return _fold(value, left)


def _fold(value: Any, left: list[int]) -> Fold:
    left[0] -= 1
    if isinstance(value, dict):
        node = Fold("object")
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        node = Fold("array")
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        if len(text) > TEXT_MAX:
            text = text[:TEXT_MAX] + f"… ({len(text) - TEXT_MAX} more characters)"
        return Fold("scalar", text)
    for i, (key, child) in enumerate(items):
        if left[0] <= 0:
            node.hidden = len(items) - i
            break
        node.children.append((key, _fold(child, left)))
    return node
