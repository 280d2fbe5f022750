"""Open the lineage index a target names: a ``postgresql://`` URL or a SQLite file path.

Apart from ``store.base`` so that the base class does not import its own subclasses.

Example::

    store = open_store("lineage.db")          # or "postgresql://user@host/db"
"""

from __future__ import annotations

from collections.abc import Callable

from mltrace_collector.index.store.base import Store
from otel_mltrace.extras import require


def open_store(target: str, *, migrate: bool = True) -> Store:
    """A store for ``target``: a ``postgresql://`` URL or a SQLite file path."""
    store: Store
    if target.startswith(("postgresql://", "postgres://")):
        feature = "A postgresql:// store"
        require("psycopg", extra="postgres", feature=feature)
        require("psycopg_pool", extra="postgres", feature=feature)
        from mltrace_collector.index.store.postgres import PostgresStore

        store = PostgresStore(target)
    else:
        from mltrace_collector.index.store.sqlite import SqliteStore

        store = SqliteStore(target)
    if migrate:
        store.migrate()
    return store


Opener = Callable[[str], Store]
