"""Batched, lean reads for graph walks (``trace``, ``downstream``, record lineage).

A lineage graph only shows run summaries, so these reads select the few run columns a
summary needs (no params/metrics/tags/attributes JSON to fetch or decode) and look up
many runs or artifacts per statement: one BFS level of a walk costs a handful of
queries, not one per edge. ``IN (...)`` lists are chunked to at most ``MAX_PARAMS``
parameters per statement; every value is a parameter.

Ordering is deterministic: producers newest end first (ties: higher run ID first, the
same tie-break as ``Store.latest_producer_by_uri``), consumers by start (ties: run ID,
then the ID as read). A read is ``(artifact ID, reader start, reader run ID)``: only a
run before the reader in (start, run ID) order can be its producer (``stitch_order``:
never the reader itself, never a cycle), so the reader is part of what is looked up.

Example::

    rows = run_summaries(store, ["run-1", "run-2"])        # {run_id: lean row}
    io = run_inputs(store, list(rows))                     # {run_id: [input artifact IDs]}
    found = producers_for(store, [("s3://b/x.csv", start_ns, "run-2")])
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mltrace_collector.index.model import split_artifact_id
from mltrace_collector.index.store.stitch_order import (
    BEFORE_READER,
    byte_order,
    comes_before,
    reader_bounds,
)

if TYPE_CHECKING:
    from mltrace_collector.index.store.cursor import Row
    from mltrace_collector.index.store.cursor import StoreAccess as Store

split_id = functools.lru_cache(maxsize=1 << 16)(split_artifact_id)
"""``model.split_artifact_id``, memoized: a walk splits each artifact ID several times."""

MAX_PARAMS = 500
"""Parameters per statement (well under SQLite's and PostgreSQL's limits)."""

SUMMARY_COLUMNS = (
    "run_id",
    "component",
    "trace_id",
    "span_id",
    "service",
    "start_ns",
    "end_ns",
    "status",
    "code_revision",
)
"""The run columns ``queries.run_summary`` reads."""
_LEAN = ", ".join(SUMMARY_COLUMNS)
_LEAN_R = ", ".join("r." + c for c in SUMMARY_COLUMNS)
_UNVERSIONED_ONE = (
    f"SELECT CAST(? AS BIGINT) AS k, {_LEAN_R} FROM runs r WHERE r.run_id = ("
    "SELECT io.run_id FROM run_io io JOIN runs p ON p.run_id = io.run_id "
    "WHERE io.uri = ? AND io.direction = 'out' AND p.end_ns <= ? "
    f"AND {BEFORE_READER.format(p='p', c='{c}')} "
    "ORDER BY p.end_ns DESC, p.run_id{c} DESC LIMIT 1)"
)
"""One read's sub-select; ``{c}``: ``stitch_order.byte_order`` of the store."""
_NO_READER = ""
"""Sorts "no reader" first."""

Read = tuple[str, int | None, str | None]
"""``(artifact ID or URI, reader start ns, reader run ID)``; ``None`` start: no bound (the
newest writer), ``None`` reader: an artifact asked about alone."""


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def run_summaries(store: Store, run_ids: Iterable[str]) -> dict[str, Row]:
    """Lean rows (``SUMMARY_COLUMNS``) of the runs that exist, by run ID."""
    ids = sorted(set(run_ids))
    found: dict[str, Row] = {}
    for chunk in _chunks(ids, MAX_PARAMS):
        sql = f"SELECT {_LEAN} FROM runs WHERE run_id IN ({_marks(len(chunk))})"
        for row in store.query(sql, chunk):
            found[row["run_id"]] = row
    return found


def find_run_summaries(store: Store, prefix: str, limit: int = 2) -> list[Row]:
    """Lean rows of runs whose ID starts with ``prefix`` (as ``Store.find_runs``)."""
    return store.query(
        f"SELECT {_LEAN} FROM runs WHERE run_id >= ? AND run_id < ? "
        "AND substr(run_id, 1, ?) = ? LIMIT ?",
        (prefix, prefix + "\U0010ffff", len(prefix), prefix, limit),
    )


def run_artifacts(store: Store, run_ids: Iterable[str], direction: str) -> dict[str, list[str]]:
    """Artifact IDs each run read (``direction='in'``) or wrote (``'out'``), sorted.

    Every requested run is a key (an empty list when it has none)."""
    ids = sorted(set(run_ids))
    found: dict[str, list[str]] = {run_id: [] for run_id in ids}
    for chunk in _chunks(ids, MAX_PARAMS - 1):
        rows = store.query(
            f"SELECT run_id, artifact_id FROM run_io WHERE run_id IN ({_marks(len(chunk))}) "
            "AND direction = ? ORDER BY run_id, artifact_id",
            (*chunk, direction),
        )
        for row in rows:
            found[row["run_id"]].append(row["artifact_id"])
    return found


