"""The store interface and its SQL, shared by the SQLite and PostgreSQL backends.

Every statement is written once, with ``?`` placeholders (rewritten to ``%s`` for
psycopg) and values always passed as parameters. A backend supplies connections and
transactions; everything else — ingest, lookups, migrations — lives here.

Example::

    store = open_store("lineage.db")          # or "postgresql://user@host/db"
    store.ingest(decode_request(request).runs)
    store.get_run(run_id)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from importlib import resources
from typing import Any

from mltrace_collector.index.model import RecordChunk, RunRecord, RunStart
from mltrace_collector.index.store.cursor import Cursor, Row
from mltrace_collector.index.store.identity import StoredRun
from mltrace_collector.index.store.ingest_rows import Prepared, prepare
from mltrace_collector.index.store.record_owners import recheck_owners, report_dropped
from mltrace_collector.index.store.run_starts import purge_superseded
from mltrace_collector.index.store.stitch_order import BEFORE_READER, byte_order, reader_bounds
from mltrace_collector.index.store.writes import (
    RUN_COLUMNS,
    KnownArtifacts,
    WritePlan,
    plan_write,
    write_plan,
)

_R = ", ".join("r." + c.strip() for c in RUN_COLUMNS.split(","))
_JSON_COLUMNS = ("params", "metrics", "tags", "attributes")


def migrations() -> list[tuple[int, str]]:
    """``(version, sql)`` for every migration file shipped in ``store/migrations``."""
    folder = resources.files("mltrace_collector.index.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text("utf-8")))
    return sorted(found)


def split_statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _rows(cur: Cursor) -> list[Row]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _run_row(row: Row) -> Row:
    for col in _JSON_COLUMNS:
        if isinstance(row.get(col), str):
            row[col] = json.loads(row[col])
    return row


log = logging.getLogger("mltrace_collector.store")


class Store(ABC):
    """A lineage index. Thread-safe; ``ingest`` commits durably before it returns."""

    placeholder = "?"
    backend = "sql"
    concurrent_writers = False
    """Write transactions of this index can run at the same time (PostgreSQL), so the
    owner of early record chunks is checked again after each commit
    (``record_owners.recheck_owners``); SQLite writers take turns."""
    insert_or_ignore = False
    """Ingest with multi-row ``INSERT OR IGNORE`` statements built before the write lock
    (SQLite: ``writes.statement_chunks``); else row by row (``writes.insert_rows``)."""

    def __init__(self) -> None:
        self._closed = False
        self._close_lock = threading.Lock()
        self._known = KnownArtifacts()
        self._count_lock = threading.Lock()
        self.records_dropped = 0
        """Record rows this store object deleted because a duplicate run's record chunk
        spans had written them (``record_owners``): ``mltrace_records_dropped_total``."""

    # -- backend hooks ------------------------------------------------------------------
    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Cursor]:
        """A cursor inside a write transaction, committed on clean exit."""

    @abstractmethod
    def _reader(self) -> AbstractContextManager[Cursor]:
        """A cursor for reads (may run concurrently with a write)."""

    @abstractmethod
    def _close(self) -> None: ...

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    # -- lifecycle ----------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version now in force."""
        with self._transaction() as cur:
            self._lock_migrations(cur)  # first: concurrent replicas must not race on CREATE
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_ns BIGINT NOT NULL)"
            )
            cur.execute("SELECT version FROM schema_migrations")
            done = {int(r[0]) for r in cur.fetchall()}
            version = max(done, default=0)
            for number, sql in migrations():
                if number in done:
                    continue
                for statement in split_statements(sql):
                    cur.execute(statement)
                cur.execute(
                    self._sql("INSERT INTO schema_migrations (version, applied_ns) VALUES (?, ?)"),
                    (number, time.time_ns()),
                )
                version = number
        return version

    def _lock_migrations(self, cur: Cursor) -> None:  # noqa: B027 - optional hook
        """Serialize concurrent migrators (replicas starting together); no-op by default."""

    def close(self) -> None:
        """Release connections. Idempotent."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._close()

    # -- writes -------------------------------------------------------------------------
    def ingest(
        self,
        runs: Sequence[RunRecord],
        records: Sequence[RecordChunk] = (),
        starts: Sequence[RunStart] = (),
    ) -> None:
        """Store runs in one transaction. Idempotent: a run already stored is left as is.

        ``records``: chunks from record chunk spans (``RecordChunk.run_id`` set);
        ``starts``: run start records (``mltrace_collector.index.store.run_starts``).
        """
        if runs or records or starts:
            self.ingest_prepared([prepare(runs, records, starts)])

    def ingest_prepared(self, batches: Sequence[Prepared]) -> dict[str, StoredRun]:
        """Store batches made by ``ingest_rows.prepare`` (in any thread) in one transaction;
        returns the stored span of every run ID that was already stored or came twice, or
        that a record chunk span names (``isolation.reject_unstored`` tells retries from
        duplicates and foreign record chunks with it)."""
        prebuild = self._sql if self.insert_or_ignore else None
        plan = plan_write(batches, self._known, prebuild)  # before the write lock
        with self._transaction() as cur:
            written, contested = write_plan(self._sql, cur, plan, time.time_ns())
        self._known.committed(written)  # after the commit: a rolled-back row is not known
        if self.concurrent_writers:
            self._recheck(plan)
        report_dropped(plan.dropped)
        if plan.dropped:
            with self._count_lock:  # ingest may run in several threads
                self.records_dropped += sum(d.rows for d in plan.dropped)
        return contested

    def _recheck(self, plan: WritePlan) -> None:
        """After a commit where writers commit concurrently: what a concurrent commit may
        have left, in a transaction of its own (``record_owners.recheck_owners``,
        ``run_starts.purge_superseded``)."""
        starts = [row[0] for row in plan.batch.starts]
        if not (plan.indexed or plan.unowned or starts):
            return
        try:
            with self._transaction() as cur:
                dropped = []
                if plan.indexed or plan.unowned:
                    dropped = recheck_owners(self._sql, cur, plan.indexed, plan.unowned)
                purge_superseded(self._sql, cur, [*plan.indexed, *starts])
            plan.dropped += dropped  # committed: reported and counted
        except Exception as exc:  # the commit stands: say what may be left behind
            log.error(
                "re-checking the records and start records of %d run ID(s) after a commit "
                "failed (%s): records of a duplicate run, or start records of runs now "
                "stored (never shown), written concurrently may remain",
                len(set(plan.indexed) | set(plan.unowned) | set(starts)), exc,
            )  # fmt: skip

    def shared_target(self) -> str | None:
        """What another process passes to ``open_store`` to write this same index (the
        collector's ingest workers); None where that is impossible (in-memory)."""
        return None

    def coordinate_writers(self) -> None:  # noqa: B027 - optional hook
        """Take part in the cross-process writer queue of this index (SQLite; a no-op
        where the database server queues writers itself)."""

    def defer_checkpoints(self) -> None:  # noqa: B027 - optional hook
        """Leave WAL checkpoints to another connection (SQLite; else a no-op)."""

    def analyze(self) -> None:  # noqa: B027 - optional hook
        """Refresh the query planner's statistics now (after a bulk load). A no-op where the
        backend needs none; PostgreSQL's autovacuum also does it, within about a minute."""

    def write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one write statement (``?`` placeholders) per row, all in one transaction.

        For small tables that features own (e.g. the exporter's histogram bounds)."""
        if rows:
            with self._transaction() as cur:
                cur.executemany(self._sql(sql), [tuple(r) for r in rows])

    # -- reads --------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a read-only statement (``?`` placeholders) and return rows as dicts."""
        with self._reader() as cur:
            cur.execute(self._sql(sql), tuple(params))
            return _rows(cur)

    def get_run(self, run_id: str) -> Row | None:
        rows = self.query(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        return _run_row(rows[0]) if rows else None

    def find_runs(self, prefix: str, limit: int = 2) -> list[Row]:
        """Runs whose ID starts with ``prefix`` (for short IDs typed by people)."""
        upper = prefix + "\U0010ffff"
        rows = self.query(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id >= ? AND run_id < ? "
            "AND substr(run_id, 1, ?) = ? LIMIT ?",  # the range uses the index; substr is exact
            (prefix, upper, len(prefix), prefix, limit),
        )
        return [_run_row(r) for r in rows]

    def run_io(self, run_id: str) -> list[Row]:
        return self.query(
            "SELECT direction, artifact_id, uri, versioned FROM run_io WHERE run_id = ? "
            "ORDER BY direction, artifact_id",
            (run_id,),
        )

    def producers_exact(self, artifact_id: str) -> list[Row]:
        rows = self.query(
            f"SELECT {_R} FROM run_io io JOIN runs r ON r.run_id = io.run_id "
            "WHERE io.artifact_id = ? AND io.direction = 'out' "  # the same tie-break as by URI
            f"ORDER BY r.end_ns DESC, r.run_id{byte_order(self.backend)} DESC",
            (artifact_id,),
        )
        return [_run_row(r) for r in rows]

    def latest_producer_by_uri(
        self, uri: str, before_ns: int | None, reader: str | None = None
    ) -> Row | None:
        """The run that last wrote ``uri`` (any version), ended by ``before_ns`` and comes
        before ``reader`` (``stitch_order``: never ``reader`` itself, no cycle)."""
        c = byte_order(self.backend)
        rows = self.query(
            f"SELECT {_R} FROM run_io io JOIN runs r ON r.run_id = io.run_id "
            "WHERE io.uri = ? AND io.direction = 'out' AND r.end_ns <= ? "
            f"AND {BEFORE_READER.format(p='r', c=c)} ORDER BY r.end_ns DESC, r.run_id{c} DESC "
            "LIMIT 1",
            (uri, *reader_bounds(before_ns, reader)),
        )
        return _run_row(rows[0]) if rows else None

    def consumers(self, artifact_id: str, uri: str) -> list[Row]:
        """Runs that read ``artifact_id`` exactly, or read its URI unversioned."""
        rows = self.query(
            f"SELECT {_R}, io.artifact_id AS read_as FROM run_io io "
            "JOIN runs r ON r.run_id = io.run_id WHERE io.direction = 'in' AND "
            "(io.artifact_id = ? OR (io.uri = ? AND io.versioned = 0)) ORDER BY r.start_ns",
            (artifact_id, uri),
        )
        return [_run_row(r) for r in rows]

    def artifact(self, artifact_id: str) -> Row | None:
        rows = self.query(
            "SELECT artifact_id, uri, version, first_seen_ns FROM artifacts WHERE artifact_id = ?",
            (artifact_id,),
        )
        return rows[0] if rows else None

    def latest_version(self, uri: str) -> Row | None:
        """The most recently first-seen versioned artifact of ``uri``."""
        rows = self.query(
            "SELECT artifact_id, uri, version, first_seen_ns FROM artifacts "
            "WHERE uri = ? AND version IS NOT NULL ORDER BY first_seen_ns DESC LIMIT 1",
            (uri,),
        )
        return rows[0] if rows else None

    def history(
        self, component: str, since_ns: int = 0, until_ns: int = 2**62, limit: int = 50
    ) -> list[Row]:
        rows = self.query(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE component = ? AND start_ns >= ? "
            "AND start_ns <= ? ORDER BY start_ns DESC, run_id DESC LIMIT ?",
            (component, since_ns, until_ns, limit),
        )
        return [_run_row(r) for r in rows]

    def recent_runs(self, limit: int = 50, offset: int = 0) -> list[Row]:
        rows = self.query(
            f"SELECT {RUN_COLUMNS} FROM runs ORDER BY start_ns DESC, run_id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_run_row(r) for r in rows]

    def components(self) -> list[Row]:
        return self.query(
            "SELECT component, COUNT(*) AS runs, MAX(start_ns) AS last_start_ns, "
            "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS failures "
            "FROM runs GROUP BY component ORDER BY component"
        )

    def latest_runs(self) -> list[Row]:
        """The newest run of every component."""
        rows = self.query(
            f"SELECT {_R} FROM runs r JOIN (SELECT component, MAX(start_ns) AS s FROM runs "
            "GROUP BY component) m ON m.component = r.component AND m.s = r.start_ns "
            "ORDER BY r.component"
        )
        return [_run_row(r) for r in rows]

    def run_outputs(self, run_id: str) -> list[Row]:
        rows = self.query(
            "SELECT name, kind, value_count, null_count, invalid_count, value_sum, value_min, "
            "value_max, summary FROM run_outputs WHERE run_id = ? ORDER BY name",
            (run_id,),
        )
        for row in rows:
            row["summary"] = json.loads(row["summary"])
        return rows

    def counts(self) -> Row:
        rows = self.query(
            "SELECT (SELECT COUNT(*) FROM runs) AS runs, (SELECT COUNT(*) FROM artifacts) "
            "AS artifacts, (SELECT COUNT(*) FROM run_io) AS io"
        )
        return rows[0]
