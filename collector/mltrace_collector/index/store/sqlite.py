"""SQLite backend: WAL, one writer connection, a read connection per thread.

Every commit is durable before ``ingest`` returns, which is what lets the collector
acknowledge an OTLP export right after it: ``synchronous=FULL`` syncs the WAL inside the
commit; writers that queue on the writers' lock (``coordinate_writers``) commit with
``synchronous=NORMAL`` and sync the WAL themselves right after releasing the lock, so the
next writer does not wait for their disk flush. Several processes may write the same file
(the embedded index of a pipeline whose steps run as separate processes): writers wait
on SQLite's lock up to ``busy_timeout``.

Example::

    store = SqliteStore("/tmp/lineage.db"); store.migrate()
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.cursor import Cursor
from mltrace_collector.index.store.writes import MAX_PARAMS

BUSY_TIMEOUT_MS = 30_000
PAGE_SIZE = 16_384
"""Page size of a new index file (an existing file keeps its own). Ingest dirties one page
per index insert at a random key; with 16 KiB pages a group commit dirties fewer pages
per row and the B-trees are shallower: ~15% less writer CPU than 4 KiB at 150k runs."""
FALLBACK_AUTOCHECKPOINT_PAGES = 16_384
"""The writer's own checkpoint bound (256 MiB of 16 KiB pages) while a background thread
checkpoints (``checkpoint_in_background``)."""
WAL_RESTART_BYTES = 512 * 1024 * 1024
WRITER_CACHE_KIB = 65_536
"""Page cache of the writer connection: index pages of a large index stay in memory, so
random-key index inserts (artifact IDs) do not re-read pages from the OS on every batch."""
SQLITE_LIMIT_VARIABLE_NUMBER = 9  # sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER (Python 3.11+)


class SqliteStore(Store):
    """A lineage index in one SQLite file."""

    backend = "sqlite"
    insert_or_ignore = True

    def __init__(self, path: str) -> None:
        super().__init__()
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            path = str(Path(path).expanduser())
        self.path = path
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        # Connection.getlimit is Python 3.11+; on 3.10 assume SQLite's default (32766 since 3.32)
        getlimit = getattr(self._writer, "getlimit", None)
        limit = getlimit(SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else 32766
        if limit < MAX_PARAMS or sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} allows {limit} parameters per statement; "
                f"otel-mltrace needs SQLite >= 3.35 built with at least {MAX_PARAMS} "
                "(the default): install a newer libsqlite3 or use PostgreSQL"
            )
        self._writer.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._writers_lock: int | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # no-op unless the file is new
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def shared_target(self) -> str | None:
        return None if self.path == ":memory:" else self.path

    def coordinate_writers(self) -> None:
        """Queue this store's write transactions with those of other processes that called
        it on the same file (the collector and its ingest workers) on an ``flock(2)`` of
        ``<file>-writers.lock``: SQLite alone makes a waiting writer poll (sleeps of 1 to
        100 ms), the kernel lock wakes the next writer as soon as the lock is free, and is
        dropped with a process that dies. Other writers (the SDK) still just poll."""
        if self.path != ":memory:" and self._writers_lock is None:
            self._writers_lock = os.open(self.path + "-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)
            # Durable all the same: _transaction syncs the WAL before it returns. Frames of
            # this commit that a checkpoint moved on meanwhile were synced by it (a
            # checkpoint syncs the WAL before and the database after copying).
            self._writer.execute("PRAGMA synchronous = NORMAL")

    def _sync_wal(self) -> None:
        try:
            fd = os.open(self.path + "-wal", os.O_RDONLY)
        except FileNotFoundError:  # checkpointed and removed: the database file holds it
            fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def defer_checkpoints(self) -> None:
        """Leave WAL checkpoints to another connection (``checkpoint_in_background`` in
        this or another process); this writer only checkpoints past a high bound."""
        self._writer.execute(f"PRAGMA wal_autocheckpoint = {FALLBACK_AUTOCHECKPOINT_PAGES}")

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        with self._write_lock:
            if self._writers_lock is not None:
                fcntl.flock(self._writers_lock, fcntl.LOCK_EX)
            cur = self._writer.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                else:
                    cur.execute("COMMIT")
            finally:
                cur.close()
                if self._writers_lock is not None:
                    fcntl.flock(self._writers_lock, fcntl.LOCK_UN)
            if self._writers_lock is not None:
                self._sync_wal()  # after the lock: the next writer need not wait for it

    @contextmanager
    def _reader(self) -> Iterator[Cursor]:
        if self.path == ":memory:":  # one shared connection: the in-memory DB is per connection
            with self._write_lock:
                cur = self._writer.cursor()
                try:
                    yield cur
                finally:
                    cur.close()
            return
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        cur = conn.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def checkpoint_in_background(self, interval_s: float = 1.0) -> None:
        """Move WAL checkpoints off the writer: a thread with its own connection copies
        committed pages into the database file every ``interval_s`` (PASSIVE: it never
        blocks the writer or readers), so a commit only appends to the WAL and syncs it.
        Copying and syncing pages in the committing thread cost the single writer ~10% of
        its time. Every 1 s rather than more often: index pages that several commits touch
        are copied once (collector CPU 8-18 -> 6-12 us/span in bench_ingest). If the WAL
        still outgrows ``WAL_RESTART_BYTES`` (the checkpoint could not catch up) the thread
        restarts it, briefly holding writers back. The writer's own auto-checkpoint stays
        on, at a higher bound, as the fallback. For the collector; the SDK's short-lived
        writers keep SQLite's default."""
        if self.path == ":memory:" or self._checkpointer is not None:
            return
        self.defer_checkpoints()
        conn = self._connect()
        wal = Path(self.path + "-wal")

        def loop() -> None:
            while not self._stop_checkpoints.wait(interval_s):
                try:
                    big = wal.exists() and wal.stat().st_size > WAL_RESTART_BYTES
                    conn.execute(f"PRAGMA wal_checkpoint({'RESTART' if big else 'PASSIVE'})")
                except sqlite3.Error:  # busy or closing: the next round tries again
                    continue
            conn.close()

        self._checkpointer = threading.Thread(target=loop, name="mltrace-checkpoint", daemon=True)
        self._checkpointer.start()

    def _close(self) -> None:
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join(30)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()
            if self._writers_lock is not None:
                os.close(self._writers_lock)
                self._writers_lock = None
