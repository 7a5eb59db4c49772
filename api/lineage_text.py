"""The lineage graph as text for diagram tools: Graphviz DOT and Mermaid flowcharts.

Node names are generated (``n0``, ``n1`` ...) and labels quoted, with quotes, backslashes and
line breaks replaced (and for Mermaid ``<``/``>`` as entities), so an external id (any text a
source sent) can never break out of the diagram syntax.
"""

from __future__ import annotations

from adapters.projections.lineage_graph import Graph, Node


def _names(graph: Graph) -> dict[Node, str]:
    return {node: f"n{i}" for i, node in enumerate(graph.nodes)}


def _safe(text: str) -> str:
    """No quote, backslash or line break of a source's id reaches the diagram."""
    return text.replace("\\", "/").replace('"', "'").replace("\n", " ").replace("\r", " ")


def _label(graph: Graph, node: Node) -> str:
    ids = [f"{i['system']}: {i['id']}" for i in graph.nodes[node] if i["system"] != "concord"]
    return "\\n".join(_safe(part) for part in [f"{node[0]} {node[1]}", *ids])


def dot(graph: Graph) -> str:
    names = _names(graph)
    lines = ["digraph lineage {", "  rankdir=LR;"]
    for node, name in names.items():
        lines.append(f'  {name} [label="{_label(graph, node)}"];')
    for edge in graph.edges:
        source = names[(edge["from_kind"], edge["from_id"])]
        target = names[(edge["to_kind"], edge["to_id"])]
        lines.append(f"  {source} -> {target};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def mermaid(graph: Graph) -> str:
    names = _names(graph)
    lines = ["flowchart LR"]
    for node, name in names.items():
        label = _label(graph, node).replace("<", "#lt;").replace(">", "#gt;")
        label = label.replace("\\n", "<br/>")
        lines.append(f'  {name}["{label}"]')
    for edge in graph.edges:
        source = names[(edge["from_kind"], edge["from_id"])]
        target = names[(edge["to_kind"], edge["to_id"])]
        lines.append(f"  {source} --> {target}")
    return "\n".join(lines) + "\n"
