"""Ingest worker processes: export request bytes in, committed runs out.

Decoding spans, building their rows and inserting them is CPU work in Python, and one
process has one GIL: a collector that decodes in its receivers and writes in one writer
thread ingests at the speed of one core, and its writer waits for the GIL every time
``sqlite3`` hands it over around a statement step. ``IngestWorkers`` runs ``N`` worker
processes that each parse, decode, prepare *and commit* the requests sent to them: a
worker takes every request waiting in its pipe, decodes them all, then writes them in one
transaction (group commit) and answers each. Only the request bytes go in and a small
summary comes back (the decoded runs too, when observers want them); the rows never
cross a process boundary. Workers of one SQLite file queue their transactions on a
kernel lock (``SqliteStore.coordinate_writers``); PostgreSQL queues them itself.

A worker that dies (killed, out of memory) loses nothing: it is restarted, and the
requests it had not answered fail with ``WorkerDied``; the pipeline then ingests them in
the collector process (a request committed just before the death is a no-op the second
time: ingest is idempotent). Workers exit when the collector process disappears.

Example::

    workers = IngestWorkers(2, "lineage.db")
    decoded = workers.ingest(request.SerializeToString(), keep_runs=False)  # committed
    workers.close()
"""

from __future__ import annotations

import atexit
import gc
import itertools
import logging
import os
import queue
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mltrace_collector.index.decode.fast_rows import decode_rows
from mltrace_collector.index.decode.isolation import (
    CommitResult,
    commit_each,
    failure,
    reject_unstored,
)
from mltrace_collector.index.decode.processor import decode_request
from mltrace_collector.index.ingest import Rejected
from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.index.store import Store, open_store
from mltrace_collector.index.store.ingest_rows import Prepared, prepare

log = logging.getLogger("mltrace_collector.decode_workers")
MAX_GROUP_REQUESTS = 64
"""Requests one worker commits together at most (its group commit)."""


@dataclass
class Decoded:
    """One request, decoded and turned into rows (``rows`` is None when nothing to store)."""

    batch: DecodedBatch
    """Rejections and counts; ``batch.runs`` only when decoded with ``keep_runs``."""
    rows: Prepared | None
    runs: int
    """Runs decoded (``len(batch.runs)`` before ``keep_runs`` dropped them)."""


def decode_and_prepare(
    request: ExportTraceServiceRequest, raw: bytes | None = None, keep_runs: bool = True
) -> Decoded:
    """Decode ``request`` (``raw``: serialized, if at hand) and build its store rows: the
    work a decode worker does. Without ``keep_runs`` the rows of plain run spans are built
    by the C extension straight from ``raw`` (fast_rows.py), the same rows either way."""
    if not keep_runs and raw is not None:
        fast = decode_rows(request, raw)
        if fast is not None:
            return Decoded(*fast)
    batch = decode_request(request, raw)
    runs = len(batch.runs)
    rows = None
    if batch.runs or batch.record_chunks or batch.run_starts:
        rows = prepare(batch.runs, batch.record_chunks, batch.run_starts)
        if not keep_runs:  # what crosses back to the collector: only what the writer needs
            rows.records = [r for r in rows.records if r.record_chunks or r.checks]
    if not keep_runs:
        batch.runs = []
    return Decoded(batch, rows, runs)


def _decode_bytes(raw: bytes, keep_runs: bool) -> Decoded:
    if not keep_runs:  # the C rows: parsed with upb only where C hands spans back
        fast = decode_rows(None, raw)
        if fast is not None:
            return Decoded(*fast)
    return decode_and_prepare(ExportTraceServiceRequest.FromString(raw), raw, keep_runs)


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: the collector drains and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()  # the imports: never garbage, no need to walk them on every collection
    gc.set_threshold(50_000, 20, 20)  # the same policy as the collector (service.tune_gc)
    parent = os.getppid()

    def exit_with_parent() -> None:  # a SIGKILLed collector must not leave workers behind
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="parent-watch", daemon=True).start()


