"""Stitching does not depend on arrival order, duplicates or backend.

A multi-branch pipeline (two ingests fanning in to a join, a fan-out to two feature steps
that meet again in ``train`` — a diamond —, a re-run producing new versions, a re-run
reproducing the same version, unversioned URIs read and written, raw artifacts nobody
produced) is recorded with the real OTel SDK, encoded with the official OTLP encoder and
split into batches. The batches go through the real ``IngestPipeline`` in many orders
(seeded shuffles, some with batches sent twice, some concurrently so group commit mixes
them) into a fresh store on SQLite and on PostgreSQL. Every order must give the identical
``trace`` and ``downstream`` of every run and artifact, and that graph must match the
expectation written out by hand below.

Unversioned rule under test: a read of an unversioned URI stitches to the latest producer
that *ended* before the consumer *started*. ``export#2`` ends after ``report#1`` starts
(must not be stitched) and ``export#0`` — ended before, later than ``export#1`` — is the
right producer; in the base order its span arrives last.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import Store, open_store
from mltrace_collector.service.ingest.pipeline import IngestPipeline
from otel_mltrace import semconv

T0 = 1_750_000_000 * 10**9

# Artifacts (short name -> ID)
A = {
    "raw_a@1": "s3://lake/raw/a.csv@sha256:a1a1",
    "raw_a@2": "s3://lake/raw/a.csv@sha256:a2a2",
    "raw_b@1": "s3://lake/raw/b.csv@sha256:b1b1",
    "labels": "s3://ref/labels.csv@sha256:1abe",
    "clean_a@1": "file:///d/clean_a.parquet@sha256:c1c1",
    "clean_a@2": "file:///d/clean_a.parquet@sha256:c2c2",
    "clean_b@1": "file:///d/clean_b.parquet@sha256:d1d1",
    "joined@1": "file:///d/joined.parquet@sha256:e1e1",
    "joined@2": "file:///d/joined.parquet@sha256:e2e2",
    "feat_a@1": "file:///d/feat_a.npz@sha256:f1f1",
    "feat_b@1": "file:///d/feat_b.npz@sha256:f2f2",
    "model@1": "file:///m/model.pkl@sha256:0d01",
    "model": "file:///m/model.pkl",  # unversioned read of a versioned write
    "table": "bq://proj/ds/table",  # only ever unversioned
    "report": "file:///r/report.html",  # unversioned output
    "audit@1": "file:///r/audit.json@sha256:aud1",
}
NAME = {v: k for k, v in A.items()}


@dataclass(frozen=True)
class Run:
    run_id: str
    start_s: float
    end_s: float
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def component(self) -> str:
        return self.run_id.split("#")[0]


def _run(run_id: str, start: float, end: float, ins: list[str], outs: list[str]) -> Run:
    return Run(run_id, start, end, tuple(A[i] for i in ins), tuple(A[o] for o in outs))


RUNS = [
    _run("report#0", -1, -0.5, ["table"], ["report"]),  # reads the table before anyone wrote it
    _run("ingest_a#1", 0, 1, ["raw_a@1"], ["clean_a@1"]),
    _run("ingest_b#1", 0, 2, ["raw_b@1"], ["clean_b@1"]),
    _run("export#1", 2, 3, [], ["table"]),
    _run("join#1", 3, 4, ["clean_a@1", "clean_b@1"], ["joined@1"]),  # fan-in
    _run("feat_a#1", 5, 6, ["joined@1"], ["feat_a@1"]),  # fan-out ...
    _run("feat_b#1", 5, 7, ["joined@1"], ["feat_b@1"]),
    _run("export#2", 6, 8, [], ["table"]),  # still running when report#1 starts
    _run("report#1", 7.5, 9, ["table"], ["report"]),
    _run("train#1", 8, 9, ["feat_a@1", "feat_b@1", "labels"], ["model@1"]),  # ... diamond
    _run("ingest_a#2", 10, 11, ["raw_a@2"], ["clean_a@2"]),  # re-run: new versions
    _run("join#2", 12, 13, ["clean_a@2", "clean_b@1"], ["joined@2"]),
    _run("audit#1", 14, 15, ["model"], ["audit@1"]),
    _run("feat_b#2", 16, 17, ["joined@1"], ["feat_b@1"]),  # same input, same version again
    _run("export#0", 4, 5, [], ["table"]),  # earlier producer, arriving last
]

# Hand-written stitching: (consumer, artifact as read) -> producer run (None: raw data).
EXPECTED_READS: dict[tuple[str, str], str | None] = {
    ("report#0", "table"): None,
    ("ingest_a#1", "raw_a@1"): None,
    ("ingest_b#1", "raw_b@1"): None,
    ("join#1", "clean_a@1"): "ingest_a#1",
    ("join#1", "clean_b@1"): "ingest_b#1",
    ("feat_a#1", "joined@1"): "join#1",
    ("feat_b#1", "joined@1"): "join#1",
    ("report#1", "table"): "export#0",  # not export#2 (ended too late), not export#1 (older)
    ("train#1", "feat_a@1"): "feat_a#1",
    ("train#1", "feat_b@1"): "feat_b#1",  # feat_b#2 wrote the same version, but later
    ("train#1", "labels"): None,
    ("ingest_a#2", "raw_a@2"): None,
    ("join#2", "clean_a@2"): "ingest_a#2",
    ("join#2", "clean_b@1"): "ingest_b#1",
    ("audit#1", "model"): "train#1",
    ("feat_b#2", "joined@1"): "join#1",
}

Edge = tuple[str, str, str]
MODEL_TRACE: set[Edge] = {
    ("train#1", "model@1", "output"),
    ("feat_a@1", "train#1", "input"),
    ("feat_b@1", "train#1", "input"),
    ("labels", "train#1", "input"),
    ("feat_a#1", "feat_a@1", "output"),
    ("feat_b#1", "feat_b@1", "output"),
    ("joined@1", "feat_a#1", "input"),
    ("joined@1", "feat_b#1", "input"),
    ("join#1", "joined@1", "output"),
    ("clean_a@1", "join#1", "input"),
    ("clean_b@1", "join#1", "input"),
    ("ingest_a#1", "clean_a@1", "output"),
    ("ingest_b#1", "clean_b@1", "output"),
    ("raw_a@1", "ingest_a#1", "input"),
    ("raw_b@1", "ingest_b#1", "input"),
}
# root -> (edges, raw artifacts) for a few roots, by hand
EXPECTED_GRAPHS: dict[tuple[str, str], tuple[set[Edge], set[str]]] = {
    ("trace", "model@1"): (MODEL_TRACE, {"raw_a@1", "raw_b@1", "labels"}),
    ("trace", "audit@1"): (
        (MODEL_TRACE - {("train#1", "model@1", "output")})
        | {
            ("audit#1", "audit@1", "output"),
            ("model", "audit#1", "input"),
            ("train#1", "model", "output"),
        },
        {"raw_a@1", "raw_b@1", "labels"},
    ),
    ("trace", "report"): (  # unversioned root: its latest producer is report#1
        {
            ("report#1", "report", "output"),
            ("table", "report#1", "input"),
            ("export#0", "table", "output"),
        },
        set(),
    ),
    ("trace", "report#0"): ({("table", "report#0", "input")}, {"table"}),
    ("trace", "joined@2"): (
        {
            ("join#2", "joined@2", "output"),
            ("clean_a@2", "join#2", "input"),
            ("clean_b@1", "join#2", "input"),
            ("ingest_a#2", "clean_a@2", "output"),
            ("ingest_b#1", "clean_b@1", "output"),
            ("raw_a@2", "ingest_a#2", "input"),
            ("raw_b@1", "ingest_b#1", "input"),
        },
        {"raw_a@2", "raw_b@1"},
    ),
    ("downstream", "raw_a@1"): (
        {
            ("raw_a@1", "ingest_a#1", "input"),
            ("ingest_a#1", "clean_a@1", "output"),
            ("clean_a@1", "join#1", "input"),
            ("join#1", "joined@1", "output"),
            ("joined@1", "feat_a#1", "input"),
            ("joined@1", "feat_b#1", "input"),
            ("joined@1", "feat_b#2", "input"),
            ("feat_a#1", "feat_a@1", "output"),
            ("feat_b#1", "feat_b@1", "output"),
            ("feat_b#2", "feat_b@1", "output"),
            ("feat_a@1", "train#1", "input"),
            ("feat_b@1", "train#1", "input"),
            ("train#1", "model@1", "output"),
            ("model", "audit#1", "input"),
            ("audit#1", "audit@1", "output"),
        },
        {"raw_a@1"},
    ),
    ("downstream", "raw_a@2"): (
        {
            ("raw_a@2", "ingest_a#2", "input"),
            ("ingest_a#2", "clean_a@2", "output"),
            ("clean_a@2", "join#2", "input"),
            ("join#2", "joined@2", "output"),
        },
        {"raw_a@2"},
    ),
    ("downstream", "export#0"): (
        {
            ("export#0", "table", "output"),
            ("table", "report#1", "input"),
            ("report#1", "report", "output"),
        },
        set(),
    ),
    ("downstream", "export#2"): ({("export#2", "table", "output")}, set()),
    ("downstream", "table"): (  # the URI itself: everyone who read it, from whichever writer
        {
            ("table", "report#0", "input"),
            ("report#0", "report", "output"),
            ("table", "report#1", "input"),
            ("report#1", "report", "output"),
        },
        set(),
    ),
    ("downstream", "model@1"): (  # the unversioned reader got exactly this version
        {
            ("model", "audit#1", "input"),
            ("audit#1", "audit@1", "output"),
        },
        set(),
    ),
    ("downstream", "export#1"): ({("export#1", "table", "output")}, set()),
}

N_BATCHES = 8
N_ORDERS = 10
BACKENDS = ["sqlite", "postgres"]


def record_spans() -> list[ReadableSpan]:
    """The pipeline's run spans, made by the real SDK with explicit times."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "stitching-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.test_stitching")
    for run in RUNS:
        attrs: dict[str, Any] = {semconv.COMPONENT: run.component, semconv.RUN_ID: run.run_id}
        if run.inputs:
            attrs[semconv.INPUTS] = list(run.inputs)
        if run.outputs:
            attrs[semconv.OUTPUTS] = list(run.outputs)
        span = tracer.start_span(
            run.component, start_time=T0 + int(run.start_s * 1e9), attributes=attrs
        )
        span.end(end_time=T0 + int(run.end_s * 1e9))
    # A plain span (not a run) rides along: accepted, never indexed.
    with tracer.start_as_current_span("http.request"):
        pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


