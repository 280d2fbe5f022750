"""Forwarding through a real downstream: a second otel-mltrace collector on loopback.

Collector A (forwarding on) receives OTLP; collector B is the downstream and records
every request it receives through its own ingest observer, so the tests see exactly the
bytes A forwarded. The Jaeger tests (tests/test_jaeger.py) repeat the important ones
against a real Jaeger v2.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from mltrace_collector.index.ingest import ExportOutcome, Overloaded
from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.service.collector import Collector, CollectorSettings
from mltrace_collector.service.exporters.forward import (
    Forwarder,
    ForwardSettings,
    install_forwarding,
)
from mltrace_collector.service.ingest.pipeline import IngestPipeline
from otel_mltrace import semconv
from tests.otlp_builders import plain_span, request, run_span, send_grpc
from tests.servers.ports import free_port


class Downstream:
    """Collector B plus the requests it received (as its ingest observer saw them)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.requests: list[ExportTraceServiceRequest] = []
        self._lock = threading.Lock()
        collector.pipeline.add_observer(self._record)

    def _record(self, req: ExportTraceServiceRequest, _batch: DecodedBatch) -> None:
        with self._lock:
            self.requests.append(req)

    def spans(self) -> dict[bytes, Span]:
        with self._lock:
            reqs = list(self.requests)
        return {
            span.span_id: span
            for r in reqs
            for rs in r.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        }

    def wait_for(self, span_ids: set[bytes], timeout_s: float = 20.0) -> dict[bytes, Span]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.spans()
            if span_ids <= set(got):
                return got
            time.sleep(0.05)
        missing = len(span_ids - set(self.spans()))
        raise AssertionError(f"{missing} of {len(span_ids)} spans never reached the downstream")


def _collector(tmp: Path, name: str, pipeline: Callable[[Collector], None] | None = None) -> Any:
    settings = CollectorSettings.resolve(
        db=str(tmp / f"{name}.db"), grpc_address="127.0.0.1:0", http_address="127.0.0.1:0"
    )
    collector = Collector(settings)
    if pipeline is not None:
        pipeline(collector)
    return collector


@pytest.fixture
def downstream(tmp_path: Path) -> Iterator[Downstream]:
    b = _collector(tmp_path, "downstream")
    b.start()
    try:
        yield Downstream(b)
    finally:
        b.stop()


def forwarding_collector(tmp: Path, endpoint: str, **settings: Any) -> tuple[Collector, Forwarder]:
    a = _collector(tmp, "upstream")
    fwd = install_forwarding(a, ForwardSettings.resolve(forward_endpoint=endpoint, **settings))
    assert fwd is not None
    a.start()
    return a, fwd


def wait_stat(fwd: Forwarder, key: str, value: int, timeout_s: float = 10.0) -> dict[str, Any]:
    """The forwarder's stats once ``stats[key] == value`` (the downstream's observer runs
    before its response reaches the forwarder, so counters trail the downstream a bit)."""
    deadline = time.monotonic() + timeout_s
    stats = fwd.stats()
    while stats[key] != value and time.monotonic() < deadline:
        time.sleep(0.02)
        stats = fwd.stats()
    return stats


def _links(span: Span) -> list[tuple[bytes, bytes, dict[str, str]]]:
    return [
        (link.trace_id, link.span_id, {kv.key: kv.value.string_value for kv in link.attributes})
        for link in span.links
    ]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_every_span_forwarded_and_consumer_linked_to_producer(
    tmp_path: Path, downstream: Downstream, protocol: str
) -> None:
    b = downstream.collector
    endpoint = b.grpc_endpoint if protocol == "grpc" else b.http_endpoint
    a, fwd = forwarding_collector(tmp_path, endpoint, forward_protocol=protocol)
    try:
        model = "s3://bucket/model.pkl@sha256:" + "ab" * 32
        raw = "s3://bucket/raw.csv"  # unversioned, and no producer: raw data
        train = run_span("train", outputs=[model], start_ns=time.time_ns() - 10**9)
        send_grpc(a.grpc_endpoint, request([train]).SerializeToString())
        predict = run_span("predict", inputs=[model, raw])
        helper = plain_span("load-model", predict.trace_id, predict.span_id)
        send_grpc(a.grpc_endpoint, request([predict, helper]).SerializeToString())

        got = downstream.wait_for({train.span_id, predict.span_id, helper.span_id})
        links = _links(got[predict.span_id])
        assert links == [
            (
                train.trace_id,
                train.span_id,
                {semconv.LINK_ARTIFACT: model, semconv.LINK_RELATION: "producer"},
            )
        ]
        assert predict.trace_id != train.trace_id
        assert _links(got[train.span_id]) == [] and _links(got[helper.span_id]) == []
        # B indexed the forwarded runs too: same run IDs, same lineage.
        assert b.queries.producer_for(model, predict.start_time_unix_nano) is not None
        stats = wait_stat(fwd, "sent", 3)
        assert stats["sent"] == 3 and stats["dropped"] == 0
        metrics = httpx.get(f"{a.http_endpoint}/metrics", timeout=10).text
        assert 'mltrace_forward_spans_total{outcome="sent"} 3.0' in metrics
        assert 'mltrace_forward_spans_total{outcome="dropped"} 0.0' in metrics
        assert "mltrace_forward_queue_spans 0.0" in metrics
        assert httpx.get(f"{a.http_endpoint}/api/v1/forward", timeout=10).json()["sent"] == 3
    finally:
        a.stop()


