"""The Atlassian Document Format (ADF) as the Jira fake checks it (sans-I/O).

Jira Cloud's REST v3 takes rich text (an issue's ``description``, a comment's ``body``) only as
an ADF document: ``{"type": "doc", "version": 1, "content": [...]}`` whose nodes are objects
with a known ``type``, a ``content`` list when they have children, and a string ``text`` for
``text`` nodes. :func:`adf_problem` says what is wrong with a value, :func:`adf_to_text` gives
the plain text (what the fake answers on REST v2, where Jira renders wiki markup) and
:func:`text_to_adf` the document of a plain text (what v3 answers for text set through v2).
"""

from __future__ import annotations

from typing import Any

# the node types of the ADF schema (block, inline and child nodes)
NODE_TYPES = frozenset(
    {
        "blockCard",
        "blockquote",
        "bodiedExtension",
        "bulletList",
        "codeBlock",
        "date",
        "decisionItem",
        "decisionList",
        "embedCard",
        "emoji",
        "expand",
        "extension",
        "hardBreak",
        "heading",
        "inlineCard",
        "inlineExtension",
        "layoutColumn",
        "layoutSection",
        "listItem",
        "media",
        "mediaGroup",
        "mediaInline",
        "mediaSingle",
        "mention",
        "nestedExpand",
        "orderedList",
        "panel",
        "paragraph",
        "placeholder",
        "rule",
        "status",
        "table",
        "tableCell",
        "tableHeader",
        "tableRow",
        "taskItem",
        "taskList",
        "text",
    }
)
MAX_DEPTH = 50
_BLOCKS = frozenset({"paragraph", "heading", "codeBlock", "listItem", "blockquote", "tableRow"})


def adf_problem(value: Any) -> str | None:
    """Why ``value`` is not an ADF document, or ``None`` when it is one."""
    if not isinstance(value, dict):
        return "not an object"
    if value.get("type") != "doc":
        return "the root node's type is not 'doc'"
    if value.get("version") != 1:
        return "the document's version is not 1"
    content = value.get("content")
    if not isinstance(content, list):
        return "the document has no content list"
    return _nodes_problem(content, 1)


def _nodes_problem(nodes: list[Any], depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return "the document is nested too deeply"
    for node in nodes:
        if not isinstance(node, dict):
            return "a node is not an object"
        kind = node.get("type")
        if kind not in NODE_TYPES:
            return f"unknown node type {kind!r}"
        if kind == "text" and not (isinstance(node.get("text"), str) and node["text"]):
            return "a text node has no text"
        children = node.get("content")
        if children is not None:
            if not isinstance(children, list):
                return f"the content of a {kind} node is not a list"
            problem = _nodes_problem(children, depth + 1)
            if problem:
                return problem
    return None


def adf_to_text(doc: Any) -> str:
    """The text of a document: text nodes joined, one line per block (paragraph, heading...)."""
    lines: list[str] = []
    current: list[str] = []

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "text" and isinstance(node.get("text"), str):
            current.append(node["text"])
        elif kind == "hardBreak":
            current.append("\n")
        for child in node.get("content") or []:
            walk(child)
        if kind in _BLOCKS and current:
            lines.append("".join(current))
            current.clear()

    walk(doc)
    if current:
        lines.append("".join(current))
    return "\n".join(lines)


def text_to_adf(text: str) -> dict[str, Any]:
    """A document with one paragraph per line of ``text``."""
    paragraphs: list[dict[str, Any]] = []
    for line in text.split("\n"):
        node: dict[str, Any] = {"type": "paragraph", "content": []}
        if line:
            node["content"] = [{"type": "text", "text": line}]
        paragraphs.append(node)
    return {"type": "doc", "version": 1, "content": paragraphs}
