"""Record-level lineage queries: trace one record ID, and record-level upstream run sets.

A record (e.g. one prediction) resolves to the run(s) that declared it and the output
artifact it belongs to; its upstream is that run's normal lineage. When the run declared
``sources``, each source record resolves among the record sets of the run's inputs (record
IDs are scoped to the artifact version they were logged with, see ``record_scope``), one
more hop up, and ``LineageCache.record_lineage`` keeps only the input the source came from
among the run's record-indexed inputs: a prediction made from feature row 17 is not blamed
on the featurize runs that produced the other feature rows.

Example::

    q = LineageQueries(store)
    trace_record(q, "pred-000042")        # graph with "records", rooted at the record
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mltrace_collector.index.model import split_artifact_id
from mltrace_collector.index.queries.lineage_walk import iso
from mltrace_collector.index.queries.record_scope import (
    SetKey,
    indexed_inputs,
    resolve_sources,
    scoped_records,
)
from mltrace_collector.index.queries.render import short
from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.cursor import Row
from mltrace_collector.index.store.extras import record_sets_of, set_id
from mltrace_collector.index.store.graph_reads import producers_for, run_artifacts, run_summaries

if TYPE_CHECKING:
    from mltrace_collector.index.queries.query_host import QueryHost

MAX_SOURCE_HOPS = 100


def is_record(q: QueryHost, ident: str) -> bool:
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


def trace_record(q: QueryHost, record_id: str, depth: int) -> dict[str, Any]:
    """Upstream graph of one record: record -> output artifact -> producing run -> … ;
    with sources, source records (relation ``source``) and their producers too.

    A record ID alone means its newest occurrence (the set of the run that ended last);
    each source resolves among the record sets of what the run read
    (:mod:`mltrace_collector.index.queries.record_scope`), so a key kept across versions never mixes
    them. A node is keyed by the record ID, or ``"ID @ output"`` when the same ID occurs
    again further up (another version)."""
    graph: dict[str, Any] = {
        "root": {"kind": "record", "id": record_id},
        "direction": "upstream",
        "runs": {},
        "artifacts": {},
        "records": {},
        "edges": [],
        "truncated": False,
    }
    sets = record_sets_of(q.store, record_id)
    newest = sets[0]["run_id"] if sets else None
    root_keys = sorted(
        {(s["run_id"], s["output_artifact_id"]) for s in sets if s["run_id"] == newest}
    )
    node_of: dict[tuple[str, SetKey | None], str] = {}

    def node(rid: str, key: SetKey | None) -> str:
        if (rid, key) not in node_of:
            taken = set(node_of.values())
            names = (
                [rid, f"{rid} @ {key[1]}", f"{rid} @ {key[1]} by {key[0]}"]
                if key
                else [rid, f"{rid} (not in the inputs)"]
            )
            name = next((n for n in names if n not in taken), names[-1])
            node_of[(rid, key)] = name
        return node_of[(rid, key)]

    root_key = ("", "")  # the root is its own node, even if a source names its set again
    pending: list[tuple[str, list[SetKey], str]] = [
        (record_id, root_keys, node(record_id, root_key))
    ]
    hops = 0
    traced: set[str] = set()  # a run's upstream is merged once, however many sets name it
    while pending:
        if hops > min(depth, MAX_SOURCE_HOPS):
            graph["truncated"] = True
            break
        next_ids: list[tuple[str, list[SetKey], str]] = []
        for rid, keys, name in pending:
            if name in graph["records"]:
                continue
            entry = {"id": rid, "produced_by": [], "outputs": [], "sources": []}
            graph["records"][name] = entry
            for run_id, aid in keys:
                entry["produced_by"] = sorted({*entry["produced_by"], run_id})
                entry["outputs"] = sorted({*entry["outputs"], aid})
                uri, version = split_artifact_id(aid)
                graph["artifacts"].setdefault(
                    aid, {"id": aid, "uri": uri, "version": version, "raw": False}
                )["raw"] = False
                _edge(graph, aid, name, "record")
                _edge(graph, run_id, aid, "output")
                if run_id not in traced:
                    traced.add(run_id)
                    row = run_summaries(q.store, [run_id]).get(run_id)
                    if row is not None:
                        _merge(graph, q.trace_run(row, depth))
                srcs = record_sources(q.store, rid, (run_id, aid))
                for src, found in resolve_sources(q.store, run_id, srcs).items():
                    groups: list[tuple[SetKey | None, str]] = [(k, node(src, k)) for k in found]
                    if not groups:
                        groups = [(None, node(src, None))]
                    for k, src_name in groups:
                        entry["sources"] = sorted({*entry["sources"], src_name})
                        _edge(graph, src_name, name, "source")
                        next_ids.append((src, [k] if k else [], src_name))
        pending, hops = next_ids, hops + 1
    for name in list(graph["records"]):  # a source that was never declared as a record
        for s in graph["records"][name]["sources"]:
            graph["records"].setdefault(
                s, {"id": s, "produced_by": [], "outputs": [], "sources": []}
            )
    resolved = _occurrences(q.store, record_id, sets, root_keys)
    if resolved is not None:
        graph["resolved"] = resolved
    return graph


def _occurrences(
    store: Store, record_id: str, sets: list[Row], shown: list[SetKey]
) -> dict[str, Any] | None:
    """Which occurrence of a record ID kept across versions (``wine_id``) the trace shows,
    and the others, like a location's versions (``identify.Located.describe``); ``None``
    when it occurs once. Without it, ``trace wine-0005`` picked the newest of 15 record
    sets without a word."""
    keys = list(dict.fromkeys((s["run_id"], s["output_artifact_id"]) for s in sets))
    if len(keys) <= len(shown):
        return None
    runs = run_summaries(store, [run_id for run_id, _ in keys])

    def when(run_id: str) -> str | None:
        row = runs.get(run_id)
        return iso(row["end_ns"]) if row is not None else None

    run_id, output = shown[0]
    component = runs[run_id]["component"] if run_id in runs else "?"
    others = len(keys) - len(shown)
    return {
        "asked": record_id,
        "chosen": output,
        "note": (
            f"showing the newest occurrence of record {record_id}: in {short(output)} by "
            f"{component} run {run_id}; it occurs in {others} other record set(s) "
            "(--all-versions lists them)"
        ),
        "versions": [
            {"artifact_id": aid, "run_id": rid, "version": None, "first_seen": when(rid)}
            for rid, aid in keys
        ],
    }


def record_sources(store: Store, record_id: str, key: SetKey) -> list[str]:
    """Source record IDs declared for ``record_id`` in the set ``key``."""
    rows = store.query(
        "SELECT source_record_id FROM records WHERE record_id = ? AND set_id = ? "
        "AND source_record_id <> '' ORDER BY source_record_id",
        (record_id, set_id(*key)),
    )
    return [r["source_record_id"] for r in rows]


class LineageCache:
    """Memoized upstream run closures (run ID -> set of run IDs, summaries kept aside).

    ``runs`` holds lean run rows (``graph_reads.SUMMARY_COLUMNS``) or full ones."""

    def __init__(self, q: QueryHost) -> None:
        self.q = q
        self.runs: dict[str, Row] = {}
        self._closure: dict[str, frozenset[str]] = {}
        self._sets: dict[SetKey, dict[str, frozenset[str]]] = {}

    def row(self, run_id: str) -> Row | None:
        if run_id not in self.runs:
            row = run_summaries(self.q.store, [run_id]).get(run_id)
            if row is None:
                return None
            self.runs[run_id] = row
        return self.runs[run_id]

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
            found = producers_for(self.q.store, ((a, row["start_ns"], current) for a in inputs))
            for aid in inputs:
                producer = found[(aid, row["start_ns"], current)]
                if producer is not None:
                    self.runs.setdefault(producer["run_id"], producer)
                    stack.append((producer["run_id"], frozenset()))
        closure = frozenset(result)
        if not skip_inputs:
            self._closure[run_id] = closure
        return closure

    def set_lineages(self, key: SetKey) -> dict[str, frozenset[str]]:
        """Lineage (run IDs) of every record of the set ``key`` = (run, output).

        A record without a resolved source has its run's whole upstream. A record whose
        sources resolved has its run, the upstream through the run's inputs that hold no
        records, and — recursively — the lineage of each source record in its set: a
        prediction made from clean row 17, itself from raw row 17 of batch 3, is not
        blamed on the baseline batch the other clean rows came from."""
        if key in self._sets:
            return self._sets[key]
        self._sets[key] = {}  # a cycle (clock skew) ends here
        run_id = key[0]
        rows = list(scoped_records(self.q.store, run_id, key[1]))
        lineages: dict[str, frozenset[str]] = {}
        base: frozenset[str] | None = None
        for record_id, sources in rows:
            if not sources:
                lineages[record_id] = self.upstream(run_id)
                continue
            if base is None:
                base = self.upstream(run_id, frozenset(indexed_inputs(self.q.store, run_id)))
            found = set(base)
            for source_key, source_id in sources:
                upstream = self.set_lineages(source_key).get(source_id)
                found |= upstream if upstream is not None else self.upstream(source_key[0])
            lineages[record_id] = frozenset(found)
        self._sets[key] = lineages
        return lineages