def test_hold_window_links_a_producer_that_arrives_late(
    tmp_path: Path, downstream: Downstream
) -> None:
    a, fwd = forwarding_collector(
        tmp_path, downstream.collector.grpc_endpoint, forward_hold_seconds=3.0
    )
    try:
        features = "file:///data/features.parquet@sha256:" + "cd" * 32
        t0 = time.time_ns()
        producer = run_span("featurize", outputs=[features], start_ns=t0 - 2 * 10**9)
        consumer = run_span("train", inputs=[features], start_ns=t0)
        send_grpc(a.grpc_endpoint, request([consumer]).SerializeToString())
        time.sleep(0.8)  # consumer is held: nothing forwarded yet
        assert consumer.span_id not in downstream.spans()
        send_grpc(a.grpc_endpoint, request([producer]).SerializeToString())
        got = downstream.wait_for({producer.span_id, consumer.span_id})
        assert [link[:2] for link in _links(got[consumer.span_id])] == [
            (producer.trace_id, producer.span_id)
        ]

        # After the window: forwarded without the link; the index still stitches.
        late = "file:///data/late.parquet@sha256:" + "ef" * 32
        consumer2 = run_span("train", inputs=[late])
        started = time.monotonic()
        send_grpc(a.grpc_endpoint, request([consumer2]).SerializeToString())
        got = downstream.wait_for({consumer2.span_id})
        assert time.monotonic() - started >= 2.5  # held for the whole window
        assert _links(got[consumer2.span_id]) == []
        producer2 = run_span("featurize", outputs=[late], start_ns=t0 - 10**9)
        send_grpc(a.grpc_endpoint, request([producer2]).SerializeToString())
        downstream.wait_for({producer2.span_id})
        row = a.queries.producer_for(late, consumer2.start_time_unix_nano)
        assert row is not None and row["span_id"] == producer2.span_id.hex()
        assert wait_stat(fwd, "sent", 4)["sent"] == 4
    finally:
        a.stop()


class ThrottledPipeline(IngestPipeline):
    """A real ingest pipeline that answers Overloaded (503 / UNAVAILABLE + RetryInfo) to
    the first ``n`` exports, as a busy collector does."""

    def __init__(self, collector: Collector, n: int, retry_after_s: float) -> None:
        super().__init__(collector.store, retry_after_s=retry_after_s)
        self.throttle_left = n
        self.calls: list[float] = []

    def export(self, req: ExportTraceServiceRequest, raw: bytes | None = None) -> ExportOutcome:
        self.calls.append(time.monotonic())
        if self.throttle_left > 0:
            self.throttle_left -= 1
            raise Overloaded(self._retry_after_s)
        return super().export(req, raw)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_retries_honor_the_downstream_retry_delay(tmp_path: Path, protocol: str) -> None:
    throttled: list[ThrottledPipeline] = []

    def throttle(c: Collector) -> None:
        c.pipeline.close()
        pipeline = ThrottledPipeline(c, n=3, retry_after_s=1.0)
        c.pipeline = pipeline
        throttled.append(pipeline)

    b = _collector(tmp_path, "busy", throttle)
    b.start()
    down = Downstream(b)
    endpoint = b.grpc_endpoint if protocol == "grpc" else b.http_endpoint
    a, fwd = forwarding_collector(tmp_path, endpoint, forward_protocol=protocol)
    try:
        span = run_span("ingest", outputs=["s3://b/raw.csv"])
        send_grpc(a.grpc_endpoint, request([span]).SerializeToString())  # A never blocks
        assert a.store.get_run(span.attributes[1].value.string_value) is not None
        down.wait_for({span.span_id}, timeout_s=20)
        calls = throttled[0].calls
        assert len(calls) == 4
        gaps = [later - earlier for earlier, later in zip(calls, calls[1:], strict=False)]
        # RetryInfo / Retry-After says 1 s; our own backoff would start at 0.25-0.5 s.
        assert all(gap >= 0.95 for gap in gaps), gaps
        stats = wait_stat(fwd, "sent", 1)
        assert stats["retries"] == 3 and stats["sent"] == 1 and stats["failed"] == 0
    finally:
        a.stop()
        b.stop()


