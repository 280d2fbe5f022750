"""The ingest hot-path shortcuts (benchmarks/bench_ingest.py) change nothing that is stored.

``processor._json_safe`` skips plain strings/ints/string lists, resource attributes are
prefixed once per resource, and the store encodes JSON columns with reused encoders: the
decoded attributes and the stored JSON must be exactly what the plain versions produce.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from mltrace_collector.processor import decode_request
from mltrace_collector.store.base import open_store
from otel_mltrace import semconv
from tests.otlp_builders import request, run_span


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _request() -> ExportTraceServiceRequest:
    spans = []
    for n in range(2):
        span = run_span("fast", run_id=f"fast-{n}", inputs=["s3://b/a@sha256:01", "bq://t"])
        span.attributes.extend(
            [
                _kv("mltrace.param.lr", AnyValue(double_value=math.inf)),
                _kv("mltrace.metric.loss", AnyValue(double_value=0.25)),
                _kv("nested", AnyValue(array_value=ArrayValue(values=[
                    AnyValue(double_value=math.nan), AnyValue(string_value="x"),
                    AnyValue(int_value=3), AnyValue(bool_value=True)]))),
                _kv("map", AnyValue(kvlist_value=KeyValueList(values=[
                    _kv("deep", AnyValue(double_value=-math.inf))]))),
            ]
        )  # fmt: skip
        spans.append(span)
    req = request(spans, service="svc")
    req.resource_spans[0].resource.attributes.extend(
        [_kv("host.load", AnyValue(double_value=math.nan)), _kv("n", AnyValue(int_value=2))]
    )
    return req


def test_attributes_are_json_safe_and_resource_prefixed() -> None:
    runs = decode_request(_request()).runs
    assert [r.run_id for r in runs] == ["fast-0", "fast-1"]
    for run in runs:
        attrs = run.attributes
        assert attrs["resource.service.name"] == "svc"
        assert attrs["resource.host.load"] == "nan"
        assert attrs["resource.n"] == 2
        assert attrs[semconv.INPUTS] == ["s3://b/a@sha256:01", "bq://t"]
        assert attrs["mltrace.param.lr"] == "inf"
        assert attrs["mltrace.metric.loss"] == 0.25
        assert attrs["nested"] == ["nan", "x", 3, True]
        assert attrs["map"] == {"deep": "-inf"}
        assert run.params == {"lr": "inf"}
        json.dumps(attrs, allow_nan=False)  # strictly valid JSON


def test_stored_json_columns_match_plain_json_dumps(tmp_path: Path) -> None:
    runs = decode_request(_request()).runs
    store = open_store(str(tmp_path / "fast.db"))
    try:
        store.ingest(runs)
        rows = store.query(
            "SELECT run_id, params, metrics, tags, attributes FROM runs ORDER BY run_id"
        )
    finally:
        store.close()
    for run, row in zip(runs, rows, strict=True):
        assert row["params"] == json.dumps(run.params, sort_keys=True)
        assert row["metrics"] == json.dumps(run.metrics, sort_keys=True)
        assert row["tags"] == json.dumps(list(run.tags))
        assert row["attributes"] == json.dumps(run.attributes, sort_keys=True)
