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

from mltrace_collector.index.decode.processor import decode_request
from mltrace_collector.index.store import open_store
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


def test_multi_row_statements_group_commit_and_first_seen(tmp_path: Path) -> None:
    """``writes.statement_chunks`` chunks (powers of two, remainders) store every row once; a
    group of prepared batches with a duplicate keeps the earliest ``first_seen_ns``."""
    from mltrace_collector.index.model import RunRecord
    from mltrace_collector.index.store.ingest_rows import prepare

    def run(n: int, start: int) -> RunRecord:
        return RunRecord(
            run_id=f"m-{n:05d}", component="c", trace_id="0" * 32, span_id=f"{n:016x}",
            parent_span_id=None, service="s", start_ns=start, end_ns=start + 5, status="ok",
            status_message=None, inputs=("shared@v:1", f"in/{n % 7}"),
            outputs=(f"out/{n}@v:1",), tags=("t",) if n % 2 else (),
        )  # fmt: skip

    first = [run(n, 1_000 + n) for n in range(1_237)]  # 1,237 = 1,024 + 128 + 64 + 16 + 4 + 1
    later = [run(n, 5_000 + n) for n in range(1_200, 1_300)]
    store = open_store(str(tmp_path / "multi.db"))
    try:
        store.ingest_prepared([prepare(later), prepare(first), prepare(later)])
        store.ingest(later)  # retried: nothing new
        assert store.counts() == {"runs": 1_300, "artifacts": 1 + 7 + 1_300, "io": 3 * 1_300}
        assert store.artifact("shared@v:1")["first_seen_ns"] == 1_000  # type: ignore[index]
        assert store.artifact("in/3")["first_seen_ns"] == 1_003  # type: ignore[index]
        assert store.get_run("m-01250") is not None
        assert store.run_io("m-01299")[0]["artifact_id"] == "in/4"  # 1299 % 7
        assert store.get_run("m-00003")["tags"] == ["t"]  # type: ignore[index]
        ingested = {r["ingested_ns"] for r in store.query("SELECT ingested_ns FROM runs")}
        assert len(ingested) == 1  # one transaction, one commit-time stamp
    finally:
        store.close()


def test_one_pass_span_attributes_equal_the_plain_decoding() -> None:
    """``processor._span_attributes`` == ``_json_safe(attributes(...))`` for every kind."""
    from mltrace_collector.index.decode.processor import _json_safe, _span_attributes, attributes

    kvs = [
        _kv("s", AnyValue(string_value="x")),
        _kv("i", AnyValue(int_value=-(2**63))),
        _kv("b", AnyValue(bool_value=False)),
        _kv("d", AnyValue(double_value=1.5)),
        _kv("raw", AnyValue(bytes_value=b"\x00\xff")),
        _kv("empty", AnyValue()),
        _kv("ints", AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)]))),
        _kv("mixed", AnyValue(array_value=ArrayValue(values=[
            AnyValue(string_value="a"), AnyValue(double_value=math.inf)]))),
        _kv("none", AnyValue(array_value=ArrayValue())),
        _kv("dup", AnyValue(string_value="first")),
        _kv("dup", AnyValue(int_value=2)),
    ]  # fmt: skip
    for subset in (kvs[:4] + kvs[8:], kvs):
        attrs, safe = _span_attributes(subset)
        assert attrs == attributes(subset)
        stored = attrs if safe else _json_safe(attrs)
        assert json.dumps(stored, sort_keys=True) == json.dumps(
            _json_safe(attributes(subset)), sort_keys=True
        )
        assert safe is (subset is not kvs)


def test_sqlite_or_ignore_never_drops_a_row_silently(tmp_path: Path) -> None:
    """SQLite ingests with ``INSERT OR IGNORE`` (no statement journals); a row that the
    ``NOT NULL`` constraints would have rejected fails the commit instead of vanishing."""
    import pytest

    from mltrace_collector.index.model import RunRecord
    from mltrace_collector.index.store.ingest_rows import prepare

    def run(n: int) -> RunRecord:
        return RunRecord(
            run_id=f"g-{n}", component="c", trace_id="0" * 32, span_id=f"{n:016x}",
            parent_span_id=None, service="s", start_ns=10, end_ns=20, status="ok",
            status_message=None, inputs=(f"in/{n}@v:1",), outputs=(f"out/{n}@v:1",),
        )  # fmt: skip

    store = open_store(str(tmp_path / "ignore.db"))
    try:
        assert store.insert_or_ignore
        store.ingest([run(0), run(1)])
        store.ingest([run(1), run(0), run(2)])  # a retried batch plus one new run: fine
        assert store.counts()["runs"] == 3 and store.counts()["io"] == 6

        broken_run = prepare([run(3)])
        broken_run.runs = [(*broken_run.runs[0][:1], None, *broken_run.runs[0][2:])]
        with pytest.raises(RuntimeError, match="runs not written.*g-3"):
            store.ingest_prepared([broken_run])

        broken_io = prepare([run(4)])
        broken_io.io["g-4"] = [(*broken_io.io["g-4"][0][:3], None, 1)]
        with pytest.raises(RuntimeError, match="1 of 1 rows were not written"):
            store.ingest_prepared([broken_io])
        assert store.counts()["runs"] == 3  # both rolled back whole
    finally:
        store.close()