def test_forward_queue_is_written_ahead_beside_the_index_by_default(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    a, fwd = forwarding_collector(tmp_path, dead, forward_hold_seconds=0)
    try:
        send_grpc(a.grpc_endpoint, request([run_span("clean")]).SerializeToString())
        spill = tmp_path / "upstream.db-forward-spill"
        assert fwd.spill is not None and Path(fwd.settings.forward_spill_dir or "") == spill
        assert any(p.stat().st_size > 0 for p in spill.iterdir())  # acknowledged => on disk
    finally:
        a.stop(grace_s=0.5)


def test_queue_bound_drops_are_counted_and_ingest_never_blocks(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: UNAVAILABLE forever
    a, fwd = forwarding_collector(
        tmp_path, dead, forward_queue_size=200, forward_hold_seconds=0, forward_spill_dir="memory"
    )
    try:
        sent_runs = 0
        for _ in range(20):
            spans = [
                run_span("clean", outputs=[f"s3://b/{os.urandom(4).hex()}"]) for _ in range(50)
            ]
            started = time.monotonic()
            send_grpc(a.grpc_endpoint, request(spans).SerializeToString())
            assert time.monotonic() - started < 2.0  # acknowledged at index speed
            sent_runs += len(spans)
        assert a.store.counts()["runs"] == sent_runs  # every span reached the index
        stats = fwd.stats()
        assert stats["queue_spans"] <= 200
        assert stats["dropped"] >= sent_runs - 200 and stats["sent"] == 0
        assert stats["retries"] >= 1 and "UNAVAILABLE" in stats["last_error"]
    finally:
        a.stop(grace_s=1.0)
    assert fwd.stats()["dropped"] == sent_runs  # shutdown without spill drops the rest


def test_spill_to_disk_survives_a_restart(tmp_path: Path, downstream: Downstream) -> None:
    port = free_port()
    spill = tmp_path / "spill"
    a, fwd = forwarding_collector(
        tmp_path,
        f"http://127.0.0.1:{port}",  # down for now
        forward_queue_size=50,
        forward_spill_dir=str(spill),
        forward_hold_seconds=0,
        forward_grace_seconds=0.5,
    )
    ids: set[bytes] = set()
    try:
        for _ in range(10):
            spans = [
                run_span("split", outputs=[f"s3://b/{os.urandom(4).hex()}"]) for _ in range(30)
            ]
            ids |= {s.span_id for s in spans}
            send_grpc(a.grpc_endpoint, request(spans).SerializeToString())
        stats = fwd.stats()
        assert stats["dropped"] == 0 and stats["spilled"] >= 250 and stats["spill_bytes"] > 0
    finally:
        a.stop()
    assert fwd.stats()["dropped"] == 0
    assert list(spill.glob("segment-*.otlp"))

    # Restart the upstream with the same spill dir, pointing at a live downstream.
    (tmp_path / "again").mkdir()
    a2, fwd2 = forwarding_collector(
        tmp_path / "again",
        downstream.collector.grpc_endpoint,
        forward_spill_dir=str(spill),
        forward_hold_seconds=0,
    )
    try:
        downstream.wait_for(ids, timeout_s=30)
        deadline = time.monotonic() + 10
        while list(spill.glob("segment-*.otlp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not list(spill.glob("segment-*.otlp"))  # acknowledged segments are deleted
        assert wait_stat(fwd2, "queue_spans", 0)["sent"] >= len(ids)
    finally:
        a2.stop()


def test_an_uncreatable_default_spill_dir_keeps_the_queue_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import dataclass

    from mltrace_collector.service.exporters.forward_spill import spill_dir_for

    @dataclass
    class Listening:
        db: str
        http_address: str = "127.0.0.1:4318"

    db = str(tmp_path / "index.db")
    assert spill_dir_for(None, Listening(db)) == f"{db}-forward-spill"
    assert spill_dir_for("memory", Listening(db)) is None
    assert spill_dir_for("/x/y", Listening(db)) == "/x/y"
    blocked = tmp_path / "other.db"
    Path(f"{blocked}-forward-spill").write_text("a file where the directory would go")
    with caplog.at_level("WARNING"):
        assert spill_dir_for(None, Listening(str(blocked))) is None
    assert "kept in memory only" in caplog.text and "MLTRACE_FORWARD_SPILL_DIR" in caplog.text
