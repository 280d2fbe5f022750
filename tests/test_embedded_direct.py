"""Embedded mode's direct decode (``embedded_spans.decode_spans``) against the OTLP round
trip it replaces (``decode_request(encode_spans(spans))``, what the collector does with the
request the SDK's exporter sends): the same ``DecodedBatch`` and the same index contents.

The spans are real SDK spans: runs with params, metrics, metric series, output summaries,
records (record chunk spans too), checks, errors, nesting, a start record, the
application's own spans, and hand-set attribute values the OTLP encoder changes or drops
(64-bit overflow, lone surrogates, int arrays, numpy floats, NaN), under two resources
(one of them equal to the first but a distinct object) and several scopes, in random
orders.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

import otel_mltrace as mlt
from mltrace_collector.index import embedded_spans
from mltrace_collector.index.decode import processor
from mltrace_collector.index.decode.processor import rejection_message
from mltrace_collector.index.embedded import EmbeddedIndexExporter
from mltrace_collector.index.embedded_spans import decode_spans
from mltrace_collector.index.store import open_store
from otel_mltrace import semconv
from tests.support_processor_fast import canonical, chunked_and_checked_runs

C = semconv.COMPONENT


def _sdk_spans(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """What ``mlt.run`` really emits (``provider`` is the configured one)."""
    with mlt.run(
        "clean", inputs=["s3://bucket/ref.parquet", 's3://b/it\'s "x"'], params={"k": 3}
    ) as r:
        out = r.add_output("s3://bucket/clean.parquet", version="v:1")
        r.log_param("mode", "fast")
        r.log_param("ratio", float("nan"))
        for step in range(4):  # a metric series
            r.log_metric("loss", 1.0 / (step + 1), step=step)
        r.log_metric("rows", 1)
        r.log_output("values", [1.0, 2.0, None, float("nan")])
        r.log_output("label", ["a", "b", "a", None])
        r.log_records(out, ["r1", "r2"], sources=["s1", "s2"])
    chunked_and_checked_runs()
    with pytest.raises(ZeroDivisionError), mlt.run("crash"):
        _ = 1 / 0
    with mlt.run("slow", tags=["long", "ünïcode"]):  # open long enough for a start record
        deadline = time.monotonic() + 10
        while not any(s.name == semconv.RUN_START_SPAN_NAME for s in exporter.get_finished_spans()):
            assert time.monotonic() < deadline, "no start record within 10 s"
            time.sleep(0.05)
    with mlt.run("pipeline"), mlt.run("step") as inner:
        inner.log_metric("x", 2.0)
    for _ in range(30):  # the tight loop's spans
        with mlt.run("loop", inputs=["s3://a"], outputs=["s3://b"]):
            pass


def _hand_spans(provider: TracerProvider) -> None:
    """Spans set by hand, with values the OTLP encoder changes or drops."""
    plain = provider.get_tracer("plain")
    other = provider.get_tracer("other", "1.0")
    for tracer in (plain, other, plain):
        with tracer.start_as_current_span("http") as span:
            span.set_attribute("http.method", "GET")
        with tracer.start_as_current_span("logged") as span:
            span.add_event("log", {"msg": "x"})
    cases: list[dict[str, Any]] = [
        {C: "typed", "mltrace.param.n": 2**62, "flag": True, "ratio": -0.0, "empty": ()},
        {C: "overflow", "mltrace.param.big": 2**70},  # dropped by the encoder
        {C: "surrogate", "note": "a\ud800b"},  # dropped by the encoder
        {C: "surrogate-key", "k\udc00": "v"},
        {C: "ints", "sizes": (1, 2, 3), "bools": (True, False)},
        {C: "floats", "x": np.float64(0.5), "inf": float("inf"), "nan": float("nan")},
        {C: "nul", semconv.CODE_FUNCTION: "f\x00g", "mltrace.metric.m": 3},
        {C: "ナイーブ", semconv.RUN_ID: "dup", "mltrace.param.p": "first"},
        {C: "again", semconv.RUN_ID: "dup", "mltrace.param.p": "second"},
        {C: "bad-inputs", semconv.INPUTS: "not-a-list"},  # rejected
        {C: "bad-metric", "mltrace.metric.m": "high"},  # rejected
        {C: "", "x": 1},  # rejected: empty component
        {C: "bad-tags", semconv.TAGS: (1, 2)},  # rejected
        {semconv.RECORDS_RUN_ID: ""},  # a record chunk span, rejected
        {"not": "a run", "n": 2**64},
    ]
    for i, attrs in enumerate(cases):
        tracer = plain if i % 2 else other
        with tracer.start_as_current_span(f"case-{i}", attributes=attrs) as span:
            if i % 3 == 0:
                span.set_status(Status(StatusCode.ERROR, f"broke {i}"))
            elif i % 3 == 1:
                span.set_status(Status(StatusCode.OK))


@pytest.fixture(scope="module")
def spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    resource = Resource.create({"service.name": "direct", "host.tags": ("a", "b")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    mlt.configure(service_name="direct", tracer_provider=provider, add_exporter=False)
    try:
        _sdk_spans(provider, exporter)
        _hand_spans(provider)
        # an equal resource in a distinct object, and a different one
        twin = TracerProvider(resource=Resource.create(dict(resource.attributes)))
        other = TracerProvider(resource=Resource.create({"service.name": "other", "n": 1}))
        for p in (twin, other):
            p.add_span_processor(SimpleSpanProcessor(exporter))
            _hand_spans(p)
        provider.force_flush()
        got = list(exporter.get_finished_spans())
    finally:
        mlt.shutdown()
    assert any(s.name == semconv.RUN_START_SPAN_NAME for s in got)
    assert any(semconv.RECORDS_RUN_ID in (s.attributes or {}) for s in got)
    return got


def _round_trip(spans: Sequence[ReadableSpan]) -> Any:
    return processor.decode_request(encode_spans(spans))


WALL_CLOCK = ("ingested_ns", "applied_ns", "flagged_ns")  # when a row was written, not what it says


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in rowid order (WITHOUT ROWID tables: in key order), the
    wall-clock columns blanked."""
    db = sqlite3.connect(path)
    try:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        out: dict[str, list[tuple[Any, ...]]] = {}
        for name in tables:
            columns = [row[1] for row in db.execute(f'PRAGMA table_info("{name}")')]
            query = f'SELECT * FROM "{name}"'  # noqa: S608 - names from the catalog
            try:
                rows = db.execute(query + " ORDER BY rowid").fetchall()
            except sqlite3.OperationalError:  # WITHOUT ROWID: the primary key orders it
                rows = db.execute(query).fetchall()
            out[name] = [
                tuple(None if c in WALL_CLOCK else v for c, v in zip(columns, row, strict=True))
                for row in rows
            ]
        return out
    finally:
        db.close()


