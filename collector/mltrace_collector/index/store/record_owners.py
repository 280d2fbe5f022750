"""Which span each record row came from, and the cleanup when a run ID gets its span.

A record chunk span (a child of its run span, naming the run ID) that arrives before any
span of its run ID is indexed is written, since the index cannot know yet which span will
own the run ID (``store.identity.chunk_owners``). Its rows keep ``owner_id``, a 63-bit hash
of the (trace ID, span ID) of the run span they came from: the chunk span's trace and
parent span ID (migration 0007). When a span is then indexed for the run ID,
:func:`drop_foreign_records` deletes, in that same transaction, the rows of that run's
record sets that came from another span (a duplicate run's, rejected when its run span
arrives), and the record sets it leaves empty. So whichever order the spans arrive in,
the records of a run ID are those of the span it is indexed for. Rows of unknown owner
(``UNKNOWN_OWNER``: written before migration 0007, or by a chunk that named no span) are
kept, as before.

Example::

    key = owner_id(run.trace_id, run.span_id)          # what its chunks' rows carry
    gone = drop_foreign_records(sql, cur, {"r1": (run.trace_id, run.span_id)})
    report_dropped(gone)                                # after the commit
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from mltrace_collector.index.store.cursor import Cursor
from mltrace_collector.index.store.identity import stored_runs

if TYPE_CHECKING:
    from mltrace_collector.index.model import RecordChunk

log = logging.getLogger("mltrace_collector.store.record_owners")

UNKNOWN_OWNER = 0
"""``owner_id`` of rows whose span is not known: never deleted by the cleanup."""


def owner_id(trace_id: str, span_id: str) -> int:
    """Deterministic 63-bit key of the run span (hex IDs) a record row came from; never
    ``UNKNOWN_OWNER``.

    >>> owner_id("ab" * 16, "cd" * 8) == owner_id("ab" * 16, "cd" * 8) > 0
    True
    """
    digest = hashlib.blake2b(f"{trace_id}\x00{span_id}".encode(), digest_size=8)
    return (int.from_bytes(digest.digest(), "big") >> 1) or 1


def chunk_owner(chunk: RecordChunk) -> int:
    """``owner_id`` of a chunk from a record chunk span: its parent, the run span it names.
    A chunk span without a parent belongs to no run span (its rows go once one is indexed);
    a chunk that names no span at all has an unknown owner."""
    if chunk.trace_id is None:
        return UNKNOWN_OWNER
    return owner_id(chunk.trace_id, chunk.parent_span_id or "")


class DroppedRecords(NamedTuple):
    """Record rows deleted because they came from another span than the indexed one."""

    run_id: str
    output_artifact_id: str
    rows: int
    trace_id: str
    span_id: str
    """The span the run ID is indexed for."""


def indexed_spans(
    runs: Sequence[tuple[Any, ...]], inserted: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """Run ID -> (trace ID, span ID) of the span indexed for it, for the run IDs this
    commit ``inserted``; ``runs`` are ``runs`` rows (ID, component, trace ID, span ID...)
    in insert order, so the first row of a run ID is the one that went in."""
    wanted = set(inserted)
    spans: dict[str, tuple[str, str]] = {}
    for row in runs:
        if row[0] in wanted and row[0] not in spans:
            spans[row[0]] = (row[2], row[3])
    return spans


def drop_foreign_records(
    sql: Callable[[str], str], cur: Cursor, spans: Mapping[str, tuple[str, str]]
) -> list[DroppedRecords]:
    """Delete, inside the caller's transaction, the record rows of the run IDs of
    ``spans`` (just indexed for those spans) that came from another span, and the record
    sets this leaves empty. One indexed lookup per 512 runs when nothing is to delete
    (the common case: chunks of the same span, or none); two seeks per record set of
    those runs otherwise, since ``records_set`` is keyed (set_id, owner_id)."""
    ids = sorted(spans)
    sets: list[tuple[int, str, str]] = []
    for i in range(0, len(ids), 512):
        part = ids[i : i + 512]
        marks = ", ".join("?" * len(part))
        cur.execute(
            sql(
                "SELECT set_id, run_id, output_artifact_id FROM record_sets "
                f"WHERE run_id IN ({marks})"
            ),
            part,
        )
        sets.extend(cur.fetchall())
    dropped: list[DroppedRecords] = []
    for key, run_id, output in sorted(sets):  # key order: no deadlock between replicas
        own = owner_id(*spans[run_id])
        rows = 0
        # Two ranges, each an index seek: owners other than ``own`` and UNKNOWN_OWNER.
        for where, params in (
            ("owner_id > ? AND owner_id < ?", (key, UNKNOWN_OWNER, own)),
            ("owner_id > ?", (key, own)),
        ):
            cur.execute(sql(f"DELETE FROM records WHERE set_id = ? AND {where}"), params)
            rows += max(cur.rowcount, 0)
        if rows:
            cur.execute(
                sql(
                    "DELETE FROM record_sets WHERE set_id = ? "
                    "AND NOT EXISTS (SELECT 1 FROM records WHERE set_id = ?)"
                ),
                (key, key),
            )
            dropped.append(DroppedRecords(run_id, output, rows, *spans[run_id]))
    return dropped


def recheck_owners(
    sql: Callable[[str], str],
    cur: Cursor,
    indexed: Mapping[str, tuple[str, str]],
    unowned: Sequence[str],
) -> list[DroppedRecords]:
    """:func:`drop_foreign_records` again, after the commit, in a transaction of its own:
    for the run IDs a commit ``indexed`` (run ID -> its span) and those it wrote record
    chunks for while no span of theirs was indexed (``unowned``), as indexed now.

    Needed where writers commit concurrently (PostgreSQL, READ COMMITTED): a commit
    indexing a span does not see the rows of another span's chunk that a concurrent
    transaction writes, nor does that one see the span. Whichever of the two commits
    last sees the other's rows here. (SQLite writers take turns: nothing to recheck.)"""
    spans = dict(indexed)
    ids = sorted(set(unowned) - set(spans))
    stored = stored_runs(sql, cur, ids)
    spans.update((run_id, (run.trace_id, run.span_id)) for run_id, run in stored.items())
    return drop_foreign_records(sql, cur, spans)


def report_dropped(dropped: Sequence[DroppedRecords]) -> None:
    """Log, once their deletion is committed, the records of duplicate runs deleted."""
    for d in dropped:
        log.warning(
            "run ID %r is now indexed for span %s (trace %s): deleted %d record(s) of output "
            "%s that record chunk spans of another span with that run ID had written before "
            "(a duplicate run; its run span is rejected when it arrives): give each run its "
            "own run ID",
            d.run_id, d.span_id, d.trace_id, d.rows, d.output_artifact_id,
        )  # fmt: skip
