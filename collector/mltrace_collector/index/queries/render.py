"""Rendering of query results: readable trees and tables (rich), JSON, Graphviz dot, Mermaid.

Renderers take the JSON-able structures of ``queries`` so that local and remote CLI
queries print identically.

Example::

    print(to_mermaid(LineageQueries(store).trace(artifact)))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from mltrace_collector.index.queries.jsonsafe import finite_or_text

FORMATS = ("tree", "json", "dot", "mermaid")


def short(ident: str, keep: int = 12) -> str:
    """Artifact IDs are long: keep the URI and the first characters of the digest."""
    head, sep, digest = ident.rpartition("@")
    if sep and ":" in digest:
        algo, _, hexpart = digest.partition(":")
        return f"{head}@{algo}:{hexpart[:keep]}"
    return ident


def _run_label(run: dict[str, Any]) -> str:
    status = run["status"]
    color = {"ok": "green", "error": "red"}.get(status, "yellow")
    rev = (run.get("code_revision") or "")[:10] or "no-rev"
    return (
        f"[bold]run[/bold] [cyan]{escape(run['component'])}[/cyan] {escape(run['run_id'])}  "
        f"{(run.get('start') or '')[:23]}  [{color}]{status}[/{color}]  "
        f"{run['duration_s']:.2f}s  rev {rev}"
    )


def _artifact_label(artifact: dict[str, Any]) -> str:
    raw = "  [magenta](raw)[/magenta]" if artifact.get("raw") else ""
    return f"[bold]artifact[/bold] {escape(short(artifact['id']))}{raw}"


def lineage_tree(graph: dict[str, Any]) -> Tree:
    """A rich ``Tree`` walking the graph from its root (upstream or downstream)."""
    upstream = graph["direction"] == "upstream"
    children: dict[str, list[str]] = {}
    for edge in graph["edges"]:
        parent, child = (
            (edge["target"], edge["source"]) if upstream else (edge["source"], edge["target"])
        )
        children.setdefault(parent, []).append(child)
    runs, artifacts = graph["runs"], graph["artifacts"]

    def label(node: str) -> str:
        if node in runs:
            return _run_label(runs[node])
        if node in graph.get("records", {}):
            return f"[bold]record[/bold] {escape(node)}"
        return _artifact_label(artifacts.get(node, {"id": node}))

    root_id = graph["root"]["id"]
    resolved = graph.get("resolved")
    root: Any = Text.from_markup(label(root_id))
    if resolved:  # wrapped, not cut at the console's width: the note may name long paths
        note = Text(resolved["note"], style="yellow", no_wrap=False, overflow="fold")
        root = Group(root, note)
    tree = Tree(root)
    expanded: set[str] = set()

    def grow(branch: Tree, node: str, path: set[str]) -> None:
        for child in sorted(children.get(node, [])):
            if child in path:
                branch.add(label(child) + "  [dim](cycle)[/dim]")
            elif child in expanded and children.get(child):
                branch.add(label(child) + "  [dim](shown above)[/dim]")
            else:
                expanded.add(child)
                grow(branch.add(label(child)), child, path | {child})

    grow(tree, root_id, {root_id})
    if graph.get("truncated"):
        tree.add("[dim]… depth limit reached[/dim]")
    return tree


def _dot_label(text: str) -> str:
    """A dot string: quotes and backslashes escaped, each line break as dot's ``\\n``.

    ``json.dumps`` is not dot: it escapes a newline as a literal backslash-n *and* the
    backslash of an already escaped one, which Graphviz draws as the text ``\\n``.
    """
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{body}"'


def to_dot(graph: dict[str, Any]) -> str:
    """Graphviz dot: runs as boxes, artifacts as ellipses (raw ones shaded)."""
    lines = ["digraph lineage {", "  rankdir=LR;"]
    ids: dict[str, str] = {}

    def node(key: str) -> str:
        return ids.setdefault(key, f"n{len(ids)}")

    for run_id, run in graph["runs"].items():
        text = f"{run['component']}\n{run_id[:13]}\n{run['status']}"
        lines.append(f"  {node(run_id)} [shape=box, label={_dot_label(text)}];")
    for aid, art in graph["artifacts"].items():
        style = ", style=filled, fillcolor=lightgrey" if art.get("raw") else ""
        lines.append(f"  {node(aid)} [shape=ellipse, label={_dot_label(short(aid))}{style}];")
    for e in graph["edges"]:
        lines.append(f"  {node(e['source'])} -> {node(e['target'])};")
    lines.append("}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", " ")


def to_mermaid(graph: dict[str, Any]) -> str:
    """A Mermaid flowchart (renders in GitHub/GitLab markdown and Grafana text panels)."""
    lines = ["flowchart LR"]
    ids: dict[str, str] = {}

    def node(key: str) -> str:
        return ids.setdefault(key, f"n{len(ids)}")

    for run_id, run in graph["runs"].items():
        lines.append(f'  {node(run_id)}["{_mermaid_text(run["component"] + " " + run_id[:13])}"]')
    for aid in graph["artifacts"]:
        lines.append(f'  {node(aid)}(["{_mermaid_text(short(aid))}"])')
    for e in graph["edges"]:
        lines.append(f"  {node(e['source'])} --> {node(e['target'])}")
    return "\n".join(lines)


def versions_table(resolved: dict[str, Any]) -> Table:
    """Every version the index holds for the location asked about (``--all-versions``)."""
    table = Table(title=f"versions of {resolved['asked']}")
    for col in ("artifact_id", "first_seen", "chosen"):
        table.add_column(col)
    for v in resolved["versions"]:
        chosen = "<- shown" if v["artifact_id"] == resolved["chosen"] else ""
        table.add_row(Text(v["artifact_id"]), v["first_seen"], chosen)
    return table


def runs_table(title: str, runs: Sequence[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("run_id", "component", "start", "status", "duration", "revision"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            *map(
                Text,
                (
                    r["run_id"],
                    r["component"],
                    (r.get("start") or "")[:23],
                    r["status"],
                    f"{r['duration_s']:.2f}s",
                    (r.get("code_revision") or "")[:10],
                ),
            )
        )
    return table


def rows_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for r in rows:
        # Text, not markup: a reason like "check 'range[proba]' failed" kept its brackets
        table.add_row(*(Text("" if r.get(c) is None else str(r.get(c))) for c in columns))
    return table


def emit(console: Console, value: Any, fmt: str, renderable: Any = None) -> None:
    """Print ``value`` as JSON, dot or mermaid, or ``renderable`` (tree/table) by default."""
    if fmt == "json":
        text = json.dumps(finite_or_text(value), indent=2, default=str, allow_nan=False)
        console.file.write(text + "\n")
    elif fmt == "dot":
        console.print(to_dot(value), markup=False, highlight=False)
    elif fmt == "mermaid":
        console.print(to_mermaid(value), markup=False, highlight=False)
    else:
        console.print(renderable if renderable is not None else value)