def _index(path: Path, batch: Any) -> dict[str, list[tuple[Any, ...]]]:
    store = open_store(str(path))
    try:
        store.ingest(batch.runs, batch.record_chunks, batch.run_starts)
    finally:
        store.close()
    return _dump(path)


def test_direct_decode_equals_the_otlp_round_trip(spans: list[ReadableSpan]) -> None:
    direct = decode_spans(spans)
    assert canonical(direct) == canonical(_round_trip(spans))
    assert direct.rejections and direct.record_chunks and direct.run_starts
    assert direct.other_spans and any(run.output_summaries for run in direct.runs)
    assert any(run.checks for run in direct.runs)
    assert any(semconv.METRIC_SERIES in run.attributes for run in direct.runs)


@pytest.mark.parametrize("seed", range(6))
def test_shuffled_subsets_decode_the_same(spans: list[ReadableSpan], seed: int) -> None:
    rng = random.Random(seed)
    subset = rng.sample(spans, rng.randint(1, len(spans)))
    assert canonical(decode_spans(subset)) == canonical(_round_trip(subset))


def test_index_contents_are_identical(spans: list[ReadableSpan], tmp_path: Path) -> None:
    rng = random.Random(7)
    order = rng.sample(spans, len(spans))
    direct = _index(tmp_path / "direct.db", decode_spans(order))
    reference = _index(tmp_path / "otlp.db", _round_trip(order))
    assert direct == reference
    assert len(direct["runs"]) > 40 and direct["records"]
    for table, rows in direct.items():
        assert rows == reference[table], table


def test_plain_runs_skip_the_protobuf_round_trip(
    spans: list[ReadableSpan], monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []

    def counting(batch: Sequence[ReadableSpan]) -> Any:
        encoded.append(len(batch))
        return encode_spans(batch)

    monkeypatch.setattr(embedded_spans, "encode_spans", counting)
    loop = [s for s in spans if (s.attributes or {}).get(C) == "loop"]
    assert len(loop) == 30
    batch = decode_spans(loop)
    assert len(batch.runs) == 30
    assert encoded == [1]  # the resource's attributes, once per batch: no span round trip


def test_the_embedded_exporter_indexes_through_the_direct_decode(
    spans: list[ReadableSpan], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _round_trip(spans)
    expected = _index(tmp_path / "otlp.db", reference)
    encoded: list[int] = []

    def counting(batch: Sequence[ReadableSpan]) -> Any:
        encoded.append(len(batch))
        return encode_spans(batch)

    monkeypatch.setattr(embedded_spans, "encode_spans", counting)
    exporter = EmbeddedIndexExporter(str(tmp_path / "embedded.db"))
    try:
        rejected = exporter.index_spans(spans)
    finally:
        exporter.shutdown()
    assert rejected == (len(reference.rejections), rejection_message(reference.rejections))
    assert _dump(tmp_path / "embedded.db") == expected
    assert sum(encoded) < len(spans) / 2  # most spans skipped the round trip