Task = tuple[int, bytes, bool]
"""``(task ID, serialized request, keep_runs)``: what the collector sends a worker."""
Reply = tuple[int, Decoded | None, str | None, bool]
"""``(task ID, decoded request without its rows, error message, whether the error is the
request's data)``: one per task."""


Ready = tuple[int, Decoded | None, str | None, Prepared | None]
"""A decoded task waiting for its commit: reply parts and its rows."""


def _commit_loop(conn: Connection, store: Store, ready: queue.Queue[Ready | None]) -> None:
    """A worker's writer thread: commit everything decoded so far in one transaction (one
    by one if that fails: ``isolation.commit_each``), then answer ``(replies, (wall_s,
    cpu_s, records dropped) of the commits or None)``; records dropped: rows of duplicate
    runs the commits deleted (``Store.records_dropped``), counted by the collector. Requests
    decoded while it commits (or waits for the writers' lock) form the next group."""
    while True:
        group = [ready.get()]
        while len(group) < MAX_GROUP_REQUESTS and group[-1] is not None:
            try:
                group.append(ready.get_nowait())
            except queue.Empty:
                break
        items = [item for item in group if item is not None]
        replies: list[Reply] = []
        writing = [item for item in items if item[3] is not None and item[2] is None]
        commit = None
        results: dict[int, CommitResult] = {}
        if writing:
            wall, cpu = time.perf_counter(), time.thread_time()
            dropped = store.records_dropped
            rows = [item[3] for item in writing if item[3] is not None]
            results = dict(
                zip([item[0] for item in writing], commit_each(store, rows), strict=True)
            )
            dropped = store.records_dropped - dropped
            commit = (time.perf_counter() - wall, time.thread_time() - cpu, dropped)
        for task_id, decoded, error, task_rows in items:
            result = results.get(task_id)
            if isinstance(result, Exception):
                problem = failure(result)
                replies.append((task_id, None, str(problem), isinstance(problem, Rejected)))
                continue
            if decoded is not None and task_rows is not None and result:
                decoded.runs = reject_unstored(decoded.batch, task_rows, result, decoded.runs)
            replies.append((task_id, decoded, error, False))
        if replies:
            conn.send((replies, commit))
        if group[-1] is None:
            return


def _worker_main(conn: Connection, target: str) -> None:
    """A worker: its main thread receives and decodes requests, its writer thread commits
    them in groups (``_commit_loop``); both run until the collector sends None."""
    _init_worker()
    sys.setswitchinterval(0.0005)  # the writer gets the GIL back soon after each step
    store = open_store(target, migrate=False)  # the collector migrated before starting us
    store.coordinate_writers()
    store.defer_checkpoints()  # the collector checkpoints in the background
    ready: queue.Queue[Ready | None] = queue.Queue()
    writer = threading.Thread(target=_commit_loop, args=(conn, store, ready), name="writer")
    writer.start()
    try:
        while True:
            try:
                task: Task | None = conn.recv()
            except (EOFError, OSError):
                return  # the collector is gone: nobody to answer
            if task is None:
                return
            task_id, raw, keep_runs = task
            try:
                decoded = _decode_bytes(raw, keep_runs)
            except Exception as exc:  # the receivers parsed it: a bug, not bad input
                log.exception("decoding a request failed")
                ready.put((task_id, None, f"decoding failed: {exc!r}", None))
                continue
            rows, decoded.rows = decoded.rows, None  # the collector needs no rows back
            ready.put((task_id, decoded, None, rows))
    finally:
        ready.put(None)
        writer.join()
        store.close()


_live: weakref.WeakSet[IngestWorkers] = weakref.WeakSet()


@atexit.register
def _no_restarts_at_exit() -> None:
    # Runs before multiprocessing's own exit handler terminates daemonic children: a
    # worker stopped by it is not "died", and starting another then would fail.
    for workers in list(_live):
        workers._closing = True