def inputs_with_producers(
    store: Store, run_ids: Iterable[str]
) -> dict[str, list[tuple[str, list[Row] | None]]]:
    """Each run's inputs, sorted, with — for a versioned input — the lean rows of its
    writers, newest end first (``None`` for an unversioned input: its producer depends on
    the reader's start, see :func:`latest_producers_by_uri`). One statement per chunk of
    runs: a chain costs one query per level."""
    ids = sorted(set(run_ids))
    found: dict[str, list[tuple[str, list[Row] | None]]] = {run_id: [] for run_id in ids}
    for chunk in _chunks(ids, MAX_PARAMS):
        rows = store.query(
            f"SELECT i.run_id AS reader_id, i.artifact_id AS read_as, i.versioned AS read_v, "
            f"{_LEAN_R} FROM run_io i LEFT JOIN run_io o ON o.artifact_id = i.artifact_id "
            "AND o.direction = 'out' AND i.versioned = 1 LEFT JOIN runs r ON r.run_id = o.run_id "
            f"WHERE i.run_id IN ({_marks(len(chunk))}) AND i.direction = 'in' "
            f"ORDER BY i.run_id, i.artifact_id, r.end_ns DESC, r.run_id{byte_order(store.backend)} "
            "DESC",
            chunk,
        )
        for row in rows:
            entries = found[row.pop("reader_id")]
            aid, versioned = row.pop("read_as"), row.pop("read_v")
            if not entries or entries[-1][0] != aid:
                entries.append((aid, [] if versioned else None))
            candidates = entries[-1][1]
            if candidates is not None and row["run_id"] is not None:
                candidates.append(row)
    return found


def upstream_closure(store: Store, run_ids: Sequence[str], limit: int) -> list[str]:
    """Up to ``limit`` run IDs reachable upstream of ``run_ids`` (themselves included)
    through versioned inputs and *any* of their writers, nearest first — a superset of
    what a walk visits that way, in one recursive statement, to prefetch a deep chain
    without one round trip per level (``limit`` bounds over-fetching)."""
    found: list[str] = []
    for chunk in _chunks(sorted(set(run_ids)), MAX_PARAMS - 1):
        found += [
            row["run_id"]
            for row in store.query(
                "WITH RECURSIVE up(run_id) AS ("
                f"SELECT run_id FROM runs WHERE run_id IN ({_marks(len(chunk))}) UNION "
                "SELECT o.run_id FROM up JOIN run_io i ON i.run_id = up.run_id "
                "AND i.direction = 'in' AND i.versioned = 1 JOIN run_io o "
                "ON o.artifact_id = i.artifact_id AND o.direction = 'out'"
                ") SELECT run_id FROM up LIMIT ?",
                (*chunk, limit),
            )
        ]
    return found


def downstream_outputs(store: Store, run_ids: Sequence[str], limit: int) -> list[str]:
    """Up to ``limit`` output IDs of the runs reachable downstream of ``run_ids``
    (themselves included) through exact reads, nearest first: what a downstream walk
    will ask the consumers of, fetched in one recursive statement (see
    :func:`upstream_closure`)."""
    found: list[str] = []
    for chunk in _chunks(sorted(set(run_ids)), MAX_PARAMS - 1):
        found += [
            row["artifact_id"]
            for row in store.query(
                "WITH RECURSIVE down(run_id) AS ("
                f"SELECT run_id FROM runs WHERE run_id IN ({_marks(len(chunk))}) UNION "
                "SELECT c.run_id FROM down JOIN run_io o ON o.run_id = down.run_id "
                "AND o.direction = 'out' JOIN run_io c "
                "ON c.artifact_id = o.artifact_id AND c.direction = 'in'"
                ") SELECT o.artifact_id FROM down JOIN run_io o ON o.run_id = down.run_id "
                "AND o.direction = 'out' LIMIT ?",
                (*chunk, limit),
            )
        ]
    return list(dict.fromkeys(found))


def producers_exact_many(store: Store, artifact_ids: Iterable[str]) -> dict[str, list[Row]]:
    """Lean rows of the runs that wrote each artifact ID, newest end first."""
    ids = sorted(set(artifact_ids))
    found: dict[str, list[Row]] = {aid: [] for aid in ids}
    for chunk in _chunks(ids, MAX_PARAMS):
        rows = store.query(
            f"SELECT io.artifact_id AS written_as, {_LEAN_R} FROM run_io io "
            "JOIN runs r ON r.run_id = io.run_id "
            f"WHERE io.artifact_id IN ({_marks(len(chunk))}) AND io.direction = 'out' "
            f"ORDER BY io.artifact_id, r.end_ns DESC, r.run_id{byte_order(store.backend)} DESC",
            chunk,
        )
        for row in rows:
            found[row.pop("written_as")].append(row)
    return found


