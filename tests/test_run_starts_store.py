"""Run start records on the wire and in the store (SQLite and PostgreSQL): distinguishable
from run spans, and superseded by the run span in any arrival order, however often either
is retried."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_mltrace as mlt
from mltrace_collector.index.decode import processor
from mltrace_collector.index.model import RunRecord, RunStart
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import Store, open_store
from mltrace_collector.index.store.run_starts import open_counts, open_run_summaries
from mltrace_collector.service.collector import Collector
from mltrace_collector.service.ingest.decode_workers import decode_and_prepare
from otel_mltrace import lifecycle, semconv


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        target = str(tmp_path / "index.db")
    else:
        target = request.getfixturevalue("postgres_url")
    s = open_store(target)
    yield s
    s.close()


def start(run_id: str, start_ns: int) -> RunStart:
    return RunStart(run_id, "train", "ab" * 16, "cd" * 8, "svc", start_ns)


def final(run_id: str, start_ns: int, status: str = "ok") -> RunRecord:
    return RunRecord(
        run_id=run_id, component="train", trace_id="ab" * 16, span_id="cd" * 8,
        parent_span_id=None, service="svc", start_ns=start_ns, end_ns=start_ns + 10**9,
        status=status, status_message=None, inputs=("s3://b/in",), outputs=("s3://b/out",),
    )  # fmt: skip


def statuses(store: Store) -> dict[str, str]:
    return {r["run_id"]: r["status"] for r in LineageQueries(store).history("train", limit=100)}


def start_rows(store: Store) -> int:
    return int(store.query("SELECT COUNT(*) AS n FROM run_starts")[0]["n"])


def test_any_arrival_order_ends_in_the_final_state(store: Store) -> None:
    now = time.time_ns()
    # a: start (retried), then the run span: the run span deletes the start row
    store.ingest([], starts=[start("a", now)])
    store.ingest([], starts=[start("a", now)])
    assert statuses(store) == {"a": "running"}
    store.ingest([final("a", now, "error")])
    # b: the run span first, then its start record, then both retried
    store.ingest([final("b", now + 1)])
    store.ingest([], starts=[start("b", now + 1)])
    store.ingest([final("b", now + 1)], starts=[start("b", now + 1)])
    # c: both in one request (start record after the run span on the wire)
    store.ingest([final("c", now + 2)], starts=[start("c", now + 2)])
    # d: announced only (the process was SIGKILLed)
    store.ingest([], starts=[start("d", now + 3)])
    assert statuses(store) == {"a": "error", "b": "ok", "c": "ok", "d": "running"}
    assert start_rows(store) == 1  # only d's: superseded start records are not kept
    assert store.counts()["runs"] == 3
    io = store.run_io("b")
    assert [(e["direction"], e["artifact_id"]) for e in io] == [
        ("in", "s3://b/in"),
        ("out", "s3://b/out"),
    ]  # the run span's I/O rows once, despite the retries
    assert open_counts(store) == {("train", "running"): 1}
    assert open_counts(store, abandon_after=1e-9) == {("train", "abandoned"): 1}


def test_a_start_row_of_a_stored_run_is_never_shown(store: Store) -> None:
    """Two PostgreSQL transactions can commit a start row next to its run (each before
    seeing the other): readers skip such a row."""
    now = time.time_ns()
    store.ingest([final("x", now)])
    store.write_many(
        "INSERT INTO run_starts (run_id, component, trace_id, span_id, service, parent_run_id, "
        "start_ns, ingested_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [("x", "train", "ab" * 16, "cd" * 8, "svc", None, now, now)],
    )
    assert open_run_summaries(store) == []
    assert statuses(store) == {"x": "ok"}
    assert LineageQueries(store).inspect("x")["status"] == "ok"


def start_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == semconv.RUN_START_SPAN_NAME]


def test_start_record_on_the_wire_is_not_a_run(spans: InMemorySpanExporter) -> None:
    with mlt.run("quick"):
        pass  # ended before the announcer looked: no start record needed
    with mlt.run("train") as outer, mlt.run("fit") as inner:
        lifecycle._Announcer.announce_pending()  # what the announcer thread does ~0.1 s in
        deadline = time.monotonic() + 5  # (unless the thread got there first)
        while len(start_spans(spans)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(lifecycle.ANNOUNCE_DELAY_S * 2)
    lifecycle._Announcer.announce_pending()
    finished = [s for s in spans.get_finished_spans() if s.name != "quick"]
    starts = start_spans(spans)
    assert len(starts) == 2 and len(finished) == 4
    for s in starts:
        assert s.attributes is not None and semconv.COMPONENT not in s.attributes
    request = encode_spans(finished)
    batch = processor.decode_request(request)
    assert sorted(r.run_id for r in batch.runs) == sorted([outer.id, inner.id])
    by_run = {s.run_id: s for s in batch.run_starts}
    assert set(by_run) == {outer.id, inner.id}
    assert by_run[inner.id].parent_run_id == outer.id
    assert by_run[outer.id].component == "train"
    runs = {r.run_id: r for r in batch.runs}
    assert by_run[inner.id].span_id == runs[inner.id].span_id  # the start's parent: the run
    assert batch.other_spans == 2 and not batch.rejections
    # the C row builder (decode workers) hands start records to the same decoder
    raw = request.SerializeToString()
    fast = decode_and_prepare(request, raw, keep_runs=False)
    pure = decode_and_prepare(request, None, keep_runs=True)
    assert fast.rows is not None and pure.rows is not None
    assert sorted(fast.rows.starts) == sorted(pure.rows.starts)
    assert len(fast.rows.starts) == 2


def test_bad_start_record_is_rejected_with_a_reason() -> None:
    exporter = InMemorySpanExporter()
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("run"):
        tracer.start_span(
            semconv.RUN_START_SPAN_NAME, attributes={semconv.RUN_START_RUN_ID: "r1"}
        ).end()
    batch = processor.decode_request(encode_spans(exporter.get_finished_spans()))
    assert batch.run_starts == []
    [rejection] = batch.rejections
    assert semconv.RUN_START_COMPONENT in rejection.reason


def test_collector_pipeline_any_order_and_retries(
    spans: InMemorySpanExporter, collector: Collector
) -> None:
    """Real SDK spans through the collector's ingest (OTLP requests, decode, group commit):
    the run span before its start record, both retried, and a start record alone."""
    with mlt.run("train") as done:
        lifecycle._Announcer.announce_pending()
    with mlt.run("train") as killed:
        lifecycle._Announcer.announce_pending()
        killed_start = [
            s
            for s in start_spans(spans)
            if s.parent and s.parent.span_id == killed.span.get_span_context().span_id
        ]
    finished = spans.get_finished_spans()
    run_span = [
        s
        for s in finished
        if s.name == "train" and s.attributes and s.attributes[semconv.RUN_ID] == done.id
    ]
    done_start = [s for s in start_spans(spans) if s not in killed_start]
    assert len(run_span) == len(done_start) == len(killed_start) == 1
    export = collector.pipeline.export
    for request in (run_span, done_start, done_start, run_span, killed_start, killed_start):
        outcome = export(encode_spans(request))
        assert outcome.rejected_spans == 0, outcome.error_message
    q = collector.queries
    assert {r["run_id"]: r["status"] for r in q.history("train")} == {
        done.id: "ok",
        killed.id: "running",
    }


def test_runs_pages_merge_open_and_ended_runs_exactly(store: Store) -> None:
    """Every page of ``runs`` equals the same slice of the naive merge of ended and open
    runs, newest first, whatever the offset (also past what a SQL integer holds)."""
    base = time.time_ns()
    ended = [final(f"e{i:02d}", base + 10 * i) for i in range(30)]
    opened = [start(f"o{i:02d}", base + 10 * i + 5) for i in (2, 3, 11, 27, 40)]
    store.ingest(ended, starts=opened)
    q = LineageQueries(store)
    everything = [r["run_id"] for r in q.runs(limit=100)]
    assert len(everything) == 35 and everything[0] == "o40" and everything[-1] == "e00"
    assert everything == sorted(everything, key=lambda i: int(i[1:]) * 10 + (i[0] == "o") * 5)[::-1]
    for offset in range(0, 37):
        for limit in (1, 3, 7):
            page = [r["run_id"] for r in q.runs(limit=limit, offset=offset)]
            assert page == everything[offset : offset + limit], (offset, limit)
    assert q.runs(limit=5, offset=2**63 - 1) == []


def test_status_filter_on_open_runs_is_applied_before_the_limit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mltrace_collector.index.queries.run_search import RunFilter

    monkeypatch.setenv("MLTRACE_ABANDON_AFTER", "3600")
    now = time.time_ns()
    old = now - 7200 * 10**9  # started two hours ago: abandoned
    store.ingest(
        [], starts=[start(f"a{i}", old + i) for i in range(5)] + [
            start(f"r{i:02d}", now - i) for i in range(60)
        ]
    )  # fmt: skip
    q = LineageQueries(store)
    abandoned = q.search_runs(RunFilter(status=("abandoned",), limit=50))
    assert sorted(r["run_id"] for r in abandoned) == [f"a{i}" for i in range(5)]
    running = q.search_runs(RunFilter(status=("running",), limit=50))
    assert len(running) == 50 and {r["status"] for r in running} == {"running"}
