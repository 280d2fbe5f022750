"""A ``lineage_store`` fixture: a migrated, empty store on SQLite and on a real PostgreSQL.

PostgreSQL comes from ``tests.servers`` (skipped with the reason when unavailable, failed
under ``MLTRACE_REQUIRE_POSTGRES=1``); each test gets a fresh database.

Example::

    from tests.backends import lineage_store  # noqa: F401  (fixture)

    def test_x(lineage_store: Store) -> None: ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mltrace_collector.index.store import Store, open_store

try:
    from tests.servers.fixtures import postgres_server, postgres_url
except ModuleNotFoundError:  # repo root not on sys.path: pytest put tests/ there instead
    from servers.fixtures import (  # type: ignore[import-not-found,no-redef]
        postgres_server,
        postgres_url,
    )

__all__ = ["backend_database", "lineage_store", "postgres_server", "postgres_url", "target"]


@pytest.fixture(params=["sqlite", "postgres"])
def lineage_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store of each backend; closed after the test."""
    target = str(tmp_path / "lineage.db")
    if request.param == "postgres":
        target = request.getfixturevalue("postgres_url")
    store = open_store(target)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def backend_database(request: pytest.FixtureRequest, sqlite_path: Path) -> Iterator[str]:
    """The database of a ``sqlite``/``postgres``-parametrised fixture: ``sqlite_path``, or a
    new database on the session's PostgreSQL server, dropped on exit.

    Example::

        with backend_database(request, tmp_path / "lineage.db") as target:
            store = open_store(target)
    """
    if request.param != "postgres":
        yield str(sqlite_path)
        return
    pg = request.getfixturevalue("postgres_server")
    target: str = pg.create_database()
    try:
        yield target
    finally:
        pg.drop_database(target.rsplit("/", 1)[1])


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty index of each backend, as what ``open_store`` / ``--db`` take: a
    SQLite path, or a new database on the session's PostgreSQL server (dropped after)."""
    with backend_database(request, tmp_path / "index.db") as database:
        yield database