def batches() -> list[bytes]:
    spans = record_spans()
    size = -(-len(spans) // N_BATCHES)
    chunks = [spans[i : i + size] for i in range(0, len(spans), size)]
    assert len(chunks) == N_BATCHES
    return [encode_spans(chunk).SerializeToString() for chunk in chunks]


def orders() -> list[tuple[str, list[int], bool]]:
    """(name, batch indexes to send in order, concurrently?) — seeded and reproducible."""
    base = list(range(N_BATCHES))
    result = [("in order", base, False), ("reversed", base[::-1], False)]
    for seed in range(N_ORDERS):
        rng = random.Random(seed)
        order = base[:]
        rng.shuffle(order)
        for dup in rng.sample(base, 2):  # two batches are delivered twice (OTLP retries)
            order.insert(rng.randrange(len(order) + 1), dup)
        result.append((f"seed {seed}", order, seed % 2 == 1))
    return result


def normalize(graph: dict[str, Any]) -> tuple[Any, ...]:
    def name(node: str) -> str:
        return node if "#" in node else NAME[node]

    edges = sorted((name(e["source"]), name(e["target"]), e["relation"]) for e in graph["edges"])
    raw = sorted(NAME[a["id"]] for a in graph["artifacts"].values() if a["raw"])
    return (name(graph["root"]["id"]), tuple(edges), tuple(raw), tuple(sorted(graph["runs"])))


def lineage(queries: LineageQueries) -> dict[tuple[str, str], tuple[Any, ...]]:
    roots = [r.run_id for r in RUNS] + list(A.values())
    out = {}
    for root in roots:
        for direction in ("trace", "downstream"):
            graph = getattr(queries, direction)(root)
            out[(direction, root if "#" in root else NAME[root])] = normalize(graph)
    return out


def reads(queries: LineageQueries) -> dict[tuple[str, str], str | None]:
    found = {}
    for run in RUNS:
        for entry in queries.inspect(run.run_id)["inputs"]:
            found[(run.run_id, NAME[entry["artifact_id"]])] = entry["producer_run_id"]
    return found


def ingest(store: Store, bodies: list[bytes], order: list[int], concurrent: bool) -> None:
    pipeline = IngestPipeline(store, max_inflight=64)
    try:

        def send(i: int) -> None:
            outcome = pipeline.export(ExportTraceServiceRequest.FromString(bodies[i]))
            assert outcome.rejected_spans == 0, outcome.error_message

        if concurrent:
            threads = [threading.Thread(target=send, args=(i,)) for i in order]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not any(t.is_alive() for t in threads)
        else:
            for i in order:
                send(i)
    finally:
        pipeline.close()


@pytest.fixture(params=BACKENDS)
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Store]]:
    """A factory of fresh, migrated stores of one backend, each closed before the next.

    PostgreSQL: one database per test and a new schema per store (``ALTER DATABASE ... SET
    search_path`` before the store connects) — much cheaper than a database per store.
    """
    current: list[Store] = []
    url: str | None = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")

    def make(tag: str) -> Store:
        for old in current:
            old.close()
        current.clear()
        if url is not None:
            import psycopg
            from psycopg import sql

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)))
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET search_path = {}").format(
                        sql.Identifier(url.rsplit("/", 1)[1]), sql.Identifier(tag)
                    )
                )
            store = open_store(url)
            tables = store.query("SELECT current_schema() AS s")
            assert tables == [{"s": tag}]
        else:
            store = open_store(str(tmp_path / f"{tag}.db"))
        current.append(store)
        return store

    yield make
    for old in current:
        old.close()


