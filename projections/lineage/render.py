"""The lineage graph as a picture: Graphviz DOT and Mermaid flowchart text.

Why text formats: auditors paste them into a report or a Markdown page and any renderer
draws them; both are built from the same nodes and edges as the JSON answer. Each node is
labelled with its kind and its ids in every system, each edge with its relation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def label_lines(node: Mapping[str, Any]) -> list[str]:
    lines = [f"{node['kind']} {node['id']}"]
    lines += [f"{i['system']} {i['type']}: {i['id']}" for i in node["ids"]]
    return lines


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def dot(nodes: Sequence[Mapping[str, Any]], edges: Sequence[Mapping[str, Any]]) -> str:
    out = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box];"]
    for node in nodes:
        label = "\\n".join(_dot_quote(line)[1:-1] for line in label_lines(node))
        out.append(f'  {_dot_quote(str(node["id"]))} [label="{label}"];')
    for edge in edges:
        parent, child = _dot_quote(str(edge["parent_id"])), _dot_quote(str(edge["child_id"]))
        out.append(f"  {parent} -> {child} [label={_dot_quote(edge['relation'])}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    """Mermaid has no backslash escapes: quotes and markup become entity codes."""
    for raw, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return text.replace("\n", " ")


def mermaid(nodes: Sequence[Mapping[str, Any]], edges: Sequence[Mapping[str, Any]]) -> str:
    """Nodes are named n0, n1 ... (Mermaid ids must be plain words), labelled with ids."""
    names = {str(node["id"]): f"n{i}" for i, node in enumerate(nodes)}
    out = ["flowchart LR"]
    for node in nodes:
        label = "<br/>".join(_mermaid_text(line) for line in label_lines(node))
        out.append(f'  {names[str(node["id"])]}["{label}"]')
    for edge in edges:
        parent, child = names[str(edge["parent_id"])], names[str(edge["child_id"])]
        out.append(f"  {parent} -->|{_mermaid_text(edge['relation'])}| {child}")
    return "\n".join(out) + "\n"
