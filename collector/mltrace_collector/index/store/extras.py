"""SQL for the tables of migration 0003: record IDs, flags and check results.

Written once for both backends, like ``store.base`` (``?`` placeholders, rewritten for
psycopg by ``Store._sql``). ``Store.ingest`` calls :func:`ingest_extras` inside its
transaction; the read helpers take a ``Store``.

Record rows name their (run, output artifact) pair by ``set_id``, a deterministic 63-bit
hash, so a million IDs of one batch cost one ``record_sets`` row plus narrow rows.

Example::

    store.ingest(runs, records=chunks)            # chunks from record chunk spans
    record_sets_of(store, "pred-000042")          # -> [{"run_id": ..., "output_artifact_id": ...}]
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mltrace_collector.index.model import RecordChunk, RunRecord
from mltrace_collector.index.store.record_owners import chunk_owner, owner_id

if TYPE_CHECKING:
    from mltrace_collector.index.store.cursor import Cursor, Row
    from mltrace_collector.index.store.cursor import StoreAccess as Store

INSERT_SET = (
    "INSERT INTO record_sets (set_id, run_id, output_artifact_id) VALUES (?, ?, ?) "
    "ON CONFLICT (set_id) DO NOTHING"
)
# owner_id (migration 0007, ``store.record_owners``) is in the key: the same record sent
# by two spans of one run ID keeps a row of each until the run ID's span is known.
INSERT_RECORD = (
    "INSERT INTO records (record_id, set_id, source_record_id, owner_id) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (record_id, set_id, source_record_id, owner_id) DO NOTHING"
)
INSERT_CHECK = (
    "INSERT INTO run_checks (run_id, phase, name, status, message, duration_s, on_fail, "
    "component) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, phase, name) DO NOTHING"
)
INSERT_FLAG = (
    "INSERT INTO flags (target_id, kind, reason, origin, flagged_ns) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (target_id) DO NOTHING"
)
RECORD_BATCH = 50_000
"""Rows per ``executemany`` call: bounds the parameter list held in memory at once."""


def set_id(run_id: str, output_artifact_id: str) -> int:
    """Deterministic 63-bit key of a (run, output artifact) pair (same on every replica).

    >>> set_id("run-1", "file:///p.csv") == set_id("run-1", "file:///p.csv")
    True
    """
    digest = hashlib.blake2b(f"{run_id}\x00{output_artifact_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1


def ingest_extras(
    sql: Callable[[str], str],
    cur: Cursor,
    runs: Sequence[RunRecord],
    chunks: Sequence[RecordChunk],
) -> None:
    """Write records, checks and check-raised flags of ``runs`` and loose ``chunks``."""
    now = time.time_ns()
    sets: dict[int, tuple[str, str]] = {}
    pending = [(c.run_id or "", c, chunk_owner(c)) for c in chunks]
    check_rows: list[tuple[Any, ...]] = []
    flag_rows: list[tuple[Any, ...]] = []
    for run in runs:
        if run.record_chunks:
            owner = owner_id(run.trace_id, run.span_id)  # chunks on the run span itself
            pending.extend((run.run_id, c, owner) for c in run.record_chunks)
        for check in run.checks:
            check_rows.append(
                (run.run_id, check.phase, check.name, check.status, check.message,
                 check.duration_s, check.on_fail, run.component)
            )  # fmt: skip
            if check.status == "fail" and check.on_fail == "flag":
                origin = f"check:{run.run_id}:{check.name}"
                reason = f"check {check.name!r} failed: {check.message}"[:1000]
                for output in run.outputs:
                    flag_rows.append((output, "artifact", reason, origin, now))
    if pending:
        record_sql = sql(INSERT_RECORD)
        batch: list[tuple[str, int, str, int]] = []
        for run_id, chunk, owner in pending:
            key = set_id(run_id, chunk.output)
            sets[key] = (run_id, chunk.output)
            n = len(chunk.ids)
            sources = chunk.sources or ("",) * n
            batch.extend(zip(chunk.ids, (key,) * n, sources, (owner,) * n, strict=True))
            if len(batch) >= RECORD_BATCH:
                cur.executemany(record_sql, sorted(batch))
                batch = []
        if batch:
            cur.executemany(record_sql, sorted(batch))
        cur.executemany(sql(INSERT_SET), [(k, *sets[k]) for k in sorted(sets)])
    if check_rows:
        cur.executemany(sql(INSERT_CHECK), check_rows)
    if flag_rows:
        cur.executemany(sql(INSERT_FLAG), sorted(set(flag_rows)))


# -- reads ------------------------------------------------------------------------------
def record_sets_of(store: Store, record_id: str) -> list[Row]:
    """Every (run, output artifact, source) that produced ``record_id``, newest run first
    (ties: the larger run ID, as for producers; then by output artifact ID). Sets of runs
    not indexed yet (chunks arrive before their run span) come last on both backends:
    PostgreSQL sorts NULL first in a descending order, SQLite last."""
    return store.query(
        "SELECT s.set_id, s.run_id, s.output_artifact_id, r.source_record_id "
        "FROM records r JOIN record_sets s ON s.set_id = r.set_id "
        "LEFT JOIN runs ru ON ru.run_id = s.run_id WHERE r.record_id = ? "
        "ORDER BY ru.end_ns DESC NULLS LAST, s.run_id DESC, s.output_artifact_id, "
        "r.source_record_id",
        (record_id,),
    )


def flags(store: Store) -> list[Row]:
    return store.query(
        "SELECT target_id, kind, reason, origin, flagged_ns FROM flags "
        "ORDER BY flagged_ns, target_id"
    )


def add_flags(store: Store, rows: Sequence[tuple[str, str, str | None]]) -> None:
    """Flag ``(target_id, kind, reason)`` items (re-flagging updates the reason)."""
    now = time.time_ns()
    upsert = (
        "INSERT INTO flags (target_id, kind, reason, origin, flagged_ns) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (target_id) DO UPDATE SET reason = excluded.reason, kind = excluded.kind"
    )
    with store._transaction() as cur:
        cur.executemany(store._sql(upsert), [(t, k, r, "user", now) for t, k, r in sorted(rows)])


def remove_flags(store: Store, target_ids: Sequence[str] | None) -> int:
    """Unflag the given targets (``None``: every flag); returns how many were removed."""
    with store._transaction() as cur:
        if target_ids is None:
            cur.execute("SELECT COUNT(*) FROM flags")
            n = int(cur.fetchall()[0][0])
            cur.execute("DELETE FROM flags")
            return n
        removed = 0
        for target in target_ids:
            cur.execute(store._sql("SELECT COUNT(*) FROM flags WHERE target_id = ?"), (target,))
            removed += int(cur.fetchall()[0][0])
            cur.execute(store._sql("DELETE FROM flags WHERE target_id = ?"), (target,))
        return removed