def test_expectation_is_consistent() -> None:
    """The hand-written tables describe the pipeline declared above (guards against typos)."""
    declared = {(r.run_id, NAME[a]) for r in RUNS for a in r.inputs}
    assert set(EXPECTED_READS) == declared
    writers = {NAME[a]: {r.run_id for r in RUNS if a in r.outputs} for r in RUNS for a in r.outputs}
    for (_, artifact), producer in EXPECTED_READS.items():
        uri_writers = {
            w for name, ws in writers.items() if A[name].split("@")[0] == A[artifact] for w in ws
        }
        assert producer is None or producer in writers.get(artifact, set()) | uri_writers


def test_same_lineage_in_every_order(fresh_store: Callable[[str], Store]) -> None:
    bodies = batches()
    reference: dict[tuple[str, str], tuple[Any, ...]] | None = None
    for n, (name, order, concurrent) in enumerate(orders()):
        store = fresh_store(f"order{n}")
        ingest(store, bodies, order, concurrent)
        counts = store.counts()
        assert counts["runs"] == len(RUNS), name
        assert counts["io"] == sum(len(r.inputs) + len(r.outputs) for r in RUNS), name
        queries = LineageQueries(store)
        assert reads(queries) == EXPECTED_READS, name
        graphs = lineage(queries)
        if reference is None:
            reference = graphs
            for key, (edges, raw) in EXPECTED_GRAPHS.items():
                root, got_edges, got_raw, _ = graphs[key]
                assert set(got_edges) == edges, key
                assert set(got_raw) == raw, key
        else:
            diff = sorted(k for k in reference if reference[k] != graphs[k])
            assert not diff, f"order {name} ({order}) changed the lineage of {diff[:5]}"
        # A duplicate of everything changes nothing.
        if n == 0:
            ingest(store, bodies, list(range(N_BATCHES)), False)
            assert store.counts() == counts
            assert lineage(queries) == graphs
