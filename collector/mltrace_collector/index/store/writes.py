"""The write plan of ingested rows and the statements that write them, both backends.

Ingest is split in three so that the writer (the one serial stage: the store's write lock)
does as little Python as possible: ``ingest_rows.prepare`` turns runs into rows and JSON
text (in an ingest worker or a receiver thread); :func:`plan_write` merges the prepared
batches of one group commit, orders them and, for SQLite, builds the multi-row ``INSERT
... VALUES (...), (...)`` statements with their parameters (one statement per up to
``MAX_PARAMS`` values: fewer statement steps, and fewer GIL hand-overs, since ``sqlite3``
releases the GIL around every step); :func:`write_plan` runs them inside the transaction.

``ingested_ns`` is bound inside the transaction, so that it keeps increasing in commit
order (the Prometheus exporter reads runs ingested since its last watermark).

Example::

    prepared = prepare(runs, chunks)                        # any thread (ingest_rows)
    plan = plan_write([prepared], store._known, store._sql)  # before the write lock
    with store._transaction() as cur:                       # the writer
        write_plan(store._sql, cur, plan, time.time_ns())
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mltrace_collector.index.store.cursor import Cursor
from mltrace_collector.index.store.extras import ingest_extras
from mltrace_collector.index.store.identity import (
    StoredRun,
    chunk_owners,
    contested_ids,
    stored_identities,
)
from mltrace_collector.index.store.ingest_rows import Prepared, _merge
from mltrace_collector.index.store.own_rows import own_rows
from mltrace_collector.index.store.record_owners import (
    DroppedRecords,
    drop_foreign_records,
    indexed_spans,
)
from mltrace_collector.index.store.run_starts import write_starts

RUN_COLUMNS = (
    "run_id, component, trace_id, span_id, parent_span_id, service, start_ns, end_ns, status, "
    "status_message, code_revision, code_repository, code_function, code_file, params, "
    "metrics, tags, attributes, n_inputs, n_outputs, ingested_ns"
)
# RETURNING names the runs this transaction inserted: only their I/O rows are written, so
# a retried batch (or a run twice in one group) adds no duplicate run_io rows although
# run_io has no unique key (migration 0005). Concurrent PostgreSQL writers agree: a
# conflicting insert waits for the other transaction and then returns nothing.
INSERT_RUN = (
    f"INSERT INTO runs ({RUN_COLUMNS})",
    21,
    "ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
)
# SQLite (one writer at a time, rowid tables) learns which runs went in without RETURNING:
# every returned row is a statement step of its own, and each step hands the GIL over
# and back (``sqlite3`` releases it around ``sqlite3_step``): under load, waiting to get
# it back cost the writer more than the insert itself. See ``_insert_runs_sqlite``.
INSERT_RUN_SQLITE = (INSERT_RUN[0], 21, "ON CONFLICT (run_id) DO NOTHING")
INSERT_IO = ("INSERT INTO run_io (run_id, direction, artifact_id, uri, versioned)", 5, "")
# first_seen_ns only ever moves earlier; the WHERE skips the row write when it would not.
UPSERT_ARTIFACT = (
    "INSERT INTO artifacts (artifact_id, uri, version, first_seen_ns)",
    4,
    "ON CONFLICT (artifact_id) DO UPDATE SET first_seen_ns = excluded.first_seen_ns "
    "WHERE excluded.first_seen_ns < artifacts.first_seen_ns",
)
INSERT_OUTPUT = (
    "INSERT INTO run_outputs (run_id, name, kind, value_count, null_count, invalid_count, "
    "value_sum, value_min, value_max, summary)",
    10,
    "ON CONFLICT (run_id, name) DO NOTHING",
)
MAX_PARAMS = 32_766
"""Bound parameters per multi-row statement: SQLite's limit since 3.32 (``SqliteStore``
refuses a library built with less). Each statement is one
``sqlite3_step``, around which ``sqlite3`` hands the GIL over and back: with other
threads busy, getting it back costs up to the switch interval, so fewer, larger
statements matter more than their parsing (writer wall time 90 -> 54 us/span at 8,192 ->
32,766 with a busy thread next to it)."""


@functools.lru_cache(maxsize=256)
def _statement(head: str, width: int, rows: int, tail: str, numbered: bool = False) -> str:
    """``head VALUES (?, ...), ... tail``. ``numbered``: the last column of every row is
    ``?1``, one value bound once (the runs' ``ingested_ns``), the others ``?2``, ``?3``..."""
    if not numbered:
        one = "(" + ", ".join("?" * width) + ")"
        return f"{head} VALUES {', '.join([one] * rows)} {tail}"
    values = []
    for r in range(rows):
        first = 2 + r * (width - 1)
        values.append("(" + "".join(f"?{first + k}, " for k in range(width - 1)) + "?1)")
    return f"{head} VALUES {', '.join(values)} {tail}"


Chunk = tuple[str, list[Any], int]
"""One multi-row statement: its text, its parameters, its number of rows."""


def statement_chunks(
    sql: Callable[[str], str],
    statement: tuple[str, int, str],
    rows: Sequence[tuple[Any, ...]],
    or_ignore: bool = False,
    bind_once: bool = False,
) -> list[Chunk]:
    """The multi-row statements that insert ``rows``: chunks of a power of two rows, so
    at most a dozen distinct statements are ever prepared per table (the drivers cache
    prepared statements by their text). ``bind_once``: each row lacks the statement's
    last column, which is bound once as ``?1`` (parameter 0, set by :func:`run_chunks`).

    ``or_ignore`` (SQLite): ``INSERT OR IGNORE``. A multi-row statement that could abort
    halfway (a ``NOT NULL`` column) makes SQLite keep a statement journal, a copy of
    every page the statement changes: 9 KB of writes per ingested run, ~10-15% of the
    writer's time. Rows are built complete (``prepare``), so nothing is ignored in
    practice; :func:`write_plan` checks that every row went in."""
    head, width, tail = statement
    if or_ignore:
        head = head.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
    row_width = width - 1 if bind_once else width
    per = 1 << ((MAX_PARAMS // width).bit_length() - 1)
    chunks: list[Chunk] = []
    i, total = 0, len(rows)
    while i < total:
        n = per
        while n > total - i:
            n >>= 1
        flat: list[Any] = [None] if bind_once else []
        for row in rows[i : i + n]:
            flat.extend(row)
        assert len(flat) == n * row_width + bind_once
        chunks.append((sql(_statement(head, width, n, tail, bind_once)), flat, n))
        i += n
    return chunks


def run_chunks(
    cur: Cursor, chunks: Sequence[Chunk], returning: bool, check_all: bool, once: Any = None
) -> list[Any]:
    """Execute ``chunks``; returns the first column of what they returned. ``check_all``:
    fail unless every row went in (``INSERT OR IGNORE`` without a conflict clause).
    ``once``: the value of ``?1`` (see :func:`statement_chunks`)."""
    returned: list[Any] = []
    for text, params, n in chunks:
        if once is not None:
            params[0] = once
        cur.execute(text, params)
        if returning:
            returned.extend(r[0] for r in cur.fetchall())
        elif check_all and cur.rowcount != n:
            raise RuntimeError(f"{text[:60]}...: {n - cur.rowcount} of {n} rows were not written")
    return returned


def insert_rows(
    sql: Callable[[str], str],
    cur: Cursor,
    statement: tuple[str, int, str],
    rows: Sequence[tuple[Any, ...]],
    suffix: tuple[Any, ...] = (),
) -> list[Any]:
    """Insert ``rows`` (each followed by ``suffix``) row by row through ``executemany``
    (PostgreSQL: psycopg pipelines it); returns the first column of what a ``RETURNING``
    statement returned ([] for other statements)."""
    head, width, tail = statement
    params = [row + suffix for row in rows] if suffix else rows
    text = sql(_statement(head, width, 1, tail))
    if " RETURNING " not in f" {tail} ":
        cur.executemany(text, params)
        return []
    returned: list[Any] = []
    pg: Any = cur  # psycopg's executemany(returning=True): one result set per row
    pg.executemany(text, params, returning=True)
    while True:  # empty where the row was not inserted
        returned.extend(r[0] for r in pg.fetchall())
        if not pg.nextset():
            return returned


class KnownArtifacts:
    """Upper bounds of stored ``artifacts.first_seen_ns``, remembered by one store after its
    commits. The upsert only ever lowers ``first_seen_ns``, so an artifact seen again no
    earlier than its bound would be a no-op: :func:`write` skips it (shared inputs are
    most of a pipeline's artifact references). Another writer can only lower the stored
    value further, so a bound stays valid across replicas. Bounded: cleared when full."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._bound: dict[str, int] = {}

    def unchanged(self, artifact_id: str, seen_ns: int) -> bool:
        bound = self._bound.get(artifact_id)
        return bound is not None and bound <= seen_ns

    def committed(self, written: Sequence[tuple[Any, ...]]) -> None:
        """Remember ``(artifact_id, uri, version, seen_ns)`` rows once their commit is done."""
        if len(self._bound) + len(written) > self.limit:
            self._bound.clear()
        bound = self._bound
        for aid, _, _, seen in written:
            known = bound.get(aid)
            if known is None or seen < known:
                bound[aid] = seen


@dataclass
class WritePlan:
    """The rows of one group commit in write order, made before the transaction so that
    the write lock is held for the statements only. ``prebuilt`` (SQLite): the statements
    themselves, for the common commit where every run is new and each run ID comes once;
    otherwise ``write_plan`` writes the rows of the inserted spans only (``own_rows``)."""

    batch: Prepared
    runs: list[tuple[Any, ...]]
    artifacts: list[tuple[Any, ...]]
    outputs: list[tuple[Any, ...]]
    prebuilt: dict[str, list[Chunk]] | None = None
    dropped: list[DroppedRecords] = field(default_factory=list)
    """Set by :func:`write_plan`: records of other spans deleted (``record_owners``), and
    what ``record_owners.recheck_owners`` needs: the spans indexed, the run IDs of chunks
    written while no span of theirs was indexed."""
    indexed: dict[str, tuple[str, str]] = field(default_factory=dict)
    unowned: list[str] = field(default_factory=list)


def plan_write(
    batches: Sequence[Prepared],
    known: KnownArtifacts | None = None,
    prebuild_sql: Callable[[str], str] | None = None,
) -> WritePlan:
    """Merge and order ``batches`` (key order: no deadlocks between replicas writing
    overlapping rows); ``prebuild_sql``: also build the SQLite statements (``INSERT OR
    IGNORE``, multi-row)."""
    batch = _merge(batches)
    runs = sorted(batch.runs, key=_first)
    artifacts = batch.artifacts
    rows = [
        (aid, *artifacts[aid])
        for aid in sorted(artifacts)
        if known is None or not known.unchanged(aid, artifacts[aid][2])
    ]
    plan = WritePlan(batch, runs, rows, sorted(batch.outputs, key=_first_two))
    if prebuild_sql is not None:
        sql = prebuild_sql
        plan.prebuilt = {
            "runs": statement_chunks(sql, INSERT_RUN_SQLITE, runs, True, bind_once=True),
            "io": statement_chunks(sql, INSERT_IO, _io_rows(batch, _first_ids(runs)), True),
            "artifacts": statement_chunks(sql, UPSERT_ARTIFACT, rows, True),
            "outputs": statement_chunks(sql, INSERT_OUTPUT, plan.outputs, True),
        }
    return plan


def write_plan(
    sql: Callable[[str], str],
    cur: Cursor,
    plan: WritePlan,
    now: int,
) -> tuple[list[tuple[Any, ...]], dict[str, StoredRun]]:
    """Insert ``plan`` inside the caller's transaction; returns the artifact rows it
    upserted (for ``known.committed`` after the commit) and the stored span of each run ID
    that was not inserted or came twice, or that a record chunk span names
    (``store.identity``: a chunk of another span is not written). ``now``: the runs'
    ``ingested_ns``. A plan with prebuilt statements (SQLite) runs them; otherwise rows
    go in one by one (:func:`insert_rows`). A span whose run row was not inserted (its run
    ID is stored, or came earlier in this commit) writes no row of any table."""
    batch, built = plan.batch, plan.prebuilt
    inserted: list[str] = []
    if plan.runs and built is not None:
        inserted = _insert_runs_sqlite(sql, cur, plan.runs, now, built["runs"])
    elif plan.runs:
        inserted = insert_rows(sql, cur, INSERT_RUN, plan.runs, (now,))
    contested = contested_ids(plan.runs, inserted)
    plan.indexed = indexed_spans(plan.runs, inserted)
    plan.dropped = drop_foreign_records(sql, cur, plan.indexed)
    artifacts, records = plan.artifacts, batch.records
    if built is not None and not contested:  # every run new, once: the prebuilt rows hold
        run_chunks(cur, built["io"], False, True)
        run_chunks(cur, built["artifacts"], False, False)
        run_chunks(cur, built["outputs"], False, False)
    else:
        io, outputs = _io_rows(batch, inserted), plan.outputs
        if contested:  # a span not inserted (a retry, a duplicate) writes nothing at all
            io, artifacts, outputs, records = own_rows(batch, plan.runs, inserted)
        for statement, rows in ((INSERT_IO, io), (UPSERT_ARTIFACT, artifacts),
                                (INSERT_OUTPUT, outputs)):  # fmt: skip
            if built is not None:
                chunks = statement_chunks(sql, statement, rows, True)
                run_chunks(cur, chunks, False, statement is INSERT_IO)
            elif rows:
                insert_rows(sql, cur, statement, rows)
    own_chunks, owners = chunk_owners(sql, cur, batch.chunks)  # after the runs, as below
    plan.unowned = sorted({c.run_id for c in own_chunks if c.run_id and c.run_id not in owners})
    ingest_extras(sql, cur, records, own_chunks)
    write_starts(sql, cur, batch.starts, _first_ids(plan.runs), now)  # after the runs
    if contested:
        owners = {**owners, **stored_identities(sql, cur, contested)}
    return artifacts, owners


def _first_ids(runs: Sequence[tuple[Any, ...]]) -> list[str]:
    return list(dict.fromkeys(row[0] for row in runs))


def _io_rows(batch: Prepared, run_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """Each run's own I/O rows, once, in the order of ``run_ids`` (how runs were inserted)."""
    return [row for run_id in run_ids for row in batch.io.get(run_id, ())]


def _insert_runs_sqlite(
    sql: Callable[[str], str],
    cur: Cursor,
    runs: Sequence[tuple[Any, ...]],
    now: int,
    chunks: Sequence[Chunk],
) -> list[str]:
    """Insert ``runs`` (sorted by ID; ``chunks``: their statements) and return the IDs
    inserted, in order, the SQLite way: rows this transaction inserts get rowids above the
    table's largest before it (no other writer can interleave), and ``total_changes()``
    says whether that was all of them. Without duplicates (the common case) that costs two
    one-row statements. ``RETURNING`` would cost a statement step per returned row, and
    ``sqlite3`` hands the GIL over and back around each step."""
    cur.execute("SELECT COALESCE(MAX(rowid), 0), total_changes() FROM runs")
    top, changes_before = cur.fetchall()[0]
    run_chunks(cur, chunks, False, False, now)
    cur.execute("SELECT total_changes()")
    if cur.fetchall()[0][0] - changes_before == len(runs):
        return [row[0] for row in runs]
    cur.execute("SELECT run_id FROM runs WHERE rowid > ? ORDER BY run_id", (top,))
    return [r[0] for r in cur.fetchall()]


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def _first_two(row: tuple[Any, ...]) -> tuple[Any, Any]:
    return row[0], row[1]
