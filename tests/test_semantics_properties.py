"""docs/semantics.md, checked: the real queries equal the reference model on random pipelines.

``tests/lineage_model.py`` implements the rules naively; ``tests/semantics_check.py``
generates pipelines (fan-in/out, re-runs, variants, versioned and unversioned URIs,
overwrites, stable record keys across versions, flags, duplicate runs with record chunk
spans of their own, zero-length runs at one instant, reads of versions only a later run
writes), ingests their spans in random order with retries, checks that the stitch graph
(each input's producer, as the index looks it up) has no cycle, and compares ``trace``,
``downstream``, ``stale``, record ``trace`` and ``review`` with the model —
``EXAMPLES`` pipelines per backend (SQLite file, real PostgreSQL; every table emptied
before each example). A longer run: ``scripts/semantics_soak.py``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from mltrace_collector.index.queries import record_scope
from mltrace_collector.index.queries import stale as stale_module
from mltrace_collector.index.store import Store, graph_reads, open_store
from tests import backends
from tests.lineage_model import MRun
from tests.semantics_check import NOW, Pipeline, check_against_model, pipelines

postgres_server = backends.postgres_server  # session fixture: one server for every example

EXAMPLES = 60
"""Pipelines per backend in the test command (each is ingested and queried in full)."""


def emptied(store: Store) -> Store:
    """``store`` with every table but ``schema_migrations`` emptied: the state of a freshly
    migrated database, without paying CREATE DATABASE + migrations per example."""
    tables = [
        r["name"]
        for r in store.query(
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
            if store.placeholder != "?"
            else "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        if r["name"] != "schema_migrations"
    ]
    with store._transaction() as cur:
        for table in tables:
            cur.execute(f'DELETE FROM "{table}"')  # noqa: S608 - names from the catalog
    return store


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """A function giving an empty, migrated store: one database per test (a real
    PostgreSQL from the session server, or a SQLite file), emptied for each example and
    opened anew (a store caches what it wrote, so it must not outlive the rows)."""
    opened: list[Store] = []
    with backends.backend_database(request, tmp_path / "lineage.db") as target:

        def make() -> Store:
            while opened:
                opened.pop().close()
            opened.append(emptied(open_store(target)))
            return opened[-1]

        try:
            yield make
        finally:
            while opened:
                opened.pop().close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pipeline=pipelines())
def test_queries_equal_the_reference_model(fresh: Callable[[], Store], pipeline: Pipeline) -> None:
    check_against_model(fresh(), pipeline, random.Random(len(pipeline.runs)))


def test_a_run_writing_one_uri_twice_counts_its_largest_id(fresh: Callable[[], Store]) -> None:
    """Found by ``scripts/semantics_soak.py --examples 1000``: r1 writes ``o@v:1``; r2 reads
    it and writes ``o`` (unversioned) *and* ``o@v:1``. The index took r2's largest ID as the
    newest version of ``o`` (so r1 stays live), the model its first-declared one (so r1 was
    not live): docs/semantics.md now says the largest artifact ID counts, as in the index."""
    runs = [
        MRun("r1", "ingest", 1000, 1000, (), ("o@v:1",)),
        MRun("r2", "ingest", 2000, 2000, ("o@v:1",), ("o", "o@v:1")),
    ]
    check_against_model(fresh(), Pipeline(runs, [], older_than_ns=NOW), random.Random(2))


def _overwritten_unversioned() -> Pipeline:
    """r1 writes mem://v/out; r2 reads it; r3 overwrites it: r2 is stale."""
    runs = [
        MRun("r1", "make", 1000, 1100, (), ("mem://v/out",)),
        MRun("r2", "use", 2000, 2100, ("mem://v/out",), ("use/o@v:1",)),
        MRun("r3", "make", 3000, 3100, (), ("mem://v/out",)),
    ]
    return Pipeline(runs, [], older_than_ns=NOW)


def test_a_mutated_rule_is_caught_by_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break one rule (only versioned inputs can have a newer version, the old behaviour)
    and the comparison with the model fails; restored, it passes."""
    pipeline = _overwritten_unversioned()
    store = open_store(str(tmp_path / "ok.db"))
    check_against_model(store, pipeline, random.Random(0))
    store.close()

    original = stale_module.StaleIndex.newer_version_reason

    def versioned_only(
        self: stale_module.StaleIndex, run_id: str, aid: str, uri: str, versioned: bool
    ) -> str | None:
        return original(self, run_id, aid, uri, versioned) if versioned else None

    monkeypatch.setattr(stale_module.StaleIndex, "newer_version_reason", versioned_only)
    store = open_store(str(tmp_path / "mutant.db"))
    with pytest.raises(AssertionError, match="stale"):
        check_against_model(store, pipeline, random.Random(0))
    store.close()


def test_the_acyclic_property_catches_the_old_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stitching without the (start, run ID) order (any writer but the reader itself, the
    old rule) makes two zero-length in-place updates at one instant each other's producer:
    the property (``semantics_check.check_acyclic``, on the real producer lookups) names the
    cycle. Hypothesis found this pipeline against the old code, shrunk."""
    runs = [
        MRun("r00", "ingest", 1000, 1000, ("raw/a@v:1",), ("ingest/o0", "raw/a@v:1")),
        MRun("r01", "ingest", 1000, 1000, ("raw/a@v:1",), ("raw/a@v:1",)),
    ]
    pipeline = Pipeline(runs, [], older_than_ns=NOW)
    store = open_store(str(tmp_path / "ok.db"))
    check_against_model(store, pipeline, random.Random(0))
    store.close()

    def any_but_itself(
        start: int, run_id: str, reader_start: int | None, reader: str | None
    ) -> bool:
        return run_id != reader

    monkeypatch.setattr(graph_reads, "comes_before", any_but_itself)
    store = open_store(str(tmp_path / "mutant.db"))
    with pytest.raises(AssertionError, match=r"cycle: r0\d <- r0\d <- r0\d"):
        check_against_model(store, pipeline, random.Random(0))
    store.close()


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pipeline=pipelines())
def test_chunked_record_set_lookups_agree_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipeline: Pipeline
) -> None:
    """Record-set lookups split into many statements (a run reading more record sets than
    one statement may list) give the same answers."""
    monkeypatch.setattr(record_scope, "MAX_PARAMS", 2)  # one set per statement
    store = open_store(str(tmp_path / f"fan-in-{uuid.uuid4().hex}.db"))
    try:
        check_against_model(store, pipeline, random.Random(1))
    finally:
        store.close()
