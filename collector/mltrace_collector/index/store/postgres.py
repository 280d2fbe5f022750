"""PostgreSQL backend: the shared index of N stateless collector replicas.

All SQL lives in ``base.Store`` (``?`` rewritten to ``%s``); this module only supplies
connections. Two ``psycopg_pool`` pools: writers run one explicit transaction per
``ingest`` (committed, hence durable under the default ``synchronous_commit = on``,
before ``ingest`` returns, so the collector may acknowledge the OTLP export); readers
run in autocommit on sessions with ``default_transaction_read_only`` so that
``Store.query`` cannot write. ``migrate`` takes a transaction-scoped advisory lock so
replicas starting together apply each migration once.

Example::

    store = PostgresStore("postgresql://mltrace:secret@db:5432/lineage", max_size=16)
    store.migrate()
    store.ingest(runs)
    store.close()
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.cursor import Cursor

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x6D6C7472616365  # "mltrace" in ASCII: one advisory lock for the schema
"""``pg_advisory_xact_lock`` key held while migrating (any other app must avoid it)."""

CONNECT_TIMEOUT_S = 10.0
"""How long ``PostgresStore()`` waits for the server before failing with a clear error."""


def describe_url(url: str) -> str:
    """``user@host:port/dbname`` of a libpq URL or DSN, without the password.

    >>> describe_url("postgresql://bob:s3cret@db.internal:5433/lineage?sslmode=require")
    'bob@db.internal:5433/lineage'
    """
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable PostgreSQL URL>"
    user = str(parts.get("user") or "")
    host = str(parts.get("host") or parts.get("hostaddr") or "<default socket>")
    port = str(parts.get("port") or 5432)
    db = str(parts.get("dbname") or user)
    return f"{user + '@' if user else ''}{host}:{port}/{db}"


class PostgresStore(Store):
    """A lineage index in a PostgreSQL database (12 or newer; tested on 15).

    ``min_size``/``max_size`` bound each of the two pools (writers, readers). The
    constructor waits up to ``connect_timeout`` seconds for the server and raises
    ``ConnectionError`` naming ``user@host:port/db`` (never the password) if it is
    unreachable.

    Example::

        store = PostgresStore("postgresql://postgres@127.0.0.1:5432/lineage")
        store.migrate()                      # safe from several replicas at once
        store.get_run("0190c2a1-...")
    """

    placeholder = "%s"
    backend = "postgres"
    concurrent_writers = True
    # Ingest row by row (insert_or_ignore stays False): psycopg converts placeholders in
    # Python and caches only short statements, so a long multi-row INSERT is re-parsed on
    # every call; executemany pipelines single-row ones.

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.url = url
        self.where = describe_url(url)
        self._writers = self._pool("writer", {"autocommit": True}, min_size, max_size)
        # Autocommit reads: one round trip per query, each statement its own snapshot.
        read_only: dict[str, Any] = {
            "autocommit": True,
            "options": "-c default_transaction_read_only=on",
        }
        self._readers = self._pool("reader", read_only, min_size, max_size)
        try:
            self._writers.wait(timeout=connect_timeout)
            self._readers.wait(timeout=connect_timeout)
        except PoolTimeout as exc:
            self._close()
            raise ConnectionError(
                f"cannot connect to PostgreSQL at {self.where} within {connect_timeout:g}s: "
                "check that the server is up and the URL (host, port, database, user, "
                "password) is right"
            ) from exc
        self._check_durability()

    def _pool(
        self, role: str, kwargs: dict[str, Any], min_size: int, max_size: int
    ) -> ConnectionPool[psycopg.Connection[Any]]:
        return ConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            open=True,
            name=f"mltrace-{role}",
            timeout=60.0,  # waiting for a free connection under load
        )

    def _check_durability(self) -> None:
        with self._reader() as cur:
            cur.execute("SHOW synchronous_commit")
            setting = cur.fetchall()[0][0]
        if setting == "off":
            log.warning(
                "PostgreSQL at %s has synchronous_commit=off: a crash may lose batches that "
                "the collector already acknowledged",
                self.where,
            )

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        with self._writers.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextmanager
    def _reader(self) -> Iterator[Cursor]:
        with self._readers.connection() as conn, conn.cursor() as cur:
            yield cur

    def migrate(self) -> int:
        """Apply pending migrations (see ``Store.migrate``); safe from concurrent replicas.

        ``Store.migrate`` creates ``schema_migrations`` *before* taking the advisory lock:
        two brand-new replicas racing on an empty database may both try to create it, and
        the loser gets a catalog unique violation. Its retry finds the table and waits on
        the lock, so the race costs one retry, never a failed start.
        """
        for attempt in range(3):
            try:
                return super().migrate()
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                if attempt == 2:
                    raise
                log.info("concurrent first migration of %s: retrying", self.where)
        raise AssertionError("unreachable")

    def _lock_migrations(self, cur: Cursor) -> None:
        cur.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")

    def shared_target(self) -> str | None:
        return self.url

    def analyze(self) -> None:
        """``ANALYZE`` the lineage tables. Without statistics (a freshly bulk-loaded index,
        before autovacuum's first pass) the planner joins ``run_io`` by full scans inside
        the recursive lineage walks: a 100-run chain took ~68 ms instead of ~8 ms."""
        with self._transaction() as cur:
            for table in ("runs", "run_io", "artifacts"):
                cur.execute(f"ANALYZE {table}")

    def _close(self) -> None:
        self._writers.close()
        self._readers.close()
