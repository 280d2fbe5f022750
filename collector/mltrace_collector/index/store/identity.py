"""Which span a contested run ID is stored for: the store's side of duplicate detection.

A run ID is *contested* in a commit when the ``INSERT ... ON CONFLICT DO NOTHING`` did not
insert one of its rows: it was stored before (a retried span, or another span with the
same run ID), or it came twice in this commit. The writer reads the stored identity of
those IDs inside the same transaction, so that the pipeline can tell a retried span
(idempotent) from a duplicate (rejected, ``isolation.duplicate_rejections``).

Example::

    stored = stored_identities(sql, cur, contested_ids(runs, inserted))
    stored["r1"]  # StoredRun(trace_id='..', span_id='..', status='ok')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from mltrace_collector.index.model import RecordChunk
    from mltrace_collector.index.store.cursor import Cursor


class StoredRun(NamedTuple):
    """The span a run ID is indexed for."""

    trace_id: str
    span_id: str
    status: str


def contested_ids(runs: Sequence[tuple[Any, ...]], inserted: Sequence[str]) -> list[str]:
    """Run IDs of ``runs`` (rows, ID first) not inserted, or present more than once."""
    if len(inserted) == len(runs):
        return []  # every row inserted: no conflict (and no ID twice, the key is unique)
    seen: set[str] = set()
    twice: set[str] = set()
    for row in runs:
        (twice if row[0] in seen else seen).add(row[0])
    return sorted(twice | (seen - set(inserted)))


def stored_identities(
    sql: Callable[[str], str], cur: Cursor, run_ids: Sequence[str]
) -> dict[str, StoredRun]:
    """The stored span of each of ``run_ids``. Every one must be stored by now: a run
    neither inserted nor stored would be lost silently, so that fails the commit."""
    found = stored_runs(sql, cur, run_ids)
    absent = sorted(set(run_ids) - set(found))
    if absent:
        raise RuntimeError(f"runs not written (a NULL in a NOT NULL column?): {absent[:5]}")
    return found


def is_foreign_chunk(stored: StoredRun, chunk: RecordChunk) -> bool:
    """Whether ``chunk`` (from a record chunk span) belongs to another span than the one
    its run ID is indexed for (``stored``): the SDK makes record chunk spans children of
    their run span, so their trace and parent span ID name the run they came from."""
    return (stored.trace_id, stored.span_id) != (chunk.trace_id, chunk.parent_span_id)


def chunk_owners(
    sql: Callable[[str], str], cur: Cursor, chunks: Sequence[RecordChunk]
) -> tuple[list[RecordChunk], dict[str, StoredRun]]:
    """``(chunks to write, stored span of each indexed run ID they name)``: called after
    the commit's runs are inserted, in its transaction, so a chunk is checked against the
    span its run ID is indexed for even when that span came in the same commit. A chunk
    of another span (a rejected duplicate's) is not written. A chunk whose run ID is not
    indexed yet is written: which span will own it cannot be known (docs/semantics.md);
    its rows keep the span they came from and are deleted if another span is indexed for
    the run ID (``store.record_owners``). Chunks that do not say which span they came
    from (``trace_id`` None) are written."""
    named = sorted({c.run_id for c in chunks if c.run_id and c.trace_id is not None})
    if not named:
        return list(chunks), {}
    found = stored_runs(sql, cur, named)
    kept = [
        c
        for c in chunks
        if c.trace_id is None or c.run_id not in found or not is_foreign_chunk(found[c.run_id], c)
    ]
    return kept, found


def stored_runs(
    sql: Callable[[str], str], cur: Cursor, run_ids: Sequence[str]
) -> dict[str, StoredRun]:
    """The stored span of those of ``run_ids`` that are stored (512 IDs a query)."""
    found: dict[str, StoredRun] = {}
    for i in range(0, len(run_ids), 512):
        chunk = run_ids[i : i + 512]
        marks = ", ".join("?" * len(chunk))
        cur.execute(
            sql(f"SELECT run_id, trace_id, span_id, status FROM runs WHERE run_id IN ({marks})"),
            chunk,
        )
        for run_id, trace_id, span_id, status in cur.fetchall():
            found[run_id] = StoredRun(trace_id, span_id, status)
    return found
