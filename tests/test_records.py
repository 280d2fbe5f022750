"""Record-level lineage: bounded chunks on the wire, exactly-once indexing, record traces."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import otel_mltrace as mlt
from mltrace_collector.index.decode.processor import decode_request
from mltrace_collector.index.model import RecordChunk, RunRecord
from mltrace_collector.index.queries.lineage_queries import LineageQueries, NotFound
from mltrace_collector.index.store import Store, open_store
from otel_mltrace import records
from tests import backends

lineage_store = backends.lineage_store  # fixtures (SQLite and a real PostgreSQL)
postgres_server = backends.postgres_server
postgres_url = backends.postgres_url
GRPC_DEFAULT_LIMIT = 4 * 1024 * 1024


def _run(run_id: str, component: str, start: int, inputs: Sequence[str] = (),
         outputs: Sequence[str] = (), **extra: object) -> RunRecord:  # fmt: skip
    return RunRecord(
        run_id=run_id, component=component, trace_id="a" * 32, span_id=f"{start:016x}",
        parent_span_id=None, service="svc", start_ns=start, end_ns=start + 10, status="ok",
        status_message=None, inputs=tuple(inputs), outputs=tuple(outputs), **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def test_plan_chunks_respects_count_and_byte_limits() -> None:
    ids = [f"{i:0100d}" for i in range(30_000)]  # 100-byte IDs: the byte limit binds first
    chunks = list(records.plan_chunks(ids, ids))
    assert chunks[0][0] == 0 and chunks[-1][1] == len(ids)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    assert max(size for _, _, size in chunks) <= records.MAX_CHUNK_BYTES
    assert max(end - start for start, end, _ in chunks) <= records.MAX_IDS_PER_CHUNK
    short = list(records.plan_chunks([str(i) for i in range(25_000)], None))
    assert [(s, e) for s, e, _ in short] == [(0, 10_000), (10_000, 20_000), (20_000, 25_000)]


class SizeRecordingExporter(SpanExporter):
    """Encodes every batch exactly as the OTLP exporter would and keeps the sizes."""

    def __init__(self) -> None:
        self.request_sizes: list[int] = []
        self.span_sizes: list[int] = []
        self.ids: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        request = encode_spans(spans)
        self.request_sizes.append(request.ByteSize())
        for span in spans:
            self.span_sizes.append(encode_spans([span]).ByteSize())
        batch = decode_request(request)
        for chunk in batch.record_chunks:
            self.ids.extend(chunk.ids)
        for run in batch.runs:
            for chunk in run.record_chunks:
                self.ids.extend(chunk.ids)
        return SpanExportResult.SUCCESS


def test_large_batches_stay_under_otlp_message_limits() -> None:
    exporter = SizeRecordingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100_000))
    mlt.configure(service_name="records", tracer_provider=provider, add_exporter=False)
    ids = [f"prediction-{i:012d}-{'x' * 60}" for i in range(150_000)]  # ~14 MB of IDs
    try:
        with mlt.run("predict") as run:
            out = run.add_output("s3://bucket/predictions.parquet", version="v:1")
            assert run.log_records(out, ids, sources=[f"f{i}" for i in range(len(ids))]) == len(ids)
            assert run.log_records(out, ["one-more"]) == 1  # small: rides on the run span
        provider.force_flush()
    finally:
        mlt.shutdown()
    assert sorted(exporter.ids) == sorted([*ids, "one-more"])
    assert max(exporter.span_sizes) < records.MAX_CHUNK_BYTES + 64 * 1024
    assert max(exporter.request_sizes) < GRPC_DEFAULT_LIMIT
    assert len(exporter.request_sizes) >= 5


def test_log_records_rejects_bad_input(spans: object) -> None:
    with mlt.run("predict") as run:
        out = run.add_output(b"rows", uri="mem://out")
        with pytest.raises(ValueError, match="sources has 1 entries but ids has 2"):
            run.log_records(out, ["a", "b"], sources=["x"])
        with pytest.raises(ValueError, match=r"ids\[1\] is empty"):
            run.log_records(out, ["a", ""])
        with pytest.raises(TypeError, match="not one str"):
            run.log_records(out, "abc")


def test_chunks_out_of_order_and_duplicated_index_exactly_once(lineage_store: Store) -> None:
    ids = [f"r{i}" for i in range(1000)]
    chunks = [
        RecordChunk("out@v:1", k, 10, tuple(ids[k * 100 : (k + 1) * 100]), run_id="run-1")
        for k in range(10)
    ]
    delivered = chunks + chunks[3:7]  # OTLP retries deliver duplicates
    random.Random(7).shuffle(delivered)
    for i in range(0, len(delivered), 3):
        lineage_store.ingest([], records=delivered[i : i + 3])  # chunks before their run
    lineage_store.ingest([_run("run-1", "predict", 100, outputs=["out@v:1"])])
    lineage_store.ingest([_run("run-1", "predict", 100, outputs=["out@v:1"])])
    rows = lineage_store.query("SELECT COUNT(*) AS n FROM records")
    assert rows[0]["n"] == 1000
    q = LineageQueries(lineage_store)
    graph = q.trace("r517")
    assert graph["root"] == {"kind": "record", "id": "r517"}
    assert list(graph["runs"]) == ["run-1"]
    assert {"source": "out@v:1", "target": "r517", "relation": "record"} in graph["edges"]


def test_record_sets_of_runs_not_indexed_yet_sort_last_on_both_backends(
    lineage_store: Store,
) -> None:
    """A record ID also logged by a run still open (its chunk span arrived, its run span not
    yet) means the newest *ended* run's set on SQLite and PostgreSQL alike."""
    from mltrace_collector.index.store.extras import record_sets_of

    lineage_store.ingest(
        [_run("ended", "predict", 100, outputs=["a@v:1"])],
        records=[RecordChunk("a@v:1", 0, 1, ("k-1",), run_id="ended")],
    )
    lineage_store.ingest([], records=[RecordChunk("b@v:1", 0, 1, ("k-1",), run_id="open")])
    assert [r["run_id"] for r in record_sets_of(lineage_store, "k-1")] == ["ended", "open"]


