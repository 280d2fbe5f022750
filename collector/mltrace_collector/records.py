"""Record-level lineage queries: trace one record ID, and record-level upstream run sets.

A record (e.g. one prediction) resolves to the run(s) that declared it and the output
artifact it belongs to; its upstream is that run's normal lineage. When the run declared
``sources``, the record's source record resolves the same way, one more hop up, and
:func:`record_lineage` keeps only the input artifact the source came from among the run's
record-indexed inputs: a prediction made from feature row 17 is not blamed on the
featurize runs that produced the other feature rows.

Example::

    q = LineageQueries(store)
    trace_record(q, "pred-000042")        # graph with "records", rooted at the record
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mltrace_collector.model import split_artifact_id
from mltrace_collector.store.base import Row
from mltrace_collector.store.extras import has_records, record_sets_of
from mltrace_collector.store.graph_reads import producers_for, run_artifacts, run_summaries

if TYPE_CHECKING:
    from mltrace_collector.queries import LineageQueries

MAX_SOURCE_HOPS = 100


def is_record(q: LineageQueries, ident: str) -> bool:
    return bool(record_sets_of(q.store, ident))


def _merge(graph: dict[str, Any], other: dict[str, Any]) -> None:
    graph["runs"].update(other["runs"])
    for aid, art in other["artifacts"].items():
        mine = graph["artifacts"].setdefault(aid, art)
        mine["raw"] = mine["raw"] and art["raw"]
    seen = {(e["source"], e["target"], e["relation"]) for e in graph["edges"]}
    for e in other["edges"]:
        if (e["source"], e["target"], e["relation"]) not in seen:
            graph["edges"].append(e)
            seen.add((e["source"], e["target"], e["relation"]))
    graph["truncated"] = graph["truncated"] or other["truncated"]


def _edge(graph: dict[str, Any], source: str, target: str, relation: str) -> None:
    edge = {"source": source, "target": target, "relation": relation}
    if edge not in graph["edges"]:
        graph["edges"].append(edge)


def trace_record(q: LineageQueries, record_id: str, depth: int) -> dict[str, Any]:
    """Upstream graph of one record: record -> output artifact -> producing run -> … ;
    with sources, source records (relation ``source``) and their producers too."""
    graph: dict[str, Any] = {
        "root": {"kind": "record", "id": record_id},
        "direction": "upstream",
        "runs": {},
        "artifacts": {},
        "records": {},
        "edges": [],
        "truncated": False,
    }
    pending, hops = [record_id], 0
    traced: set[str] = set()  # a run's upstream is merged once, however many sets name it
    while pending:
        if hops > min(depth, MAX_SOURCE_HOPS):
            graph["truncated"] = True
            break
        next_ids: list[str] = []
        for rid in pending:
            if rid in graph["records"]:
                continue
            sets = record_sets_of(q.store, rid)
            sources = sorted({s["source_record_id"] for s in sets if s["source_record_id"]})
            graph["records"][rid] = {
                "id": rid,
                "produced_by": sorted({s["run_id"] for s in sets}),
                "outputs": sorted({s["output_artifact_id"] for s in sets}),
                "sources": sources,
            }
            for s in sets:
                aid, run_id = s["output_artifact_id"], s["run_id"]
                uri, version = split_artifact_id(aid)
                graph["artifacts"].setdefault(
                    aid, {"id": aid, "uri": uri, "version": version, "raw": False}
                )["raw"] = False
                _edge(graph, aid, rid, "record")
                _edge(graph, run_id, aid, "output")
                if run_id not in traced:
                    traced.add(run_id)
                    row = run_summaries(q.store, [run_id]).get(run_id)
                    if row is not None:
                        _merge(graph, q.trace_run(row, depth))
            for src in sources:
                _edge(graph, src, rid, "source")
                next_ids.append(src)
        pending, hops = next_ids, hops + 1
    for src in list(graph["records"]):  # a source that was never declared as a record
        for s in graph["records"][src]["sources"]:
            graph["records"].setdefault(
                s, {"id": s, "produced_by": [], "outputs": [], "sources": []}
            )
    graph["root"]["id"] = record_id
    return graph


class LineageCache:
    """Memoized upstream run closures (run ID -> set of run IDs, summaries kept aside).

    ``runs`` holds lean run rows (``graph_reads.SUMMARY_COLUMNS``) or full ones."""

    def __init__(self, q: LineageQueries) -> None:
        self.q = q
        self.runs: dict[str, Row] = {}
        self._closure: dict[str, frozenset[str]] = {}
        self._indexed: dict[str, bool] = {}

    def row(self, run_id: str) -> Row | None:
        if run_id not in self.runs:
            row = run_summaries(self.q.store, [run_id]).get(run_id)
            if row is None:
                return None
            self.runs[run_id] = row
        return self.runs[run_id]

    def record_indexed(self, artifact_id: str) -> bool:
        if artifact_id not in self._indexed:
            self._indexed[artifact_id] = has_records(self.q.store, artifact_id)
        return self._indexed[artifact_id]

    def upstream(self, run_id: str, skip_inputs: frozenset[str] = frozenset()) -> frozenset[str]:
        """``run_id`` and every run upstream of it (artifact level), minus ``skip_inputs``."""
        if not skip_inputs and run_id in self._closure:
            return self._closure[run_id]
        result: set[str] = set()
        stack: list[tuple[str, frozenset[str]]] = [(run_id, skip_inputs)]
        while stack:
            current, skip = stack.pop()
            if current in result:
                continue
            if not skip and current in self._closure and current != run_id:
                result |= self._closure[current]
                continue
            row = self.row(current)
            if row is None:
                continue
            result.add(current)
            inputs = [
                a for a in run_artifacts(self.q.store, [current], "in")[current] if a not in skip
            ]
            found = producers_for(self.q.store, ((a, row["start_ns"]) for a in inputs))
            for aid in inputs:
                producer = found[(aid, row["start_ns"])]
                if producer is not None:
                    self.runs.setdefault(producer["run_id"], producer)
                    stack.append((producer["run_id"], frozenset()))
        closure = frozenset(result)
        if not skip_inputs:
            self._closure[run_id] = closure
        return closure

    def record_lineage(
        self, run_id: str, output: str, source_run: str | None, source_output: str | None
    ) -> frozenset[str]:
        """Runs upstream of a record of ``output`` made by ``run_id`` from a source record
        produced by ``source_run`` into ``source_output`` (None: no indexed source)."""
        if source_run is None or source_output is None:
            return self.upstream(run_id)
        row = self.row(run_id)
        inputs = [] if row is None else self.q.store.run_io(run_id)
        skip = frozenset(
            io["artifact_id"]
            for io in inputs
            if io["direction"] == "in"
            and io["artifact_id"] != source_output
            and self.record_indexed(io["artifact_id"])
        )
        return self.upstream(run_id, skip) | self.upstream(source_run)