class WorkerDied(Exception):
    """The worker ingesting a request died before it answered."""


class IngestFailed(Exception):
    """A worker could not decode or commit a request (the message says why); ``invalid``:
    because of the request's data (``ingest.Rejected``)."""

    def __init__(self, message: str, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    pending: dict[int, Future[Decoded]] = field(default_factory=dict)
    send_lock: threading.Lock = field(default_factory=threading.Lock)


class IngestWorkers:
    """``workers`` ingest processes writing to ``target`` (spawned, not forked: the
    collector runs gRPC and HTTP threads that a fork would copy mid-flight).
    ``on_commit(wall_s, cpu_s, records_dropped)`` is called for each group commit a worker
    made (records dropped: ``Store.records_dropped`` in the worker, for that commit)."""

    def __init__(
        self,
        workers: int,
        target: str,
        on_commit: Callable[[float, float, int], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"ingest workers must be >= 1, got {workers}")
        self.workers = workers
        self.target = target
        self.restarts = 0
        self._on_commit = on_commit
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closing = False
        self._pool = [self._start() for _ in range(workers)]
        _live.add(self)

    def _start(self) -> _Worker:
        ctx = get_context("spawn")
        ours, theirs = ctx.Pipe()
        process = ctx.Process(
            target=_worker_main, args=(theirs, self.target), name="mltrace-ingest", daemon=True
        )
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        threading.Thread(
            target=self._read_replies, args=(worker,), name="mltrace-ingest-replies", daemon=True
        ).start()
        return worker

    @property
    def inflight(self) -> int:
        """Requests sent to workers and not answered yet."""
        return sum(len(w.pending) for w in self._pool)

    def ingest(self, raw: bytes, keep_runs: bool) -> Decoded:
        """Decode and commit serialized request ``raw`` in a worker; blocks until it is
        committed. Raises ``WorkerDied`` or ``IngestFailed`` (nothing committed then,
        unless the worker died between its commit and its answer)."""
        done: Future[Decoded] = Future()
        with self._lock:
            if self._closing:
                raise WorkerDied("ingest workers are closed")
            worker = min(self._pool, key=lambda w: len(w.pending))
            task_id = next(self._ids)
            worker.pending[task_id] = done
        try:
            with worker.send_lock:
                worker.conn.send((task_id, raw, keep_runs))
        except (OSError, EOFError, ValueError):  # the pipe broke: the reader restarts it
            with self._lock:
                worker.pending.pop(task_id, None)
            raise WorkerDied(f"ingest worker {worker.process.pid} is gone") from None
        return done.result()

    def _read_replies(self, worker: _Worker) -> None:
        while True:
            try:
                replies, commit = worker.conn.recv()
            except (EOFError, OSError):
                break
            if commit is not None and self._on_commit is not None:
                self._on_commit(*commit)
            with self._lock:
                futures = [(worker.pending.pop(t), *reply) for t, *reply in replies]
            for future, decoded, error, invalid in futures:
                if decoded is not None:
                    future.set_result(decoded)
                else:
                    future.set_exception(IngestFailed(error or "no reply", invalid))
        worker.process.join(5)
        worker.conn.close()
        with self._lock:
            lost, worker.pending = worker.pending, {}
            if not self._closing:
                log.error(
                    "ingest worker %s died (exit code %s); starting another",
                    worker.process.pid,
                    worker.process.exitcode,
                )
                self._pool[self._pool.index(worker)] = self._start()
                self.restarts += 1
        for future in lost.values():
            future.set_exception(WorkerDied(f"ingest worker {worker.process.pid} died"))

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the workers after the requests they hold. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            pool = list(self._pool)
        for worker in pool:
            try:
                with worker.send_lock:
                    worker.conn.send(None)
            except (OSError, EOFError, ValueError):
                pass
        deadline = time.monotonic() + timeout_s
        for worker in pool:
            worker.process.join(max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
