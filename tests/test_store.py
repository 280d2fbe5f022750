"""The lineage store: the same assertions against SQLite and a real PostgreSQL server.

``store`` is a migrated, empty store of each backend (PostgreSQL: one migrated database
per session, truncated before every test); ``target`` is a fresh, unmigrated SQLite path
or PostgreSQL URL for tests that open stores themselves (migrations, concurrency).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mltrace_collector.index.model import OutputRecord, RunRecord
from mltrace_collector.index.store import Store, open_store
from mltrace_collector.index.store.base import migrations
from mltrace_collector.index.store.postgres import PostgresStore, describe_url
from tests.servers.ports import free_port
from tests.servers.postgres import PostgresServer

BACKENDS = ["sqlite", "postgres"]
LATEST = max(version for version, _ in migrations())
HOSTILE = [
    'it\'s "quoted"',
    "100% of %s and %(x)s",
    "a; DROP TABLE runs; --",
    "line1\nline2\r\ttab",
    "' OR 1=1 --",
    "ünïcødé ✓ 数据 🚀 \U0010fffe",
    "back\\slash ? ?? $1",
]


def run(
    run_id: str,
    *,
    component: str = "train",
    start: int = 1_000,
    end: int | None = None,
    inputs: tuple[str, ...] = (),
    outputs: tuple[str, ...] = (),
    status: str = "ok",
    **extra: Any,
) -> RunRecord:
    """A RunRecord with defaults for everything a test does not care about."""
    return RunRecord(
        run_id=run_id, component=component, trace_id="t" * 32, span_id=run_id[-16:].rjust(16, "0"),
        parent_span_id=None, service="svc", start_ns=start,
        end_ns=start + 100 if end is None else end, status=status, status_message=None,
        inputs=inputs, outputs=outputs, **extra,
    )  # fmt: skip


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["run_id"] for r in rows]


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_lineage_url(postgres_server: PostgresServer) -> str:
    """One migrated database for the session (tables truncated per test by ``store``)."""
    url = postgres_server.create_database("lineage_shared")
    open_store(url).close()
    return url


@pytest.fixture(scope="session")
def pg_shared_store(pg_lineage_url: str) -> Iterator[Store]:
    store = PostgresStore(pg_lineage_url)
    yield store
    store.close()


def _truncate_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'schema_migrations'"
        )]  # fmt: skip
        if tables:
            conn.execute(psycopg.sql.SQL("TRUNCATE {}").format(
                psycopg.sql.SQL(", ").join(psycopg.sql.Identifier(t) for t in tables)
            ))  # fmt: skip


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store of each backend."""
    if request.param == "sqlite":
        sqlite = open_store(str(tmp_path / "lineage.db"))
        yield sqlite
        sqlite.close()
        return
    _truncate_all(request.getfixturevalue("pg_lineage_url"))
    pg: Store = request.getfixturevalue("pg_shared_store")
    yield pg


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, unmigrated SQLite path or PostgreSQL database URL."""
    if request.param == "sqlite":
        return str(tmp_path / "fresh.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def opener(target: str) -> Iterator[Callable[[], Store]]:
    """Opens (unmigrated) stores on ``target``; all closed after the test."""
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(open_store(target, migrate=False))
        return opened[-1]

    yield open_one
    for s in opened:
        s.close()


# -- migrations -------------------------------------------------------------------------
def test_migrate_is_idempotent(opener: Callable[[], Store]) -> None:
    first = opener()
    assert first.migrate() == LATEST
    assert first.migrate() == LATEST
    assert opener().migrate() == LATEST  # another instance (a restarted replica): a no-op
    applied = first.query("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in applied] == [v for v, _ in migrations()]
    assert first.counts() == {"runs": 0, "artifacts": 0, "io": 0}


def in_threads(work: Callable[..., Any], args: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``work(*a)`` for every ``a`` in its own thread, all released together; returns
    the results, with any exception raised in a thread re-raised here."""
    barrier = threading.Barrier(len(args))
    out: list[Any] = [None] * len(args)

    def one(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(*args[i])
        except BaseException as exc:  # re-raised in the test's thread below
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for result in out:
        if isinstance(result, BaseException):
            raise result
    return out


def test_concurrent_migrate_applies_once(opener: Callable[[], Store]) -> None:
    stores = [opener() for _ in range(4)]
    assert in_threads(lambda s: s.migrate(), [(s,) for s in stores]) == [LATEST] * 4
    applied = stores[0].query("SELECT COUNT(*) AS n FROM schema_migrations")
    assert applied == [{"n": len(migrations())}]
    stores[1].ingest([run("r1", outputs=("a",))])
    assert stores[2].counts() == {"runs": 1, "artifacts": 1, "io": 1}


# -- writes and round trips -------------------------------------------------------------
def test_roundtrip(store: Store) -> None:
    record = run(
        "r1", inputs=("s3://b/raw.csv@sha256:aa", "s3://b/conf"), outputs=("file:///m.pkl",),
        params={"lr": 0.1, "layers": [64, 32], "name": "x", "flag": True, "none": None},
        metrics={"acc": 0.93, "loss": 1e-9}, tags=("nightly", "gpu"),
        attributes={"mltrace.component": "train", "nested": {"k": [1, 2.5, "s"]}},
        code_revision="abc123", code_file="train.py",
    )  # fmt: skip
    store.ingest([record])
    got = store.get_run("r1")
    assert got is not None
    assert got["params"] == record.params and got["metrics"] == record.metrics
    assert got["tags"] == ["nightly", "gpu"] and got["attributes"] == record.attributes
    assert (got["component"], got["start_ns"], got["end_ns"]) == ("train", 1000, 1100)
    assert (got["n_inputs"], got["n_outputs"], got["code_revision"]) == (2, 1, "abc123")
    assert got["parent_span_id"] is None and got["status"] == "ok"
    assert store.run_io("r1") == [
        {"direction": "in", "artifact_id": "s3://b/conf", "uri": "s3://b/conf", "versioned": 0},
        {"direction": "in", "artifact_id": "s3://b/raw.csv@sha256:aa", "uri": "s3://b/raw.csv",
         "versioned": 1},
        {"direction": "out", "artifact_id": "file:///m.pkl", "uri": "file:///m.pkl",
         "versioned": 0},
    ]  # fmt: skip
    assert store.artifact("s3://b/raw.csv@sha256:aa") == {
        "artifact_id": "s3://b/raw.csv@sha256:aa", "uri": "s3://b/raw.csv",
        "version": "sha256:aa", "first_seen_ns": 1000,
    }  # fmt: skip
    assert store.get_run("nope") is None and store.artifact("nope") is None
    store.ingest([])  # no-op


def test_find_runs_by_prefix(store: Store) -> None:
    store.ingest([run(i) for i in ("abc1", "abc2", "abd", "ab", "xabc", "abc\U0010fffd")])
    assert sorted(ids(store.find_runs("abc", limit=10))) == ["abc1", "abc2", "abc\U0010fffd"]
    assert len(store.find_runs("abc")) == 2  # default limit: enough to detect ambiguity
    assert ids(store.find_runs("abd")) == ["abd"] and store.find_runs("zz") == []


def test_duplicate_ingest_adds_nothing(store: Store) -> None:
    batch = [run("r1", inputs=("a", "b@sha256:01"), outputs=("c",)), run("r2", inputs=("c",))]
    store.ingest(batch)
    before = store.counts()
    first = store.get_run("r1")
    store.ingest(batch)  # an OTLP retry
    store.ingest(list(reversed(batch)) + [batch[0]])  # reordered, duplicated within a batch
    assert before == {"runs": 2, "artifacts": 3, "io": 4} and store.counts() == before
    assert store.get_run("r1") == first  # the first arrival wins, ingested_ns included


def test_concurrent_overlapping_ingest(opener: Callable[[], Store]) -> None:
    """Replicas ingesting overlapping batches concurrently: no deadlock, no duplicates."""
    stores = [opener() for _ in range(3)]
    stores[0].migrate()
    batches = [
        [run(f"r{i:03d}", inputs=(f"in{i % 7}", "shared"), outputs=(f"o{i}",)) for i in rng]
        for rng in (range(0, 60), range(30, 90), range(59, -1, -1))
    ]

    def work(s: Store, batch: list[RunRecord]) -> None:
        for i in range(0, len(batch), 10):
            s.ingest(batch[i : i + 10])

    in_threads(work, list(zip(stores, batches, strict=True)))
    assert stores[1].counts() == {"runs": 90, "artifacts": 7 + 1 + 90, "io": 270}


# -- lineage lookups --------------------------------------------------------------------
def test_producers_exact(store: Store) -> None:
    store.ingest([
        run("p1", end=200, outputs=("m@sha256:01",)), run("p2", end=300, outputs=("m@sha256:01",)),
        run("p3", end=400, outputs=("m@sha256:02",)), run("c1", inputs=("m@sha256:01",)),
    ])  # fmt: skip
    assert ids(store.producers_exact("m@sha256:01")) == ["p2", "p1"]  # newest end first
    assert store.producers_exact("m") == []


def test_latest_producer_by_uri_uses_end_time(store: Store) -> None:
    store.ingest([
        run("p1", start=0, end=100, outputs=("t@sha256:01",)),
        run("p2", start=50, end=200, outputs=("t",)),
        run("p3", start=60, end=300, outputs=("t@sha256:03",)),
        run("other", start=0, end=250, outputs=("t2",)),
    ])  # fmt: skip

    def latest(bound: int | None) -> str | None:
        row = store.latest_producer_by_uri("t", bound)
        return None if row is None else str(row["run_id"])

    assert [latest(b) for b in (250, 200, 199, 100, 99, None)] == [
        "p2", "p2", "p1", "p1", None, "p3",
    ]  # fmt: skip
    assert store.latest_producer_by_uri("missing", None) is None


def test_consumers_exact_and_unversioned(store: Store) -> None:
    store.ingest([
        run("c3", start=300, inputs=("d",)), run("c1", start=100, inputs=("d@sha256:aa",)),
        run("c2", start=200, inputs=("d@sha256:bb",)), run("p", start=50, outputs=("d@sha256:aa",)),
    ])  # fmt: skip
    rows = store.consumers("d@sha256:aa", "d")
    assert [(r["run_id"], r["read_as"]) for r in rows] == [("c1", "d@sha256:aa"), ("c3", "d")]
    assert ids(store.consumers("d", "d")) == ["c3"]


def test_first_seen_is_min_in_any_arrival_order(store: Store) -> None:
    for n, order in enumerate(itertools.permutations(range(3))):
        aid = f"x{n}@sha256:ff"
        arrivals = [
            run(f"{n}-reader", start=500, inputs=(aid,)),  # seen at its start: 500
            run(f"{n}-writer", start=100, end=300, outputs=(aid,)),  # seen at its end: 300
            run(f"{n}-late", start=400, inputs=(aid,)),
        ]
        for i in order:
            store.ingest([arrivals[i]])
        row = store.artifact(aid)
        assert row is not None and row["first_seen_ns"] == 300, order


def test_latest_version(store: Store) -> None:
    store.ingest([
        run("a", start=100, inputs=("u@sha256:01",)), run("b", start=200, inputs=("u@sha256:02",)),
        run("c", start=300, inputs=("u",)), run("d", start=50, inputs=("u@sha256:00",)),
    ])  # fmt: skip
    latest = store.latest_version("u")
    assert latest is not None and (latest["version"], latest["first_seen_ns"]) == ("sha256:02", 200)
    assert store.latest_version("v") is None


def test_history(store: Store) -> None:
    store.ingest([run(f"t{i:02d}", start=i * 10) for i in range(1, 11)])
    store.ingest([run("e1", component="eval", start=55)])
    assert ids(store.history("train", limit=3)) == ["t10", "t09", "t08"]
    assert ids(store.history("train", since_ns=30, until_ns=50)) == ["t05", "t04", "t03"]
    assert store.history("nope") == [] and len(store.history("train")) == 10


def test_recent_runs_paging(store: Store) -> None:
    store.ingest([run(f"r{i:02d}", start=i // 2) for i in range(25)])  # pairs share a start
    pages = [ids(store.recent_runs(limit=10, offset=o)) for o in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    flat = list(itertools.chain(*pages))
    assert flat == [f"r{i:02d}" for i in range(24, -1, -1)]  # start desc, then run_id desc


def test_components_and_latest_runs(store: Store) -> None:
    store.ingest([
        run("a1", component="clean", start=10), run("a2", component="clean", start=30),
        run("b1", component="train", start=20, status="error"),
        run("b2", component="train", start=40), run("b3", component="train", start=5),
    ])  # fmt: skip
    comps = store.components()
    assert comps == [
        {"component": "clean", "runs": 2, "last_start_ns": 30, "failures": 0},
        {"component": "train", "runs": 3, "last_start_ns": 40, "failures": 1},
    ]
    assert all(type(v) is int for c in comps for k, v in c.items() if k != "component")
    assert ids(store.latest_runs()) == ["a2", "b2"]


def test_run_outputs(store: Store) -> None:
    summary = {"scale": 3, "positive": {"offset": -2, "counts": [1, 0, 4]}, "top": {"a": 2}}
    outs = (
        OutputRecord("pred", "numeric", 5, 1, 0, 12.5, -1.0, 9.75, summary),
        OutputRecord("label", "categorical", 3, 0, 2, None, None, None, {"values": {"x": 3}}),
    )
    store.ingest([run("r1", output_summaries=outs)])
    rows = store.run_outputs("r1")
    assert [r["name"] for r in rows] == ["label", "pred"]
    assert rows[1] == {
        "name": "pred", "kind": "numeric", "value_count": 5, "null_count": 1,
        "invalid_count": 0, "value_sum": 12.5, "value_min": -1.0, "value_max": 9.75,
        "summary": summary,
    }  # fmt: skip
    assert rows[0]["value_sum"] is None and rows[0]["summary"] == {"values": {"x": 3}}
    assert store.run_outputs("nope") == []


# -- hostile input and scale ------------------------------------------------------------
def test_hostile_strings_are_stored_verbatim(store: Store) -> None:
    for n, text in enumerate(HOSTILE):
        aid = f"s3://b/{text}@sha256:{n:02x}"
        producer_run = run(
            f"{text}-p", component=text, outputs=(aid, text), params={text: text}, tags=(text,)
        )
        store.ingest([producer_run, run(f"{text}-c", component=text, start=5_000, inputs=(aid,))])
        got = store.get_run(f"{text}-p")
        assert got is not None and got["component"] == text
        assert got["params"] == {text: text} and got["tags"] == [text]
        assert ids(store.producers_exact(aid)) == [f"{text}-p"]
        assert ids(store.consumers(aid, f"s3://b/{text}")) == [f"{text}-c"]
        producer = store.latest_producer_by_uri(text, None)
        assert producer is not None and producer["run_id"] == f"{text}-p"
        row = store.artifact(aid)
        assert row is not None and row["uri"] == f"s3://b/{text}"
        assert sorted(ids(store.find_runs(text, limit=5))) == [f"{text}-c", f"{text}-p"]
        assert ids(store.history(text)) == [f"{text}-c", f"{text}-p"]
    assert store.counts() == {"runs": 14, "artifacts": 14, "io": 21}
    assert store.query("SELECT COUNT(*) AS n FROM runs WHERE component = ?", (HOSTILE[4],)) == [
        {"n": 2}
    ]


def test_ten_thousand_inputs_on_one_run(store: Store) -> None:
    inputs = tuple(f"s3://bucket/shard-{i:05d}.parquet@sha256:{i:064x}" for i in range(10_000))
    t0 = time.perf_counter()
    store.ingest([run("big", inputs=inputs, outputs=("model",))])
    elapsed = time.perf_counter() - t0
    assert store.counts() == {"runs": 1, "artifacts": 10_001, "io": 10_001}
    got = store.get_run("big")
    assert got is not None and got["n_inputs"] == 10_000
    assert len(store.run_io("big")) == 10_001
    assert ids(store.consumers(inputs[1234], "s3://bucket/shard-01234.parquet")) == ["big"]
    assert elapsed < 30, f"{store.backend}: ingesting 10k inputs took {elapsed:.1f}s"


# -- PostgreSQL specifics ---------------------------------------------------------------
def test_pg_query_is_read_only(pg_shared_store: Store) -> None:
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        pg_shared_store.query("DELETE FROM runs")


def test_pg_unreachable_names_server_not_password() -> None:
    url = f"postgresql://bob:hunter2@127.0.0.1:{free_port()}/lineage"
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError) as info:
        PostgresStore(url, connect_timeout=1.0)
    message = str(info.value)
    assert "bob@127.0.0.1:" in message and "/lineage" in message
    assert "hunter2" not in message and time.perf_counter() - t0 < 10
    assert describe_url("host=db dbname=x user=u password=p") == "u@db:5432/x"
