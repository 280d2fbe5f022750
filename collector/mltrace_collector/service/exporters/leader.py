"""Which replica exports the store-derived series: one leader per index.

With several collector replicas on one PostgreSQL index, every replica would otherwise
publish the same store-derived counters and ``sum()`` in PromQL would double count. The
leader is the replica holding the session-level advisory lock ``METRICS_LOCK_KEY`` on a
dedicated connection: ``is_leader()`` tries to take it at every scrape, so when the leader
dies (its session ends, PostgreSQL releases the lock) another replica takes over at its
next scrape. SQLite (one process owns the file's collector) is always leader.

Example::

    lead = Leadership(store)
    if lead.is_leader():
        ...                           # export store-derived series
    lead.close()
"""

from __future__ import annotations

import logging
from typing import Any

from mltrace_collector.index.store.base import Store

log = logging.getLogger("mltrace_collector.metrics")

METRICS_LOCK_KEY = 0x6D6C74726D6574  # "mltrmet": distinct from the migration lock
CONNECT_TIMEOUT_S = 5


class Leadership:
    """Leader election for the exporter (see module doc). Callers serialize calls."""

    def __init__(self, store: Store) -> None:
        self.url: str | None = getattr(store, "url", None) if store.backend == "postgres" else None
        self._conn: Any = None
        self._leader = self.url is None
        self._warned = False

    def is_leader(self) -> bool:
        """True if this replica should export the store-derived series now."""
        if self.url is None:
            return True
        try:
            import psycopg

            if self._conn is None or self._conn.closed:
                self._leader = False
                self._conn = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                )
            if self._leader:
                self._conn.execute("SELECT 1")  # still our session, hence still our lock
            else:
                row = self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (METRICS_LOCK_KEY,)
                ).fetchone()
                self._leader = bool(row and row[0])
            self._warned = False
        except Exception as exc:  # the database is away: nobody can export store series
            if not self._warned:
                log.warning("metrics: leader check failed (%s); not exporting store series", exc)
                self._warned = True
            self._drop()
        return self._leader

    def _drop(self) -> None:
        self._leader = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                log.debug("closing the leader connection failed", exc_info=True)

    def close(self) -> None:
        """Give up leadership at once (another replica takes over at its next scrape;
        unlocking explicitly, as the server may see the session end a moment later).
        Idempotent."""
        if self._leader and self._conn is not None:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (METRICS_LOCK_KEY,))
            except Exception:  # the session is gone anyway, and its lock with it
                log.debug("releasing the leader lock failed", exc_info=True)
        self._drop()
        self._leader = self.url is None
