"""Breadth-first lineage walks behind ``LineageQueries.trace`` and ``downstream``.

A walk goes one BFS level at a time and looks up the whole level at once (its runs'
inputs or outputs, their producers or consumers) through ``store.graph_reads``, with
lean run rows: a 100-deep chain costs a few queries per level and a 10,000-input fan-in
a few dozen chunked queries, not one query (and one JSON decode) per edge. Levels are
visited in the same order a one-edge-at-a-time BFS visits them, so depth limits,
first-seen levels and the stitching rules give the same graph.

Example::

    graph = Graph("artifact", aid, "upstream")
    walk_upstream(store, graph, [producer_row], level=1, depth=MAX_DEPTH)
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from mltrace_collector.index.store.cursor import Row
from mltrace_collector.index.store.cursor import StoreAccess as Store
from mltrace_collector.index.store.graph_reads import (
    consumers_many,
    downstream_outputs,
    inputs_with_producers,
    latest_producers_by_uri,
    pick_producer,
    producers_for,
    run_artifacts,
    split_id,
    upstream_closure,
)
from mltrace_collector.index.store.stitch_order import comes_before

PREFETCH_RUNS = 10_000
"""Most runs an upstream walk prefetches (with their inputs) before walking level by level."""
PREFETCH_MIN_LEVELS = 3
"""Prefetch only when the depth limit allows at least this many levels."""


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")


def run_summary(row: Row) -> dict[str, Any]:
    """The compact form of a run used in graphs, lists and tables."""
    return {
        "run_id": row["run_id"],
        "component": row["component"],
        "status": row["status"],
        "start": iso(row["start_ns"]),
        "end": iso(row["end_ns"]),
        "start_ns": row["start_ns"],
        "end_ns": row["end_ns"],
        "duration_s": round(max(0, row["end_ns"] - row["start_ns"]) / 1e9, 6),
        "code_revision": row.get("code_revision"),
        "service": row.get("service"),
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
    }


class Graph:
    """A lineage graph under construction: runs, artifacts and deduplicated edges."""

    def __init__(self, root_kind: str, root_id: str, direction: str) -> None:
        self.data: dict[str, Any] = {
            "root": {"kind": root_kind, "id": root_id},
            "direction": direction,
            "runs": {},
            "artifacts": {},
            "edges": [],
            "truncated": False,
        }
        self._edges: set[tuple[str, str, str]] = set()

    def run(self, row: Row) -> None:
        if row["run_id"] not in self.data["runs"]:
            self.data["runs"][row["run_id"]] = run_summary(row)

    def artifact(self, artifact_id: str, produced: bool) -> None:
        entry = self.data["artifacts"].get(artifact_id)
        if entry is None:
            uri, version = split_id(artifact_id)
            entry = {"id": artifact_id, "uri": uri, "version": version, "raw": True}
            self.data["artifacts"][artifact_id] = entry
        entry["raw"] = entry["raw"] and not produced

    def edge(self, source: str, target: str, relation: str) -> None:
        key = (source, target, relation)
        if key not in self._edges:
            self._edges.add(key)
            self.data["edges"].append({"source": source, "target": target, "relation": relation})


def walk_upstream(store: Store, graph: Graph, runs: list[Row], level: int, depth: int) -> None:
    """Add ``runs`` (all at ``level``) and everything upstream of them to ``graph``."""
    seen: set[str] = set()
    frontier: list[Row] = []
    for row in runs:
        graph.run(row)
        if row["run_id"] not in seen:
            seen.add(row["run_id"])
            frontier.append(row)
    inputs: dict[str, list[tuple[str, list[Row] | None]]] = {}
    if frontier and depth - level >= PREFETCH_MIN_LEVELS:
        reachable = upstream_closure(store, [r["run_id"] for r in frontier], PREFETCH_RUNS)
        inputs.update(inputs_with_producers(store, reachable))
    while frontier:
        missing = [r["run_id"] for r in frontier if r["run_id"] not in inputs]
        if missing:  # not prefetched: beyond the limit, or reached through an unversioned URI
            inputs.update(inputs_with_producers(store, missing))
        if level >= depth:
            if any(inputs[r["run_id"]] for r in frontier):
                graph.data["truncated"] = True
            return
        by_uri = latest_producers_by_uri(
            store,
            (
                (split_id(aid)[0], r["start_ns"], r["run_id"])
                for r in frontier
                for aid, candidates in inputs[r["run_id"]]
                if candidates is None
            ),
        )
        next_frontier: list[Row] = []
        for row in frontier:
            for aid, candidates in inputs[row["run_id"]]:
                if candidates is None:
                    producer = by_uri[(split_id(aid)[0], row["start_ns"], row["run_id"])]
                else:
                    producer = pick_producer(candidates, row["start_ns"], row["run_id"])
                graph.artifact(aid, producer is not None)
                graph.edge(aid, row["run_id"], "input")
                if producer is not None:
                    graph.edge(producer["run_id"], aid, "output")
                    graph.run(producer)
                    if producer["run_id"] not in seen:
                        seen.add(producer["run_id"])
                        next_frontier.append(producer)
        frontier, level = next_frontier, level + 1


class _Downstream:
    def __init__(self, store: Store, graph: Graph) -> None:
        self.store = store
        self.graph = graph
        self.seen_runs: set[str] = set()
        self.seen_artifacts: set[tuple[str, str | None]] = set()
        self.readers: dict[str, list[Row]] = {}  # artifact ID -> consumers_many rows
        self.starts: dict[str, int] = {}  # run ID -> start, of the runs expanded

    def consumers(self, artifact_ids: set[str]) -> dict[str, list[Row]]:
        missing = artifact_ids.difference(self.readers)
        if missing:
            self.readers.update(consumers_many(self.store, missing))
        return self.readers

    def prefetch(self, artifact_ids: set[str]) -> None:
        """Consumers of everything reachable by exact reads, in a few statements."""
        seeds = {row["run_id"] for rows in self.consumers(artifact_ids).values() for row in rows}
        if seeds:
            self.consumers(set(downstream_outputs(self.store, sorted(seeds), PREFETCH_RUNS)))

    def expand(self, rows: list[Row]) -> list[tuple[str, str | None]]:
        """Add runs; queue the outputs of those not expanded before."""
        fresh: list[str] = []
        for row in rows:
            self.graph.run(row)
            self.starts[row["run_id"]] = row["start_ns"]
            if row["run_id"] not in self.seen_runs:
                self.seen_runs.add(row["run_id"])
                fresh.append(row["run_id"])
        if not fresh:
            return []
        outputs = {row["run_id"]: row["outputs"] for row in rows if "outputs" in row}
        missing = [run_id for run_id in fresh if run_id not in outputs]
        if missing:
            outputs.update(run_artifacts(self.store, missing, "out"))
        queued: list[tuple[str, str | None]] = []
        for run_id in fresh:
            for aid in outputs[run_id]:
                self.graph.artifact(aid, True)
                self.graph.edge(run_id, aid, "output")
                queued.append((aid, run_id))
        return queued


def walk_downstream(
    store: Store,
    graph: Graph,
    root_kind: str,
    queued: list[tuple[str, str | None]],
    depth: int,
    root_run: Row | None = None,
) -> None:
    """Add everything derived from ``queued`` ``(artifact, producer run)`` pairs at level 0
    (or, with ``root_run``, from that run's outputs) to ``graph``."""
    walk = _Downstream(store, graph)
    if root_run is not None:
        queued = walk.expand([root_run])
    if queued and depth >= PREFETCH_MIN_LEVELS:
        walk.prefetch({aid for aid, _ in queued})
    level = 0
    while queued:
        todo: list[tuple[str, str | None, bool]] = []
        for aid, producer_id in queued:
            version = split_id(aid)[1]
            # Visit an output once per producer: its unversioned readers are matched to the
            # writer they stitched to, and two runs may write the same versioned ID.
            key = (aid, producer_id)
            if key in walk.seen_artifacts:
                continue
            walk.seen_artifacts.add(key)
            # the root is an unversioned URI: every reader of it, whoever wrote what they read
            any_reader = root_kind == "artifact" and level == 0 and version is None
            todo.append((aid, producer_id, any_reader))
        readers = walk.consumers({aid for aid, _, _ in todo})
        # read the URI unversioned: only a reader that got it from this producer counts
        check = {
            (c["read_as"], c["start_ns"], c["run_id"])
            for aid, _, any_reader in todo
            if not any_reader
            for c in readers[aid]
            if split_id(c["read_as"])[1] is None
        }
        got = producers_for(store, check) if check else {}
        expand: list[Row] = []
        for aid, producer_id, any_reader in todo:
            for consumer in readers[aid]:
                if consumer["run_id"] == producer_id:
                    continue  # a run that reads what it writes is not its own reader
                if split_id(consumer["read_as"])[1] is None:
                    if not any_reader:
                        read = (consumer["read_as"], consumer["start_ns"], consumer["run_id"])
                        source = got[read]
                        if (source["run_id"] if source else None) != producer_id:
                            continue
                elif producer_id in walk.starts and not comes_before(
                    walk.starts[producer_id], producer_id, consumer["start_ns"], consumer["run_id"]
                ):
                    continue  # read the same version before this run wrote it: not from it
                if level >= depth:
                    graph.data["truncated"] = True
                    continue
                graph.artifact(consumer["read_as"], producer_id is not None)
                graph.edge(consumer["read_as"], consumer["run_id"], "input")
                expand.append(consumer)
        queued = walk.expand(expand)
        level += 1
