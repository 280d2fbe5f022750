"""One client's bad request never fails another's good one (issue 11).

A span with a timestamp >= 2^63 ns is legal protobuf but overflows the index column; it
used to fail the whole group commit it shared with other clients' requests (500 /
INTERNAL, not retried by exporters). Now it is rejected per span (partial success naming
the span and the field) on every decode path, and a group commit that fails anyway is
retried request by request, so that only the guilty request fails, with a 400.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from multiprocessing import Pipe
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from mltrace_collector.index.decode import fast_rows, processor
from mltrace_collector.index.decode.isolation import MAX_STORE_INT, commit_each, failure
from mltrace_collector.index.ingest import Rejected
from mltrace_collector.index.model import DecodedBatch, RunRecord
from mltrace_collector.index.store import Store, open_store
from mltrace_collector.index.store.ingest_rows import prepare
from mltrace_collector.index.store.sqlite import SqliteStore
from mltrace_collector.service.collector import Collector, CollectorSettings
from mltrace_collector.service.ingest.decode_workers import (
    Decoded,
    Ready,
    _commit_loop,
    decode_and_prepare,
)
from tests.backends import lineage_store  # noqa: F401  (fixture)
from tests.collector_variants import variant_collector
from tests.otlp_builders import GrpcSender, request, run_span

PB = {"Content-Type": "application/x-protobuf"}
VALID_REQUESTS = 300
SPANS_PER_REQUEST = 4
POISON_REQUESTS = 30


def _poison(field: str) -> tuple[ExportTraceServiceRequest, str]:
    """A request with one good run span and one whose ``field`` is 2^63 ns."""
    bad = run_span("poison", outputs=["s3://b/poison"])
    if field == "start":
        bad.start_time_unix_nano = 2**63
        bad.end_time_unix_nano = 2**63 + 5
    else:
        bad.end_time_unix_nano = 2**64 - 1
    return request([run_span("poison-neighbour"), bad]), bad.span_id.hex()


@pytest.mark.parametrize("field", ["start", "end"])
@pytest.mark.parametrize("path", ["c-rows", "walked", "pure"])
def test_poison_timestamp_rejected_on_every_decode_path(
    field: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "pure":  # neither C walk nor C rows: protobuf messages only
        monkeypatch.setattr(processor, "walk_spans", None)
        monkeypatch.setattr(fast_rows, "prepare_plain", None)
    req, bad_span = _poison(field)
    raw = req.SerializeToString()
    decoded = decode_and_prepare(req, raw, keep_runs=path == "walked")
    assert decoded.runs == 1
    assert decoded.rows is not None
    assert [row[1] for row in decoded.rows.runs] == ["poison-neighbour"]
    [rejection] = decoded.batch.rejections
    assert rejection.span_id == bad_span
    assert f"{field}_time_unix_nano" in rejection.reason
    assert str(MAX_STORE_INT) in rejection.reason


def _record(run_id: str, start_ns: int) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        component="c",
        trace_id="ab" * 16,
        span_id=os.urandom(8).hex(),
        parent_span_id=None,
        service=None,
        start_ns=start_ns,
        end_ns=start_ns,
        status="ok",
        status_message=None,
        inputs=(),
        outputs=(f"s3://b/{run_id}",),
    )


def test_worker_commit_loop_fails_only_the_refused_request(tmp_path: Path) -> None:
    """An ingest worker's writer (``_commit_loop``, on a real SQLite file and a real pipe):
    the refused request's reply carries the cause and ``invalid``; the others commit."""
    store = open_store(str(tmp_path / "lineage.db"))
    ready: queue.Queue[Ready | None] = queue.Queue()
    ours, theirs = Pipe()
    for task_id, run_id, start in [(0, "ok-0", 10), (1, "bad", 2**63), (2, "ok-2", 12)]:
        ready.put(
            (task_id, Decoded(DecodedBatch(), None, 1), None, prepare([_record(run_id, start)]))
        )
    ready.put(None)
    writer = threading.Thread(target=_commit_loop, args=(theirs, store, ready))
    writer.start()
    writer.join(30)
    replies, _ = ours.recv()
    by_task = {task_id: (decoded, error, invalid) for task_id, decoded, error, invalid in replies}
    assert by_task[0][0] is not None and by_task[2][0] is not None
    decoded, error, invalid = by_task[1]
    assert decoded is None and invalid and error is not None and "cannot store" in error
    assert {row["run_id"] for row in store.recent_runs(10)} == {"ok-0", "ok-2"}
    store.close()


def test_group_commit_failure_is_retried_one_by_one(lineage_store: Store) -> None:  # noqa: F811
    """A batch the store refuses (here built without the processor's check) fails alone;
    the batches committed with it are stored, and its error is a 400-class rejection."""
    good = [prepare([_record(f"good-{i}", 1000 + i)]) for i in range(3)]
    bad = prepare([_record("bad", 2**63)])
    results = commit_each(lineage_store, [good[0], bad, good[1], good[2]])
    assert [isinstance(r, Exception) for r in results] == [False, True, False, False]
    problem = failure(results[1])  # type: ignore[arg-type]
    assert isinstance(problem, Rejected)
    assert "cannot store" in str(problem)
    stored = {row["run_id"] for row in lineage_store.recent_runs(10)}
    assert stored == {"good-0", "good-1", "good-2"}


