"""Decode worker processes: same rows as decoding in process, and a dead worker loses nothing."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from mltrace_collector.decode_workers import Decoded, DecodeWorkers, decode_and_prepare
from mltrace_collector.model import DecodedBatch
from mltrace_collector.pipeline import IngestPipeline
from mltrace_collector.store.base import open_store
from otel_mltrace import semconv
from tests.otlp_builders import plain_span, request, run_span
from tests.serve_process import ServeProcess


def _body(tag: str, n: int = 50) -> bytes:
    spans = [
        run_span(
            "train",
            run_id=f"{tag}-{i}",
            inputs=[f"s3://b/{tag}/in{i % 3}.csv@sha256:{i % 3:064x}", "s3://b/unversioned"],
            outputs=[f"s3://b/{tag}/model{i}"],
        )
        for i in range(n)
    ]
    bad = run_span("train", run_id=f"{tag}-bad")
    bad.attributes.append(KeyValue(key=semconv.INPUTS, value=AnyValue(int_value=3)))
    spans += [bad, plain_span("http GET", os.urandom(16))]
    return request(spans).SerializeToString()


def _same(a: Decoded, b: Decoded) -> None:
    assert a.rows is not None and b.rows is not None
    assert sorted(a.rows.runs) == sorted(b.rows.runs)
    assert a.rows.io == b.rows.io
    assert a.rows.artifacts == b.rows.artifacts
    assert a.rows.outputs == b.rows.outputs
    assert (a.runs, a.batch.other_spans) == (b.runs, b.batch.other_spans)
    assert a.batch.rejections == b.batch.rejections


@pytest.fixture()
def workers() -> Iterator[DecodeWorkers]:
    pool = DecodeWorkers(2)
    yield pool
    pool.close()


def test_workers_make_the_rows_of_in_process_decoding(workers: DecodeWorkers) -> None:
    body = _body("same")
    local = decode_and_prepare(ExportTraceServiceRequest.FromString(body), body, keep_runs=False)
    remote = workers.decode(body, keep_runs=False)
    _same(remote, local)
    assert remote.runs == 50 and len(remote.batch.rejections) == 1
    assert remote.batch.runs == []  # not kept: nobody observes them
    kept = workers.decode(body, keep_runs=True)
    assert [r.run_id for r in kept.batch.runs] == [f"same-{i}" for i in range(50)]


def test_a_killed_worker_loses_no_batch(workers: DecodeWorkers) -> None:
    first = workers.decode(_body("before"), keep_runs=False)
    assert first.runs == 50
    pids = list(workers._pool._processes)  # the test kills a worker on purpose
    assert pids, "the pool has started its workers"
    pool = workers._pool
    os.kill(pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not pool._broken and time.monotonic() < deadline:  # the executor notices the death
        time.sleep(0.05)
    assert pool._broken
    body = _body("after")
    after = workers.decode(body, keep_runs=False)  # decoded in process if the pool broke
    local = decode_and_prepare(ExportTraceServiceRequest.FromString(body), body, keep_runs=False)
    _same(after, local)
    again = workers.decode(_body("later"), keep_runs=False)  # the rebuilt pool serves
    assert again.runs == 50
    assert workers.restarts == 1 and workers._pool is not pool


def test_pipeline_with_workers_commits_and_feeds_observers(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "w.db"))
    store.migrate()
    pipeline = IngestPipeline(store, decode_workers=2)
    seen: list[DecodedBatch] = []
    pipeline.add_observer(lambda _request, batch: seen.append(batch))
    try:
        body = _body("pipe")
        outcome = pipeline.export(ExportTraceServiceRequest.FromString(body), body)
        assert outcome.rejected_spans == 1 and semconv.INPUTS in outcome.error_message
        assert store.counts()["runs"] == 50
        assert len(seen) == 1 and len(seen[0].runs) == 50  # observers get the decoded runs
        assert pipeline.stats["runs_committed"] == 50 and pipeline.stats["commits"] == 1
        again = pipeline.export(ExportTraceServiceRequest.FromString(body))  # no raw: re-encoded
        assert again.rejected_spans == 1
        assert store.counts()["runs"] == 50 and store.counts()["io"] == 150  # idempotent
    finally:
        pipeline.close()
        store.close()


def test_workers_exit_when_the_collector_is_killed(tmp_path: Path) -> None:
    serve = ServeProcess.start(str(tmp_path / "k.db"), tmp_path / "serve.log")
    try:
        body = _body("kill")
        response = httpx.post(
            serve.http_url + "/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert response.status_code == 200
        children = serve.children()
        assert children, "the collector decoded through worker processes"
        serve.proc.kill()  # SIGKILL: no shutdown code runs in the collector
        serve.proc.wait(10)
        deadline = time.monotonic() + 15
        while [c for c in children if Path(f"/proc/{c}").exists()]:
            assert time.monotonic() < deadline, f"orphaned workers: {children}"
            time.sleep(0.2)
    finally:
        serve.kill()
