"""Store rows built in C (``_otlp_fast.prepare_plain``) checked against the pure-Python path:
span by span (:func:`check_spans`) and request by request (:func:`check_decode_and_prepare`).
Importing it skips the importing test module when the C extension is not built.

Example::

    stats = Stats()
    corpus_check(request, request.SerializeToString(), stats)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mltrace_collector.index.decode import fast_rows, processor
from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.index.store import ingest_rows
from mltrace_collector.service.ingest import decode_workers
from otel_mltrace import semconv
from tests.support_compare import exact
from tests.support_processor_fast import canonical

_otlp_fast = pytest.importorskip(
    "mltrace_collector.index.decode._otlp_fast",
    reason="C extension mltrace_collector.index.decode._otlp_fast is not built: no C rows to "
    "compare (scripts/bootstrap.sh builds it in place)",
)
decode_spans, prepare_plain = _otlp_fast.decode_spans, _otlp_fast.prepare_plain


C = semconv.COMPONENT
P, M = semconv.PARAM_PREFIX, semconv.METRIC_PREFIX
NAN, INF = float("nan"), float("inf")


def c_rows(raw: bytes) -> Any:
    return prepare_plain(raw, ingest_rows.dumps_sorted, ingest_rows._split_artifact_id)


@dataclass
class Stats:
    requests: int = 0
    none: int = 0  # requests C left to the pure path (decode_spans None)
    done: int = 0
    todo: int = 0
    other: int = 0


def check_spans(request: ExportTraceServiceRequest, raw: bytes, stats: Stats) -> None:
    """prepare_plain(raw) span by span against the processor on the upb message."""
    stats.requests += 1
    got = c_rows(raw)
    assert (got is None) == (decode_spans(raw) is None)
    if got is None:
        stats.none += 1
        return
    done, todo, other = got
    assert type(done) is list and type(todo) is list and type(other) is int
    assert todo == sorted(set(todo))  # wire order, once each
    handed_back = set(todo)
    entries = iter(done)
    counted = 0
    for r, rs in enumerate(request.resource_spans):
        resource = processor.attributes(rs.resource.attributes)
        stored = processor._resource_attributes(resource)
        for s, ss in enumerate(rs.scope_spans):
            for k, one in enumerate(ss.spans):
                if (r, s, k) in handed_back:
                    stats.todo += 1
                    continue
                batch = DecodedBatch()
                processor._decode_into(batch, one, resource, stored)
                assert batch.rejections == [], "C accepted a span the processor rejects"
                assert batch.record_chunks == []
                if not batch.runs:
                    counted += 1
                    continue
                (run,) = batch.runs
                entry = next(entries, None)
                assert entry is not None, f"run span {(r, s, k)} neither done nor handed back"
                assert type(entry) is tuple and len(entry) == 3
                prepared = ingest_rows.prepare([run])
                assert exact(entry[0]) == exact(ingest_rows._run_row(run))
                assert exact(entry[1]) == exact(prepared.io[run.run_id])
                artifacts = [(aid, *row) for aid, row in prepared.artifacts.items()]
                assert exact(entry[2]) == exact(artifacts)
                assert not (run.output_summaries or run.record_chunks or run.checks)
                stats.done += 1
    assert next(entries, None) is None, "more C rows than run spans"
    assert counted == other
    stats.other += other


def pure(request: ExportTraceServiceRequest, raw: bytes | None) -> decode_workers.Decoded:
    """decode_and_prepare(keep_runs=False) as it was: decode_request on the pure path."""
    walk = processor.walk_spans
    processor.walk_spans = None
    try:
        batch = processor.decode_request(request, raw)
    finally:
        processor.walk_spans = walk
    runs = len(batch.runs)
    rows = None
    if batch.runs or batch.record_chunks or batch.run_starts:
        rows = ingest_rows.prepare(batch.runs, batch.record_chunks, batch.run_starts)
        rows.records = [r for r in rows.records if r.record_chunks or r.checks]
    batch.runs = []
    return decode_workers.Decoded(batch, rows, runs)


def comparable(decoded: decode_workers.Decoded) -> Any:
    rows = decoded.rows
    prepared = None
    if rows is not None:
        prepared = (
            exact(sorted(rows.runs, key=exact)),
            exact(dict(sorted(rows.io.items()))),
            exact(dict(sorted(rows.artifacts.items()))),
            exact(rows.outputs),
            canonical(list(rows.records)),
            canonical(list(rows.chunks)),
            exact(sorted(rows.starts)),
        )
    return canonical(decoded.batch), decoded.runs, prepared


def check_decode_and_prepare(request: ExportTraceServiceRequest, raw: bytes) -> bool:
    """The integrated fast path against the pure one; True when the C rows were used."""
    fast = decode_workers.decode_and_prepare(request, raw, keep_runs=False)
    expected = comparable(pure(request, raw))
    assert comparable(fast) == expected
    in_worker = decode_workers._decode_bytes(raw, keep_runs=False)  # parses lazily
    assert comparable(in_worker) == expected
    return fast_rows.decode_rows(request, raw) is not None


def corpus_check(request: ExportTraceServiceRequest, raw: bytes, stats: Stats) -> None:
    check_spans(request, raw, stats)
    check_decode_and_prepare(request, raw)
