"""A ``lineage_store`` fixture: a migrated, empty store on SQLite and on a real PostgreSQL.

PostgreSQL comes from ``tests.servers`` (skipped with the reason when unavailable, failed
under ``MLTRACE_REQUIRE_POSTGRES=1``); each test gets a fresh database.

Example::

    from tests.backends import lineage_store  # noqa: F401  (fixture)

    def test_x(lineage_store: Store) -> None: ...
"""

from __future__ import annotations

from collections.abc import Iterator
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

__all__ = ["lineage_store", "postgres_server", "postgres_url"]


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
