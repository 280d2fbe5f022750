"""Records of a duplicate run that the index deletes are counted on ``/metrics``.

A record chunk span whose run ID has no indexed span yet is written; when another span
(with the same run ID) is then indexed, its rows are deleted (docs/semantics.md, "Record
chunk spans and duplicate run IDs"). A live ``otel-mltrace serve``, on SQLite and on
PostgreSQL, in-process and with decode workers (the deleting commit then runs in a worker
process): the duplicate's chunk span arrives first, then the indexed run's chunk and run
span, then the duplicate's run span (rejected). ``mltrace_records_dropped_total{reason=
"duplicate_run"}`` (and ``/healthz``) equals the number of record rows deleted, which the
index itself confirms; sending everything again (an exporter's retry) deletes and counts
nothing more.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from mltrace_collector.index.store import open_store
from tests.backends import target
from tests.otlp_builders import chunk_span, request, run_span
from tests.serve_process import ServeProcess

__all__ = ["target"]  # fixture: a fresh index on SQLite and on PostgreSQL

T0 = 1_700_000_000_000_000_000
MODEL, OTHER = "s3://b/model@v:1", "s3://b/other@v:1"
# Per run ID: the records of the indexed span A, and those of duplicate B (None: no
# duplicate). B's rows are all deleted, "shared" too (A's row of it stays).
CASES: dict[str, tuple[dict[str, list[str]], dict[str, list[str]] | None]] = {
    "dup-0": ({MODEL: ["a1", "a2", "shared"]}, {MODEL: ["b1", "shared"], OTHER: ["b2"]}),
    "dup-1": ({MODEL: ["a1"]}, {OTHER: [f"b{i}" for i in range(5)]}),
    "alone": ({MODEL: ["a1", "a2"]}, None),
}
DROPPED = sum(sum(map(len, b.values())) for _, b in CASES.values() if b is not None)


def arrivals() -> list[tuple[str, Span]]:
    """Each run ID's spans in the order that makes the index delete: B's chunk, A's chunk,
    A's run span (indexed: B's rows go), B's run span (rejected)."""
    sent: list[tuple[str, Span]] = []
    for run_id, (a_records, b_records) in CASES.items():
        a = run_span("train", run_id=run_id, start_ns=T0, outputs=list(a_records))
        if b_records is not None:
            b = run_span("train", run_id=run_id, start_ns=T0, outputs=list(b_records))
            sent.append(("chunk B", chunk_span(b, run_id, b_records)))
        sent += [("chunk A", chunk_span(a, run_id, a_records)), ("span A", a)]
        if b_records is not None:
            sent.append(("span B", b))
    return sent


def post(serve: ServeProcess, span: Span) -> ExportTraceServiceResponse:
    got = httpx.post(
        serve.http_url + "/v1/traces",
        content=request([span]).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert got.status_code == 200, got.text
    return ExportTraceServiceResponse.FromString(got.content)


def dropped_total(serve: ServeProcess) -> dict[str, float]:
    text = httpx.get(serve.http_url + "/metrics", timeout=10).text
    return {
        s.labels["reason"]: s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "mltrace_records_dropped"
        for s in fam.samples
        if s.name == "mltrace_records_dropped_total"
    }


def record_rows(target: str) -> dict[str, set[tuple[str, str]]]:
    """(output, record ID) of each run ID's record rows, as the index holds them."""
    store = open_store(target, migrate=False)
    try:
        rows = store.query(
            "SELECT s.run_id, s.output_artifact_id, r.record_id FROM records r "
            "JOIN record_sets s ON s.set_id = r.set_id"
        )
    finally:
        store.close()
    found: dict[str, set[tuple[str, str]]] = {}
    for r in rows:
        found.setdefault(r["run_id"], set()).add((r["output_artifact_id"], r["record_id"]))
    return found


@pytest.mark.parametrize("workers", [0, 2])
def test_duplicate_run_records_dropped_are_counted(
    target: str, workers: int, tmp_path: Path
) -> None:
    with ServeProcess.start(
        target, tmp_path / "serve.log", extra_args=["--decode-workers", str(workers)]
    ) as serve:
        assert dropped_total(serve) == {"duplicate_run": 0}
        sent = arrivals()
        for name, span in sent:
            rejected = post(serve, span).partial_success.rejected_spans
            assert rejected == (name == "span B"), name
        want = {run_id: {(o, r) for o, ids in a.items() for r in ids} for run_id, (a, _) in
                CASES.items()}  # fmt: skip
        assert record_rows(target) == want  # B's rows: deleted
        assert DROPPED == 8 and dropped_total(serve) == {"duplicate_run": DROPPED}
        health = httpx.get(serve.http_url + "/healthz", timeout=10).json()
        assert health["records_dropped_duplicate_run"] == DROPPED

        for name, span in sent:  # a retry of everything: B's chunk now rejected, not stored
            rejected = post(serve, span).partial_success.rejected_spans
            assert rejected == name.endswith("B"), name
        assert record_rows(target) == want
        assert dropped_total(serve) == {"duplicate_run": DROPPED}
        assert serve.terminate() == 0
    log = (tmp_path / "serve.log").read_text("utf-8", "replace")
    assert log.count("a duplicate run; its run span is rejected") == 3, log[-3000:]
