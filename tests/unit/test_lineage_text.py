"""The lineage graph as DOT and Mermaid: a source's id with quotes, backslashes, line breaks
or markup stays inside its label."""

from __future__ import annotations

from adapters.projections.lineage_graph import Graph
from api.lineage_text import dot, mermaid

HOSTILE = 'a"] -> evil\\\n<b>x</b>'


def graph() -> Graph:
    order, payment = ("order", "o-1"), ("payment", "p-1")
    found = Graph(order)
    found.nodes[order] = [{"system": "erp", "id": HOSTILE}, {"system": "concord", "id": "o-1"}]
    found.nodes[payment] = []
    found.edges.append(
        {
            "from_kind": "order",
            "from_id": "o-1",
            "to_kind": "payment",
            "to_id": "p-1",
            "event_id": "e",
        }
    )
    return found


def test_dot_keeps_each_label_one_quoted_string() -> None:
    lines = dot(graph()).splitlines()
    assert lines == [
        "digraph lineage {",
        "  rankdir=LR;",
        '  n0 [label="order o-1\\nerp: a\'] -> evil/ <b>x</b>"];',
        '  n1 [label="payment p-1"];',
        "  n0 -> n1;",
        "}",
    ]


def test_mermaid_escapes_markup_and_quotes() -> None:
    assert mermaid(graph()).splitlines() == [
        "flowchart LR",
        '  n0["order o-1<br/>erp: a\'] -#gt; evil/ #lt;b#gt;x#lt;/b#gt;"]',
        '  n1["payment p-1"]',
        "  n0 --> n1",
    ]