def test_a_store_failure_fails_the_group_without_one_by_one_retries(tmp_path: Path) -> None:
    """Only data can be guilty alone: a store that cannot write (here a SQLite index opened
    read-only under the writer) fails every batch of the group, and none is retried alone
    (a retry could find rows of the failed commit and answer "stored")."""
    store = open_store(str(tmp_path / "index.db"))
    try:
        assert isinstance(store, SqliteStore)
        store._writer.execute("PRAGMA query_only = ON")
        batches = [prepare([_record(f"r-{i}", 1000 + i)]) for i in range(3)]
        results = commit_each(store, batches)
        assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
        assert not isinstance(failure(results[0]), Rejected)  # type: ignore[arg-type]
        store._writer.execute("PRAGMA query_only = OFF")
        assert store.recent_runs(10) == []
    finally:
        store.close()


@pytest.fixture(params=["sqlite-workers", "sqlite-in-process", "postgres-workers"])
def busy_collector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Collector]:
    with variant_collector(request, tmp_path) as service:
        yield service


Answers = tuple[list[tuple[int, bytes]], list[tuple[str, int, bytes]]]


def _mixed_traffic(collector: Collector) -> Answers:
    """300 valid requests from 6 clients, with 30 poison requests in among them; returns
    (status, body) of the valid ones and (poison span ID, status, body) of the others."""
    assert collector.http is not None
    url = f"http://127.0.0.1:{collector.http.port}/v1/traces"
    bodies = [
        request([run_span(f"valid-{i}") for _ in range(SPANS_PER_REQUEST)]).SerializeToString()
        for i in range(VALID_REQUESTS)
    ]
    poisons = [_poison("start" if i % 2 else "end") for i in range(POISON_REQUESTS)]
    valid_answers: list[tuple[int, bytes]] = []
    poison_answers: list[tuple[str, int, bytes]] = []
    lock = threading.Lock()
    every = VALID_REQUESTS // POISON_REQUESTS

    def client(k: int, clients: int) -> None:
        with httpx.Client(timeout=60) as http:
            for i in range(k, VALID_REQUESTS, clients):
                got = http.post(url, content=bodies[i], headers=PB)
                with lock:
                    valid_answers.append((got.status_code, got.content))
                if i % every == 0:  # the bad client, sending while the others do
                    req, span = poisons[i // every]
                    bad = http.post(url, content=req.SerializeToString(), headers=PB)
                    with lock:
                        poison_answers.append((span, bad.status_code, bad.content))

    threads = [threading.Thread(target=client, args=(k, 6)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(valid_answers) == VALID_REQUESTS
    failed = [status for status, _ in valid_answers if status != 200]
    assert failed == [], f"{len(failed)} of {VALID_REQUESTS} valid requests failed"
    for _, content in valid_answers:
        assert not ExportTraceServiceResponse.FromString(content).HasField("partial_success")
    assert len(poison_answers) == POISON_REQUESTS
    return valid_answers, poison_answers


def test_poison_request_among_300_valid_ones(busy_collector: Collector) -> None:
    """Acceptance: every valid request from the other clients succeeds; each poison
    request gets a partial success naming its span and the field."""
    _, poison_answers = _mixed_traffic(busy_collector)
    for span, status, content in poison_answers:
        assert status == 200
        partial = ExportTraceServiceResponse.FromString(content).partial_success
        assert partial.rejected_spans == 1
        assert span in partial.error_message
        assert "_time_unix_nano" in partial.error_message
    counts = busy_collector.store.counts()
    assert counts["runs"] == VALID_REQUESTS * SPANS_PER_REQUEST + POISON_REQUESTS


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_data_the_store_refuses_fails_only_its_request(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second line of defence: with the per-span check switched off, the poison reaches
    the store and fails its group commit; the group is retried request by request, the
    valid requests are all stored, and the poison one alone gets a 400 naming the cause."""
    monkeypatch.setattr(processor, "MAX_STORE_INT", 2**64)
    monkeypatch.setattr(fast_rows, "prepare_plain", None)  # its check is in C
    db = str(tmp_path / "lineage.db")
    if backend == "postgres":
        db = request.getfixturevalue("postgres_url")
    settings = CollectorSettings.resolve(
        db=db, grpc_address="127.0.0.1:0", http_address="127.0.0.1:0", decode_workers=0
    )
    service = Collector(settings)
    service.start()
    try:
        _, poison_answers = _mixed_traffic(service)
        for _, status, content in poison_answers:
            assert status == 400
            assert b"cannot store this request's data" in content
        assert service.grpc is not None
        sender = GrpcSender(f"http://127.0.0.1:{service.grpc.port}")
        try:
            with pytest.raises(grpc.RpcError) as caught:
                sender.send(_poison("start")[0].SerializeToString())
        finally:
            sender.close()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "cannot store this request's data" in str(caught.value.details())
        counts = service.store.counts()
        assert counts["runs"] == VALID_REQUESTS * SPANS_PER_REQUEST
    finally:
        service.stop()


def test_poison_over_grpc_is_a_partial_success(collector: Collector) -> None:
    assert collector.grpc is not None
    req, span = _poison("end")
    sender = GrpcSender(f"http://127.0.0.1:{collector.grpc.port}")
    try:
        response = sender.send(req.SerializeToString())
    finally:
        sender.close()
    assert response.partial_success.rejected_spans == 1
    assert span in response.partial_success.error_message
    assert "end_time_unix_nano" in response.partial_success.error_message
