"""Import layering of otel_mltrace/ and collector/mltrace_collector/ (issue 14).

Every ``import`` of every module is read with ``ast`` -- module-level, function-level and
``if TYPE_CHECKING:`` imports alike -- and checked against the layers below
(ARCHITECTURE.md explains them). The test fails on an import cycle, on an arrow a layer
may not draw, on a module no layer claims, and on an allowlist entry that no longer occurs:
the allowlists of known violations can only shrink.

Run: ``.venv/bin/python -m pytest tests/test_layering.py -q``
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "otel_mltrace": ROOT / "otel_mltrace",
    "mltrace_collector": ROOT / "collector" / "mltrace_collector",
}

# Layers, lowest first: name -> (module patterns, layers its modules may import).
# A module belongs to the first layer with a matching pattern.
LAYERS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    # The wire contract: attribute names, settings, summary encodings both sides share.
    "contract": (
        (
            "otel_mltrace.semconv",
            "otel_mltrace.config",
            "otel_mltrace._version",
            "otel_mltrace.extras",
            "otel_mltrace.sketch",
            "otel_mltrace.distributions",
            "otel_mltrace.output_summary",
            "otel_mltrace.drift",
            "otel_mltrace.metricdefs",
            "otel_mltrace.metric_series",
            "otel_mltrace.artifact_ids",
            "otel_mltrace.check_outcome",
        ),
        frozenset({"contract"}),
    ),
    # The SDK: runs, artifacts, checks, summaries, delivery. Imports nothing of the index.
    "sdk": (
        (
            "otel_mltrace",
            "otel_mltrace._hooks",
            "otel_mltrace._ids",
            "otel_mltrace._outputs",
            "otel_mltrace._statcache",
            "otel_mltrace._validate",
            "otel_mltrace.artifacts",
            "otel_mltrace.check_data",
            "otel_mltrace.checks",
            "otel_mltrace.delivery",
            "otel_mltrace.delivery_processor",
            "otel_mltrace.delivery_outcomes",
            "otel_mltrace.request_split",
            "otel_mltrace.flags",
            "otel_mltrace.plugins",
            "otel_mltrace.lifecycle",
            "otel_mltrace.metrics",
            "otel_mltrace.provider",
            "otel_mltrace.records",
            "otel_mltrace.run",
            "otel_mltrace.run_span",
            "otel_mltrace.component_decorator",
            "otel_mltrace.run_view",
            "otel_mltrace.sender",
            "otel_mltrace.otlp_transport",
            "otel_mltrace.spool",
        ),
        frozenset({"contract", "sdk"}),
    ),
    # The lineage index: model, decode of OTLP (C reader included), store backends,
    # lineage queries, rendering; embedded mode is the index run in-process.
    "index": (
        ("mltrace_collector", "mltrace_collector.index", "mltrace_collector.index.*"),
        frozenset({"contract", "index"}),
    ),
    # The service: receivers, ingest pipeline and workers, exporters, HTTP API.
    "service": (
        ("mltrace_collector.service", "mltrace_collector.service.*"),
        frozenset({"contract", "index", "service"}),
    ),
    # On top: the CLI and the Python front ends that reach a local index or a server.
    "front": (
        (
            "otel_mltrace.cli",
            "otel_mltrace.cli_*",
            "otel_mltrace.idents",
            "otel_mltrace.query",
            "otel_mltrace.query_results",
            "otel_mltrace.compare_view",
            "otel_mltrace.stale_view",
        ),
        frozenset({"contract", "sdk", "index", "service", "front"}),
    ),
}

# Known arrows a layer may not draw: (importer, imported) -> why it is still there.
# Only remove entries; the test fails when one no longer occurs.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

# Known import cycles (strongly connected modules) -> why. Only shrink or remove them.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg, root in PACKAGES.items():
        for path in sorted([*root.rglob("*.py"), *root.rglob("*.pyi")]):
            parts = [pkg, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods.setdefault(".".join(parts), path)
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (every import statement, wherever it is)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        is_package = path.stem == "__init__"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_package else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                # "from pkg import submodule" imports the submodule
                targets = [
                    f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source
                    for a in node.names
                ]
            for target in targets:
                resolved = _resolve(target, mods)
                if resolved is not None and resolved != mod:
                    deps.add(resolved)
        graph[mod] = deps
    return graph


def layer_of(module: str) -> str | None:
    for name, (patterns, _) in LAYERS.items():
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return name
    return None


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _cycle_path(graph: dict[str, set[str]], members: frozenset[str]) -> str:
    """One concrete loop through the component, for a readable failure message."""
    start = min(members)
    seen = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return " -> ".join([*seen[node], start])
            if nxt not in seen:
                seen[nxt] = [*seen[node], nxt]
                queue.append(nxt)
    return ", ".join(sorted(members))


def test_every_module_has_a_layer() -> None:
    unclaimed = sorted(m for m in import_graph() if layer_of(m) is None)
    assert not unclaimed, f"add these modules to a layer in LAYERS: {unclaimed}"


def test_no_arrow_points_up_or_sideways() -> None:
    graph = import_graph()
    bad: set[tuple[str, str]] = set()
    for mod, deps in graph.items():
        own = layer_of(mod)
        if own is None:
            continue
        allowed = LAYERS[own][1]
        for dep in deps:
            theirs = layer_of(dep)
            if theirs is not None and theirs not in allowed:
                bad.add((mod, dep))
    new = sorted(bad - ALLOWED_UPWARD.keys())
    gone = sorted(ALLOWED_UPWARD.keys() - bad)
    messages = [
        f"{a} ({layer_of(a)}) imports {b} ({layer_of(b)}): {layer_of(a)} modules may only "
        f"import {sorted(LAYERS[layer_of(a) or ''][1])}"
        for a, b in new
    ]
    messages += [f"fixed, remove from ALLOWED_UPWARD: {a} -> {b}" for a, b in gone]
    assert not messages, "\n".join(messages)


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = set(cycles(graph))
    new = [c for c in found if c not in ALLOWED_CYCLES]
    gone = [c for c in ALLOWED_CYCLES if c not in found]
    messages = [
        f"import cycle: {_cycle_path(graph, c)} (all modules in it: {', '.join(sorted(c))})"
        for c in new
    ]
    messages += [f"no longer a cycle, update ALLOWED_CYCLES: {sorted(c)}" for c in gone]
    assert not messages, "\n".join(messages)


def test_the_checker_sees_what_it_must() -> None:
    """The graph reads function-level and TYPE_CHECKING imports, and finds a made-up cycle."""
    graph = import_graph()
    # run_starts imports the store's protocols only under TYPE_CHECKING, processor the C
    # reader only in a function
    assert (
        "mltrace_collector.index.store.cursor" in graph["mltrace_collector.index.store.run_starts"]
    )
    assert (
        "mltrace_collector.index.decode._otlp_fast"
        in graph["mltrace_collector.index.decode.processor"]
    )
    loop = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(loop) == [frozenset({"a", "b", "c"})]
    assert _cycle_path(loop, frozenset({"a", "b", "c"})) == "a -> b -> c -> a"


def test_run_time_arrows_are_declared() -> None:
    """What SDK functions reach above the SDK at run time (``otel_mltrace.plugins``) is
    declared once, as entry points in pyproject.toml equal to the defaults, and each target
    lies in a layer above the SDK (that is the point: the SDK's import graph stays clean)."""
    import tomllib

    from otel_mltrace import plugins

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["entry-points"][plugins.GROUP]
    assert declared == plugins.DEFAULTS
    for name, target in declared.items():
        assert layer_of(target.partition(":")[0]) in {"index", "service", "front"}, target
        assert callable(plugins.load(name)), name
