"""What the store's helper modules need of a database: a DB-API cursor and a store to read.

The lowest module of the store package: ``base.Store`` implements :class:`StoreAccess`,
the row builders and readers (``writes``, ``identity``, ``extras``, ``graph_reads``, the
index's ``lineage_walk`` and ``run_starts``) are typed against these protocols, so none of
them imports ``base`` and ``base`` can import them.

Example::

    def count_runs(store: StoreAccess) -> int:
        return int(store.query("SELECT COUNT(*) AS n FROM runs")[0]["n"])
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Row = dict[str, Any]


class Cursor(Protocol):
    """The part of a DB-API cursor (sqlite3, psycopg) the store uses."""

    @property
    def description(self) -> Any: ...
    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class StoreAccess(Protocol):
    """The part of ``store.base.Store`` its helper modules read and write through."""

    backend: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    def _sql(self, sql: str) -> str: ...
    def _transaction(self) -> AbstractContextManager[Cursor]: ...
