"""Stitching stays acyclic on a PostgreSQL database whose collation is not byte order.

The order of runs is (start, run ID) with run IDs compared as strings, code point by code
point — Python's ``<`` (a versioned input's writers are chosen in Python) and SQLite's
``BINARY``. PostgreSQL compares text by the database's collation: with a linguistic one (the
``postgres`` Docker image's ``en_US.utf8``; here ICU ``en-US``) ``a`` sorts before ``B``,
the reverse of code point order. So SQL (an unversioned input's producer) and Python
disagreed on which of two runs at one instant came first, and two such runs could stitch
to each other after all: ``B`` read ``mem://x`` from ``a`` (SQL: ``a`` first) while ``a``
read ``s3://y@v:1`` from ``B`` (Python: ``B`` first) — ``trace`` showed a run as its own
ancestor. Run IDs are compared byte-wise (``COLLATE "C"``) on PostgreSQL now.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from psycopg import sql

from mltrace_collector.index.store import open_store
from tests.servers.postgres import PostgresServer
from tests.test_lineage_edge_order import edges
from tests.test_stitching_acyclic import T, cli, ingest, otlp, producers

RUNS = {  # "B" < "a" in code points; "a" < "B" in en-US
    "B": (T, T, ["mem://x"], ["s3://y@v:1"]),
    "a": (T, T, ["s3://y@v:1"], ["mem://x"]),
}


@pytest.fixture
def icu_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A migrated, empty index in a database collated by ICU ``en-US``."""
    name = f"icu_{uuid.uuid4().hex[:12]}"
    try:
        postgres_server._admin(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                "LOCALE 'C.UTF-8'"
            ).format(sql.Identifier(name))
        )
    except Exception as exc:  # PostgreSQL < 15 or built without ICU
        pytest.skip(f"no ICU-collated database on this PostgreSQL: {exc}")
    url = postgres_server.url(name)
    open_store(url).close()
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


def test_runs_at_one_instant_stitch_one_way_whatever_the_collation(icu_database: str) -> None:
    ingest(icu_database, otlp(RUNS))
    assert producers(cli(icu_database, "trace", "a")) == {"a": {"B"}, "B": set()}
    assert producers(cli(icu_database, "trace", "B")) == {"B": set()}
    inspected = cli(icu_database, "inspect", "B")["inputs"]
    assert [i["producer_run_id"] for i in inspected] == [None]
    assert edges(icu_database) == {("step_B", "step_a")}
