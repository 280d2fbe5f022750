"""Ingest worker processes: they store what in-process ingest stores, and a dead worker
loses nothing."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.index.store import open_store
from mltrace_collector.service.ingest.decode_workers import IngestWorkers, decode_and_prepare
from mltrace_collector.service.ingest.pipeline import IngestPipeline
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


def _stored(db: Path) -> dict[str, list[tuple[object, ...]]]:
    store = open_store(str(db), migrate=False)
    try:
        runs = store.query("SELECT * FROM runs ORDER BY run_id")
        io = store.query("SELECT * FROM run_io ORDER BY run_id, direction, artifact_id")
        artifacts = store.query("SELECT * FROM artifacts ORDER BY artifact_id")
    finally:
        store.close()
    return {
        "runs": [tuple(v for k, v in r.items() if k != "ingested_ns") for r in runs],
        "io": [tuple(r.values()) for r in io],
        "artifacts": [tuple(r.values()) for r in artifacts],
    }


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    open_store(str(path)).close()  # migrated, as the collector does before its workers
    return path


@pytest.fixture()
def workers(db: Path) -> Iterator[IngestWorkers]:
    pool = IngestWorkers(2, str(db))
    yield pool
    pool.close()


def test_workers_store_what_in_process_ingest_stores(
    workers: IngestWorkers, db: Path, tmp_path: Path
) -> None:
    body = _body("same")
    remote = workers.ingest(body, keep_runs=False)
    assert remote.runs == 50 and len(remote.batch.rejections) == 1
    assert remote.rows is None and remote.batch.runs == []  # only a summary comes back
    kept = workers.ingest(body, keep_runs=True)  # again: idempotent, runs for observers
    assert [r.run_id for r in kept.batch.runs] == [f"same-{i}" for i in range(50)]

    local_db = tmp_path / "local.db"
    local = open_store(str(local_db))
    try:
        decoded = decode_and_prepare(ExportTraceServiceRequest.FromString(body), body)
        assert decoded.rows is not None
        local.ingest_prepared([decoded.rows])
    finally:
        local.close()
    assert _stored(db) == _stored(local_db)
    assert len(_stored(db)["runs"]) == 50


def test_many_requests_through_both_workers_each_stored_once(
    workers: IngestWorkers, db: Path
) -> None:
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(lambda i: workers.ingest(_body(f"m{i}"), False).runs, range(24)))
    assert done == [50] * 24
    assert len(_stored(db)["runs"]) == 24 * 50
    assert len({w.process.pid for w in workers._pool}) == 2


def test_a_worker_killed_mid_request_loses_nothing(db: Path) -> None:
    store = open_store(str(db), migrate=False)
    pipeline = IngestPipeline(store, decode_workers=1)
    try:
        assert pipeline._workers is not None
        worker = pipeline._workers._pool[0]
        pipeline.export(ExportTraceServiceRequest.FromString(_body("warm")))  # worker is up
        os.kill(worker.process.pid or 0, signal.SIGSTOP)  # it will hold the next request
        body = _body("killed")
        with ThreadPoolExecutor(1) as pool:
            outcome = pool.submit(pipeline.export, ExportTraceServiceRequest.FromString(body))
            deadline = time.monotonic() + 10
            while not worker.pending:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            os.kill(worker.process.pid or 0, signal.SIGKILL)
            assert outcome.result(30).rejected_spans == 1  # ingested in the collector instead
        assert store.counts()["runs"] == 100
        again = pipeline.export(ExportTraceServiceRequest.FromString(_body("later")))
        assert again.rejected_spans == 1 and store.counts()["runs"] == 150
        assert pipeline._workers.restarts == 1
        assert pipeline._workers._pool[0].process.pid != worker.process.pid
    finally:
        pipeline.close()
        store.close()


def test_pipeline_with_workers_commits_and_feeds_observers(db: Path) -> None:
    store = open_store(str(db), migrate=False)
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
