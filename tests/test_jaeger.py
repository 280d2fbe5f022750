"""Forwarding into a real Jaeger v2 (in-memory storage), asserted through its api/v3.

Jaeger comes from ``scripts/bootstrap.sh`` (a Go build from the module proxy); without it
these tests skip with the reason — or fail when ``MLTRACE_REQUIRE_JAEGER=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mltrace_collector.index.store.sqlite import SqliteStore
from mltrace_collector.service.collector import Collector, CollectorSettings
from mltrace_collector.service.exporters.forward import (
    Forwarder,
    ForwardSettings,
    install_forwarding,
)
from otel_mltrace import semconv
from tests.otlp_builders import GrpcSender, request, run_span
from tests.servers.jaeger import JaegerServer, JaegerUnavailable

REPO = Path(__file__).resolve().parents[1]
ROUTING_VARS = ("MLTRACE_INDEX", "MLTRACE_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT")


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[JaegerServer]:
    try:
        server = JaegerServer.start(tmp_path / "jaeger")
    except JaegerUnavailable as exc:
        if os.environ.get("MLTRACE_REQUIRE_JAEGER", "") not in ("", "0"):
            pytest.fail(f"Jaeger required (MLTRACE_REQUIRE_JAEGER) but unavailable: {exc}")
        print(f"SKIP Jaeger tests: {exc}")
        pytest.skip(f"Jaeger unavailable: {exc}")
    try:
        yield server
    finally:
        server.close()


def start_forwarding(tmp: Path, endpoint: str, **settings: Any) -> tuple[Collector, Forwarder]:
    collector = Collector(
        CollectorSettings.resolve(
            db=str(tmp / "index.db"), grpc_address="127.0.0.1:0", http_address="127.0.0.1:0"
        )
    )
    fwd = install_forwarding(
        collector, ForwardSettings.resolve(forward_endpoint=endpoint, **settings)
    )
    assert fwd is not None
    collector.start()
    return collector, fwd


def attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP JSON key/value list -> {key: plain value}."""
    out: dict[str, Any] = {}
    for kv in items:
        value = kv.get("value", {})
        out[kv["key"]] = next(iter(value.values()), None) if value else None
    return out