def test_record_trace_follows_sources(lineage_store: Store) -> None:
    s = lineage_store
    s.ingest([
        _run("ingest", "ingest", 10, inputs=["raw@v:1"], outputs=["clean@v:1"]),
        _run("feat", "featurize", 100, inputs=["clean@v:1"], outputs=["feat@v:1"],
             record_chunks=(RecordChunk("feat@v:1", 0, 1, ("row-1", "row-2")),)),
        _run("pred", "predict", 200, inputs=["feat@v:1"], outputs=["pred@v:1"],
             record_chunks=(RecordChunk("pred@v:1", 0, 1, ("p-1", "p-2"), ("row-2", "row-1")),)),
    ])  # fmt: skip
    graph = LineageQueries(s).trace("p-1")
    assert set(graph["runs"]) == {"ingest", "feat", "pred"}
    assert graph["records"]["p-1"]["sources"] == ["row-2"]
    assert {"source": "row-2", "target": "p-1", "relation": "source"} in graph["edges"]
    assert graph["records"]["row-2"]["produced_by"] == ["feat"]
    assert LineageQueries(s).downstream("row-1")["root"]["kind"] == "artifact"
    with pytest.raises(NotFound, match="'p-404'"):
        LineageQueries(s).trace("p-404")


def test_million_prediction_ids_ingested_and_one_traced_fast(tmp_path: Path) -> None:
    """The issue's scale target: 1,000,000 IDs from one batch run; one traced in < 50 ms."""
    index = str(tmp_path / "index.db")
    mlt.configure(service_name="scale", index=index)
    n = 1_000_000
    t0 = time.perf_counter()
    with mlt.run("predict", inputs=["s3://bucket/model.pkl"]) as run:
        out = run.add_output("s3://bucket/predictions/2024-06-01.parquet", version="v:1")
        run.log_records(out, (f"pred-{i:09d}" for i in range(n)))
    assert mlt.flush(120)
    mlt.shutdown()
    ingest_s = time.perf_counter() - t0
    store = open_store(index)
    try:
        assert store.query("SELECT COUNT(*) AS n FROM records")[0]["n"] == n
        q = LineageQueries(store)
        timings = []
        for i in random.Random(1).sample(range(n), 25):
            t = time.perf_counter()
            graph = q.trace(f"pred-{i:09d}")
            timings.append(time.perf_counter() - t)
            assert [r["component"] for r in graph["runs"].values()] == ["predict"]
        median_ms = statistics.median(timings) * 1000
        print(f"\n1M records: SDK->index {ingest_s:.1f}s ({n / ingest_s:,.0f} IDs/s); "
              f"trace median {median_ms:.2f} ms, max {max(timings) * 1000:.2f} ms")  # fmt: skip
        assert median_ms < 50, f"single-record trace took {median_ms:.1f} ms (target < 50 ms)"
    finally:
        store.close()
