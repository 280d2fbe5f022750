"""The collector's ``ExportHandler``: decode, then group-commit to the store, then notify.

With ingest workers (``decode_workers`` > 0, a file or server store) each request goes
to a worker process that decodes it and commits it with whatever else it holds (group
commit, see ``decode_workers``). Without them, or for a request whose worker died, the
request is decoded in the receiver thread and one writer thread inserts everything
waiting in one transaction. Either way the receiver acknowledges its client only after
the commit. Too many requests in flight raise ``Overloaded`` (HTTP 503 / gRPC
UNAVAILABLE with a retry delay): back-pressure instead of unbounded memory. Observers
(forwarders, metrics) see each request after its commit.

Example::

    pipeline = IngestPipeline(open_store("lineage.db"), decode_workers=2)
    outcome = pipeline.export(request, raw)  # returns after the runs are durable
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mltrace_collector.index.decode.isolation import commit_each, failure, reject_unstored
from mltrace_collector.index.decode.processor import rejection_message
from mltrace_collector.index.ingest import ExportOutcome, Overloaded, Rejected
from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.identity import StoredRun
from mltrace_collector.index.store.ingest_rows import Prepared
from mltrace_collector.service.ingest.decode_workers import (
    Decoded,
    IngestFailed,
    IngestWorkers,
    WorkerDied,
    decode_and_prepare,
)

log = logging.getLogger("mltrace_collector.pipeline")

Observer = Callable[[ExportTraceServiceRequest, DecodedBatch], None]
MAX_GROUP_RUNS = 20_000


@dataclass(frozen=True)
class _Pending:
    rows: Prepared
    done: Future[dict[str, StoredRun]]


class IngestPipeline:
    """Thread-safe ``ExportHandler`` with group commit and bounded queueing."""

    def __init__(
        self,
        store: Store,
        *,
        max_inflight: int = 64,
        retry_after_s: float = 1.0,
        decode_workers: int = 0,
    ) -> None:
        self.store = store
        self._max_inflight = max_inflight
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_inflight)
        self._retry_after_s = retry_after_s
        self._observers: list[Observer] = []
        self._writer = threading.Thread(target=self._write_loop, name="mltrace-writer", daemon=True)
        self._writer.start()
        # writer_busy_s: wall seconds spent in commits, summed over the writers (with ingest
        # workers it includes waiting for the writers' lock); writer_cpu_s: their CPU
        # seconds in that time (the serial part: about runs_committed / writer_cpu_s).
        self.stats: dict[str, float] = {
            "spans_received": 0,
            "runs_committed": 0,
            "spans_rejected": 0,
            "batches": 0,
            "commits": 0,
            "writer_busy_s": 0.0,
            "writer_cpu_s": 0.0,
            "records_dropped_duplicate_run": 0,
        }
        # records_dropped_duplicate_run: record rows of a duplicate run's early record chunk
        # spans deleted when the run ID's span was indexed (store.record_owners), by this
        # process's writer or a worker: mltrace_records_dropped_total{reason="duplicate_run"}.
        self._stats_lock = threading.Lock()
        self._workers: IngestWorkers | None = None
        target = store.shared_target()
        if decode_workers > 0 and target is not None:
            store.coordinate_writers()  # the workers write the same index
            self._workers = IngestWorkers(decode_workers, target, self._count_commit)
        elif decode_workers > 0:
            log.warning("an in-memory index cannot be shared: ingesting without workers")

    def add_observer(self, observer: Observer) -> None:
        """Called with each request and its decoded batch after the batch is committed."""
        self._observers.append(observer)

    def export(self, request: ExportTraceServiceRequest, raw: bytes | None = None) -> ExportOutcome:
        """Decode, commit, notify; ``raw``: the request as received (saves re-encoding it
        for a decode worker)."""
        keep_runs = bool(self._observers)  # observers read the decoded runs
        decoded = None
        if self._workers is not None:
            if self._workers.inflight >= self._max_inflight:
                raise Overloaded(self._retry_after_s)
            body = request.SerializeToString() if raw is None else raw
            try:
                decoded = self._workers.ingest(body, keep_runs)
            except WorkerDied as exc:
                log.error("%s: ingesting its request in the collector process", exc)
            except IngestFailed as exc:  # the receiver reports a failure
                raise (Rejected if exc.invalid else RuntimeError)(str(exc)) from None
        if decoded is None:
            decoded = self._commit_here(request, raw, keep_runs)
        batch = decoded.batch
        spans = decoded.runs + len(batch.rejections) + batch.other_spans
        for observer in self._observers:
            try:
                observer(request, batch)
            except Exception:  # an observer must never fail an ingest that is committed
                log.exception("observer %r failed", observer)
        with self._stats_lock:
            self.stats["spans_received"] += spans
            self.stats["runs_committed"] += decoded.runs
            self.stats["spans_rejected"] += len(batch.rejections)
            self.stats["batches"] += 1
        if batch.rejections:
            return ExportOutcome(len(batch.rejections), rejection_message(batch.rejections))
        return ExportOutcome()

    def _commit_here(
        self, request: ExportTraceServiceRequest, raw: bytes | None, keep_runs: bool
    ) -> Decoded:
        """Decode in this thread and commit through the writer thread's group commit."""
        decoded = decode_and_prepare(request, raw, keep_runs)
        if decoded.rows is not None:
            done: Future[dict[str, StoredRun]] = Future()
            try:
                self._queue.put_nowait(_Pending(decoded.rows, done))
            except queue.Full:
                raise Overloaded(self._retry_after_s) from None
            stored = done.result()  # raises why this request failed: the receiver reports it
            decoded.runs = reject_unstored(decoded.batch, decoded.rows, stored, decoded.runs)
        return decoded

    def _count_commit(self, wall_s: float, cpu_s: float, dropped: int = 0) -> None:
        with self._stats_lock:
            self.stats["commits"] += 1
            self.stats["writer_busy_s"] += wall_s
            self.stats["writer_cpu_s"] += cpu_s
            self.stats["records_dropped_duplicate_run"] += dropped

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            runs = len(item.rows.runs)
            stop = False
            while runs < MAX_GROUP_RUNS:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                runs += len(nxt.rows.runs)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Pending]) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        dropped = self.store.records_dropped  # only this thread ingests into self.store
        results = commit_each(self.store, [pending.rows for pending in group])
        dropped = self.store.records_dropped - dropped
        self._count_commit(time.perf_counter() - wall, time.thread_time() - cpu, dropped)
        for pending, result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                pending.done.set_exception(failure(result))
            else:
                pending.done.set_result(result)

    def close(self, timeout_s: float = 30.0) -> None:
        """Drain: commit everything in flight, then stop the workers and the writer.
        Idempotent."""
        if self._workers is not None:
            self._workers.close(timeout_s)
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout_s)