def wait_for_trace(jaeger: JaegerServer, trace_id: str, span_id: str, timeout_s: float = 30) -> Any:
    """The span ``span_id`` of trace ``trace_id`` once Jaeger serves it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for span in jaeger.trace_spans(trace_id):
            if span["spanId"].lower() == span_id:
                return span
        time.sleep(0.2)
    raise AssertionError(f"span {span_id} of trace {trace_id} never appeared in Jaeger")


def test_digits_pipeline_runs_are_in_jaeger_and_predict_links_to_train(
    tmp_path: Path, jaeger: JaegerServer
) -> None:
    collector, fwd = start_forwarding(tmp_path, jaeger.otlp_grpc)
    try:
        env = {k: v for k, v in os.environ.items() if k not in ROUTING_VARS}
        env.update(MLTRACE_ENDPOINT=collector.grpc_endpoint, MLTRACE_SERVICE_NAME="digits")
        result = subprocess.run(
            [sys.executable, "-m", "examples.digits.pipeline", "--workdir", str(tmp_path / "w")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        runs = {
            row["component"]: row
            for row in collector.store.query(
                "SELECT component, service, trace_id, span_id FROM runs"
            )
        }
        assert {"ingest", "split", "featurize", "train", "evaluate", "predict"} <= set(runs)
        jaeger_spans = {
            c: wait_for_trace(jaeger, r["trace_id"], r["span_id"]) for c, r in runs.items()
        }
        for component, span in jaeger_spans.items():
            assert span["name"] and attrs(span["attributes"])[semconv.COMPONENT] == component

        train, predict = runs["train"], runs["predict"]
        assert train["trace_id"] != predict["trace_id"]  # different traces: backends can't join
        links = [
            (link["traceId"].lower(), link["spanId"].lower(), attrs(link.get("attributes", [])))
            for link in jaeger_spans["predict"].get("links", [])
        ]
        to_train = [a for t, s, a in links if (t, s) == (train["trace_id"], train["span_id"])]
        assert len(to_train) == 1, links
        assert to_train[0][semconv.LINK_RELATION] == semconv.LINK_RELATION_PRODUCER
        assert to_train[0][semconv.LINK_ARTIFACT].startswith("file://")
        assert "model.pkl" in to_train[0][semconv.LINK_ARTIFACT]

        services = set(jaeger.get("/api/v3/services")["services"])
        assert {r["service"] for r in runs.values()} <= services  # e.g. digits-train
        for component, row in runs.items():
            operations = jaeger.get("/api/v3/operations", service=row["service"])["operations"]
            assert jaeger_spans[component]["name"] in {op["name"] for op in operations}
        found_ids: set[str] = set()
        for service in {r["service"] for r in runs.values()}:
            found = jaeger.get(
                "/api/v3/traces",
                **{
                    "query.service_name": service,
                    "query.start_time_min": "2000-01-01T00:00:00Z",
                    "query.start_time_max": "2100-01-01T00:00:00Z",
                    "query.num_traces": "100",
                },
            )
            found_ids |= {
                span["traceId"].lower()
                for rs in found["result"]["resourceSpans"]
                for ss in rs["scopeSpans"]
                for span in ss["spans"]
            }
        assert {r["trace_id"] for r in runs.values()} <= found_ids
        assert fwd.stats()["dropped"] == 0 and fwd.stats()["failed"] == 0
    finally:
        collector.stop()


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_jaeger_outage_keeps_ingest_whole_and_forwards_the_queue_after_recovery(
    tmp_path: Path, jaeger: JaegerServer
) -> None:
    queue = 3000
    collector, fwd = start_forwarding(
        tmp_path,
        jaeger.otlp_grpc,
        forward_queue_size=queue,
        forward_hold_seconds=0,
        forward_spill_dir="memory",  # this test measures the in-memory queue's bound
    )
    # SQLite's writer page cache (64 MiB) fills as the index grows by ~19k runs; keep it
    # small here so the RSS measured below shows the forward queue, not the index cache.
    store = collector.store
    assert isinstance(store, SqliteStore)
    store._writer.execute("PRAGMA cache_size = -2048")
    sender = GrpcSender(collector.grpc_endpoint)
    try:
        before = [run_span("ingest", outputs=[f"s3://b/{i}"]) for i in range(20)]
        sender.send(request(before).SerializeToString())
        for span in before:
            wait_for_trace(jaeger, span.trace_id.hex(), span.span_id.hex())

        jaeger.stop()
        outage: list[list[Any]] = []
        rss: list[int] = []
        queue_bytes: list[int] = []
        started = time.monotonic()
        while time.monotonic() - started < 30:  # 30 s downstream outage under load
            spans = [
                run_span("clean", outputs=[f"s3://b/{os.urandom(6).hex()}"]) for _ in range(50)
            ]
            sender.send(request(spans).SerializeToString())  # acked at index speed
            outage.append(spans)
            stats = fwd.stats()
            assert stats["queue_spans"] <= queue
            queue_bytes.append(stats["queue_bytes"])
            rss.append(_rss_bytes())
            time.sleep(0.05)
        total = sum(len(s) for s in outage)
        assert collector.store.counts()["runs"] == len(before) + total  # index is whole
        stats = fwd.stats()
        queued, dropped = stats["queue_spans"], stats["dropped"]
        assert queued == queue and dropped == total - queue, stats
        # Memory stays flat: the queue is bounded in bytes too, and RSS in the last two
        # thirds of the outage grows by less than the queue's own size would allow.
        assert max(queue_bytes) <= queue * 400
        third = len(rss) // 3
        assert max(rss[third:]) - rss[third] < 32 * 1024 * 1024, (rss[third], max(rss[third:]))
        print(
            f"outage: {total} spans ingested, {queue} queued ({max(queue_bytes)} B), "
            f"{dropped} dropped; RSS {rss[third] >> 20} -> {max(rss[third:]) >> 20} MiB"
        )

        jaeger.restart()
        deadline = time.monotonic() + 60
        while fwd.stats()["queue_spans"] and time.monotonic() < deadline:
            time.sleep(0.2)
        stats = fwd.stats()
        assert stats["queue_spans"] == 0 and stats["sent"] == len(before) + queue, stats
        # The queue kept the oldest spans of the outage; the newest were dropped.
        first, last = outage[0][0], outage[-1][-1]
        wait_for_trace(jaeger, first.trace_id.hex(), first.span_id.hex())
        assert jaeger.trace_spans(last.trace_id.hex()) == []

        after = [run_span("train", outputs=[f"s3://b/m{i}"]) for i in range(10)]
        sender.send(request(after).SerializeToString())
        for span in after:
            wait_for_trace(jaeger, span.trace_id.hex(), span.span_id.hex())
    finally:
        sender.close()
        collector.stop()
