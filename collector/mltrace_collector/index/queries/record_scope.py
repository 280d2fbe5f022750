"""Record IDs are scoped to the artifact version they were logged with.

A record is the pair *(record ID, record set)*, a set being one (run, output artifact).
A source record named by a run resolves **only among the record sets of what that run
read**: for each input, the set of the producer the input stitches to (``trace``'s
rule) for the artifact that producer wrote. So a stable business key (``wine_id``) kept
through raw -> clean -> predictions across three data versions never mixes versions and
never forms a cycle: each hop goes to the version the run actually read.

Example::

    sets = input_sets(store, "run-42")           # {input ID as read: (producer run, output)}
    found = resolve_sources(store, "run-42", ["wine-0115"])   # {"wine-0115": [(run, out)]}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from mltrace_collector.index.store.extras import set_id
from mltrace_collector.index.store.graph_reads import (
    MAX_PARAMS,
    producers_for,
    run_artifacts,
    split_id,
)

if TYPE_CHECKING:
    from mltrace_collector.index.store.base import Store

SetKey = tuple[str, str]
"""(run ID, output artifact ID) of a record set."""


def input_sets(store: Store, run_id: str) -> dict[str, SetKey | None]:
    """For each input of ``run_id`` (as read): the (producer run, artifact ID it wrote)
    the input stitches to, or ``None`` for raw data."""
    rows = store.query("SELECT start_ns FROM runs WHERE run_id = ?", (run_id,))
    if not rows:
        return {}
    start = rows[0]["start_ns"]
    inputs = run_artifacts(store, [run_id], "in")[run_id]
    producers = producers_for(store, ((a, start, run_id) for a in inputs))
    written = run_artifacts(
        store, {p["run_id"] for p in producers.values() if p is not None}, "out"
    )
    found: dict[str, SetKey | None] = {}
    for aid in inputs:
        producer = producers[(aid, start, run_id)]
        if producer is None:
            found[aid] = None
            continue
        uri, version = split_id(aid)
        if version is not None:
            found[aid] = (producer["run_id"], aid)
            continue
        same_uri = [o for o in written[producer["run_id"]] if split_id(o)[0] == uri]
        found[aid] = (producer["run_id"], same_uri[0]) if same_uri else None
    return found


def indexed_sets(store: Store, keys: Iterable[SetKey]) -> set[SetKey]:
    """Those of ``keys`` that hold record IDs."""
    wanted = {set_id(*k): k for k in keys}
    ids = sorted(wanted)
    found: set[SetKey] = set()
    for i in range(0, len(ids), MAX_PARAMS):
        chunk = ids[i : i + MAX_PARAMS]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT set_id FROM record_sets WHERE set_id IN ({marks})"  # noqa: S608 - "?" only
        for row in store.query(sql, chunk):
            found.add(wanted[int(row["set_id"])])
    return found


def resolve_sources(
    store: Store, run_id: str, source_ids: Iterable[str]
) -> dict[str, list[SetKey]]:
    """Where each source record of a record made by ``run_id`` lives: the record sets,
    among those of the run's inputs, that hold that ID (empty: not indexed there)."""
    allowed = {k for k in input_sets(store, run_id).values() if k is not None}
    by_set = {set_id(*k): k for k in allowed}
    found: dict[str, list[SetKey]] = {s: [] for s in source_ids}
    if not by_set or not found:
        return found
    sets = sorted(by_set)
    for src in sorted(found):
        for i in range(0, len(sets), MAX_PARAMS - 1):
            chunk = sets[i : i + MAX_PARAMS - 1]
            marks = ", ".join("?" * len(chunk))
            rows = store.query(
                f"SELECT DISTINCT set_id FROM records WHERE record_id = ? AND set_id IN ({marks})",  # noqa: S608 - "?" only
                (src, *chunk),
            )
            found[src] += [by_set[int(r["set_id"])] for r in rows]
        found[src].sort()
    return found


def indexed_inputs(store: Store, run_id: str) -> list[str]:
    """Inputs of ``run_id`` (as read) whose stitched record set holds record IDs."""
    resolved = input_sets(store, run_id)
    indexed = indexed_sets(store, {k for k in resolved.values() if k is not None})
    return sorted(a for a, k in resolved.items() if k in indexed)


def scoped_records(
    store: Store, run_id: str, output: str
) -> Iterator[tuple[str, frozenset[tuple[SetKey, str]]]]:
    """Each record of the set (``run_id``, ``output``) with its sources as found among the
    run's input record sets: ``{(input set, source record ID)}`` (empty: no source
    declared, or none found)."""
    allowed = {k for k in input_sets(store, run_id).values() if k is not None}
    # Two linear reads matched in Python: a join on source_record_id made SQLite walk the
    # whole source set once per record (quadratic: 100k predictions took minutes).
    held: dict[SetKey, set[str]] = {}
    for key in sorted(indexed_sets(store, allowed)):
        rows = store.query("SELECT record_id FROM records WHERE set_id = ?", (set_id(*key),))
        held[key] = {r["record_id"] for r in rows}
    rows = store.query(
        "SELECT record_id, source_record_id FROM records WHERE set_id = ? ORDER BY record_id",
        (set_id(run_id, output),),
    )
    current: str | None = None
    keys: set[tuple[SetKey, str]] = set()
    for row in rows:
        if row["record_id"] != current:
            if current is not None:
                yield current, frozenset(keys)
            current, keys = row["record_id"], set()
        source = row["source_record_id"]
        if source:
            keys.update((key, source) for key, ids in held.items() if source in ids)
    if current is not None:
        yield current, frozenset(keys)