def latest_producers_by_uri(store: Store, wanted: Iterable[Read]) -> dict[Read, Row | None]:
    """For each ``(uri, before_ns, reader)``: the lean row of the run that last wrote
    ``uri`` (any version), ended by ``before_ns`` (``None``: no bound) and comes before
    ``reader`` (``stitch_order``), as ``Store.latest_producer_by_uri`` — one indexed
    sub-select per read, many per statement."""
    pairs = sorted(
        set(wanted), key=lambda p: (p[0], -1 if p[1] is None else p[1], p[2] or _NO_READER)
    )
    found: dict[Read, Row | None] = dict.fromkeys(pairs)
    per_statement = MAX_PARAMS // 6  # 6 parameters per sub-select
    for start in range(0, len(pairs), per_statement):
        chunk = pairs[start : start + per_statement]
        one = _UNVERSIONED_ONE.format(c=byte_order(store.backend))
        sql = " UNION ALL ".join([one] * len(chunk))
        params: list[Any] = []
        for i, (uri, bound, reader) in enumerate(chunk):
            params += [i, uri, *reader_bounds(bound, reader)]
        for row in store.query(sql, params):
            found[chunk[int(row.pop("k"))]] = row
    return found


def pick_producer(
    candidates: Sequence[Row], consumer_start_ns: int | None, reader: str | None = None
) -> Row | None:
    """Among the writers of one versioned ID (newest end first), the one the run ``reader``
    that started at ``consumer_start_ns`` got it from: of those that come before it
    (``stitch_order``; never ``reader`` itself, which may write back what it read), the
    newest that ended by then; with clock skew (none did), the earliest."""
    if consumer_start_ns is None:
        return candidates[0] if candidates else None
    earliest = None
    for row in candidates:
        if comes_before(row["start_ns"], row["run_id"], consumer_start_ns, reader):
            if row["end_ns"] <= consumer_start_ns:
                return row
            earliest = row  # newest end first: the last one seen ended first
    return earliest


def producers_for(store: Store, wanted: Iterable[Read]) -> dict[Read, Row | None]:
    """``LineageQueries.producer_for`` for many reads ``(artifact ID, reader start, reader
    run ID)`` at once, with lean rows: versioned IDs exactly, unversioned URIs by the
    latest writer that ended before the reader started; never the reader itself."""
    pairs = set(wanted)
    versioned: dict[str, list[Read]] = {}
    by_uri: dict[Read, Read] = {}
    for aid, start, reader in pairs:
        uri, version = split_id(aid)
        if version is None:
            by_uri[(aid, start, reader)] = (uri, start, reader)
        else:
            versioned.setdefault(aid, []).append((aid, start, reader))
    found: dict[Read, Row | None] = {}
    if versioned:
        for aid, candidates in producers_exact_many(store, versioned).items():
            for pair in versioned[aid]:
                found[pair] = pick_producer(candidates, pair[1], pair[2])
    if by_uri:
        latest = latest_producers_by_uri(store, by_uri.values())
        for pair, key in by_uri.items():
            found[pair] = latest[key]
    return found


def consumers_many(store: Store, artifact_ids: Iterable[str]) -> dict[str, list[Row]]:
    """For each artifact ID: lean rows of the runs that read it exactly or read its URI
    unversioned, as ``Store.consumers`` — by start, then run ID. Each row also has
    ``read_as`` (the ID as read) and ``outputs`` (the run's output IDs, sorted), so that
    a downstream walk costs one statement per level."""
    ids = sorted(set(artifact_ids))
    uri_of = {aid: split_id(aid)[0] for aid in ids}
    by_uri: dict[str, list[str]] = {}
    for aid in ids:
        by_uri.setdefault(uri_of[aid], []).append(aid)
    select = (
        f"SELECT io.artifact_id AS read_as, io.uri AS read_uri, io.versioned AS read_v, "
        f"o.artifact_id AS wrote, {_LEAN_R} FROM run_io io JOIN runs r ON r.run_id = io.run_id "
        "LEFT JOIN run_io o ON o.run_id = io.run_id AND o.direction = 'out' "
    )
    rows_by_key: dict[tuple[str, str], Row] = {}
    outputs: dict[tuple[str, str], set[str]] = {}
    for chunk in _chunks(ids, MAX_PARAMS // 2):
        uris = sorted({uri_of[aid] for aid in chunk})
        sql = (
            f"{select}WHERE io.artifact_id IN ({_marks(len(chunk))}) AND io.direction = 'in' "
            f"UNION ALL {select}WHERE io.uri IN ({_marks(len(uris))}) AND io.direction = 'in' "
            "AND io.versioned = 0"
        )
        for row in store.query(sql, (*chunk, *uris)):
            key = (row["run_id"], row["read_as"])
            wrote = row.pop("wrote")
            if key not in rows_by_key:
                rows_by_key[key] = row
                outputs[key] = set()
            if wrote is not None:
                outputs[key].add(wrote)
    found: dict[str, list[Row]] = {aid: [] for aid in ids}
    requested = set(ids)
    for key, row in rows_by_key.items():
        row["outputs"] = sorted(outputs[key])
        targets = {row["read_as"]} & requested
        if not row.pop("read_v"):  # read unversioned: a reader of every version of the URI
            targets.update(by_uri.get(row.pop("read_uri"), ()))
        else:
            row.pop("read_uri")
        for aid in targets:
            found[aid].append(row)
    for readers in found.values():
        readers.sort(key=lambda r: (r["start_ns"], r["run_id"], r["read_as"]))
    return found
