"""Benchmark: record-ID ingest rate and single-record trace latency at 1M and 10M records.

Each batch run declares 1,000,000 prediction IDs (``pred-<run>-<i>``, each with a source
feature row ID) for one output artifact, in the chunks the SDK sends (10,000 IDs). Three
rates are measured:

* ``decode``: OTLP protobuf of record chunk spans -> ``RecordChunk`` (the processor);
* ``store``: ``Store.ingest`` of the chunks, 200,000 IDs per transaction (as the
  collector's group commit sees them);
* ``trace``: ``LineageQueries.trace(record_id)`` for random IDs once 1M and 10M records
  are indexed (median, p95, max over ``--samples`` IDs; a cold first call included).

Usage::

    .venv/bin/python benchmarks/bench_records.py [--sizes 1000000,10000000] [--samples 200]
    .venv/bin/python benchmarks/bench_records.py --postgres      # a throwaway local server
    .venv/bin/python benchmarks/bench_records.py --db postgresql://user@host/db
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from mltrace_collector.index.decode.processor import decode_request
from mltrace_collector.index.model import RecordChunk, RunRecord
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import Store, open_store
from otel_mltrace import semconv

PER_RUN = 1_000_000
CHUNK = 10_000
PER_TXN = 200_000


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, list):
        arr = ArrayValue(values=[AnyValue(string_value=v) for v in value])
        return KeyValue(key=key, value=AnyValue(array_value=arr))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def chunk_request(run: RunRecord, output: str, chunks: list[RecordChunk]) -> bytes:
    """An OTLP request of record chunk spans, as the SDK sends them: children of the run
    span (a chunk span of another span with the run ID is rejected as a duplicate's)."""
    spans = []
    for c in chunks:
        event = Span.Event(name=semconv.RECORDS_EVENT, attributes=[
            _kv(semconv.RECORDS_OUTPUT, output), _kv(semconv.RECORDS_CHUNK_INDEX, c.index),
            _kv(semconv.RECORDS_CHUNK_TOTAL, c.total), _kv(semconv.RECORDS_IDS, list(c.ids)),
            _kv(semconv.RECORDS_SOURCES, list(c.sources or ())),
        ])  # fmt: skip
        spans.append(Span(trace_id=bytes.fromhex(run.trace_id),
                          span_id=(c.index + 1).to_bytes(8, "big"),
                          parent_span_id=bytes.fromhex(run.span_id),
                          name=semconv.RECORDS_SPAN_NAME, events=[event],
                          attributes=[_kv(semconv.RECORDS_RUN_ID, run.run_id)]))  # fmt: skip
    req = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )
    return req.SerializeToString()


def batch_run(n: int) -> tuple[RunRecord, str, Iterator[list[RecordChunk]]]:
    run_id = f"predict-{n:04d}"
    output = f"s3://lake/predictions/run={n}/part-0.parquet@sha256:{n:064x}"
    run = RunRecord(
        run_id=run_id, component="predict", trace_id=f"{n:032x}", span_id=f"{n:016x}",
        parent_span_id=None, service="bench", start_ns=n * 10**12, end_ns=n * 10**12 + 10**9,
        status="ok", status_message=None, inputs=("s3://lake/model.pkl@sha256:" + "0" * 64,
        f"s3://lake/features/run={n}.parquet@sha256:{n:064x}"), outputs=(output,),
    )  # fmt: skip

    def groups() -> Iterator[list[RecordChunk]]:
        total = PER_RUN // CHUNK
        group: list[RecordChunk] = []
        for k in range(total):
            ids = tuple(f"pred-{n:04d}-{i:07d}" for i in range(k * CHUNK, (k + 1) * CHUNK))
            sources = tuple(f"feat-{n:04d}-{i:07d}" for i in range(k * CHUNK, (k + 1) * CHUNK))
            group.append(RecordChunk(output, k, total, ids, sources, run_id=run_id))
            if len(group) * CHUNK >= PER_TXN:
                yield group
                group = []
        if group:
            yield group

    return run, output, groups()


def trace_latency(store: Store, runs: int, samples: int) -> dict[str, float]:
    q = LineageQueries(store)
    rng = random.Random(runs)
    times = []
    for _ in range(samples):
        rid = f"pred-{rng.randrange(runs):04d}-{rng.randrange(PER_RUN):07d}"
        t0 = time.perf_counter()
        graph = q.trace(rid)
        times.append((time.perf_counter() - t0) * 1000)
        assert graph["root"] == {"kind": "record", "id": rid} and len(graph["runs"]) == 1
    times.sort()
    return {"trace_ms_median": round(statistics.median(times), 3),
            "trace_ms_p95": round(times[int(0.95 * (len(times) - 1))], 3),
            "trace_ms_max": round(times[-1], 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="indexed records to reach")
    parser.add_argument("--samples", type=int, default=200, help="traced IDs per size")
    parser.add_argument("--db", help="store URL/path (default: a temporary SQLite file)")
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    server = None
    tmp = tempfile.TemporaryDirectory(prefix="bench-records-")
    target = args.db or str(Path(tmp.name) / "records.db")
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.servers.postgres import PostgresServer

        server = PostgresServer.start()
        target = server.create_database()
    store = open_store(target)
    print(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                      "store": store.backend, "per_run": PER_RUN}))  # fmt: skip
    try:
        done = 0
        decode_s = store_s = 0.0
        run_ms = 0.0  # the slowest commit of a run span (after its 1M records)
        for size in sizes:
            while done < size:
                run, output, groups = batch_run(done // PER_RUN)
                for group in groups:  # chunk spans first, as the SDK exports them
                    body = chunk_request(run, output, group)
                    t0 = time.perf_counter()
                    chunks = decode_request(ExportTraceServiceRequest.FromString(body))
                    t1 = time.perf_counter()
                    store.ingest([], records=chunks.record_chunks)
                    t2 = time.perf_counter()
                    decode_s, store_s = decode_s + t1 - t0, store_s + t2 - t1
                t0 = time.perf_counter()
                store.ingest([run])  # checks the run's record rows all came from this span
                run_ms = max(run_ms, (time.perf_counter() - t0) * 1000)
                done += PER_RUN
            n = store.query("SELECT COUNT(*) AS n FROM records")[0]["n"]
            assert n == done, (n, done)
            row = {"indexed_records": n,
                   "decode_ids_per_s": round(done / decode_s),
                   "store_ids_per_s": round(done / store_s),
                   "run_span_commit_ms_max": round(run_ms, 2),
                   **trace_latency(store, done // PER_RUN, args.samples)}  # fmt: skip
            print(json.dumps(row), flush=True)
    finally:
        store.close()
        if server is not None:
            server.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
