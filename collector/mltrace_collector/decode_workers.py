"""Decode worker processes: export request bytes in, store rows out.

Decoding spans and building their rows is pure CPU work in Python, and one process has one
GIL: with the receivers, the decode and the store writer in one process, a 2-core machine
ingests at the speed of one core. ``DecodeWorkers`` moves parse + decode + ``prepare`` into
``N`` worker processes; the collector process keeps the receivers, the single store writer
(group commit) and the observers. What crosses the process boundary is the serialized
request (in) and the prepared rows (out), both cheap to pickle.

A worker that dies (killed, out of memory) breaks only the batch it was decoding: the pool
is rebuilt and that batch is decoded in the collector process instead, so a client never
sees the difference.

Example::

    workers = DecodeWorkers(2)
    decoded = workers.decode(request.SerializeToString(), keep_runs=False)
    store.ingest_prepared([decoded.rows])
    workers.close()
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mltrace_collector.fast_rows import decode_rows
from mltrace_collector.model import DecodedBatch
from mltrace_collector.processor import decode_request
from mltrace_collector.store.writes import Prepared, prepare

log = logging.getLogger("mltrace_collector.decode_workers")


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
    if batch.runs or batch.record_chunks:
        rows = prepare(batch.runs, batch.record_chunks)
        if not keep_runs:  # what crosses back to the collector: only what the writer needs
            rows.records = [r for r in rows.records if r.record_chunks or r.checks]
    if not keep_runs:
        batch.runs = []
    return Decoded(batch, rows, runs)


def _decode_bytes(raw: bytes, keep_runs: bool) -> Decoded:
    return decode_and_prepare(ExportTraceServiceRequest.FromString(raw), raw, keep_runs)


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: the collector drains and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()  # the imports: never garbage, no need to walk them on every collection
    gc.set_threshold(50_000, 20, 20)  # the same policy as the collector (service.tune_gc)
    parent = os.getppid()

    def exit_with_parent() -> None:  # a SIGKILLed collector must not leave workers behind
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="parent-watch", daemon=True).start()


class DecodeWorkers:
    """A pool of ``workers`` decode processes (started on first use, spawned, not forked:
    the collector process runs gRPC and HTTP threads that a fork would copy mid-flight)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"decode workers must be >= 1, got {workers}")
        self.workers = workers
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self.restarts = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers, mp_context=get_context("spawn"), initializer=_init_worker
        )

    def decode(self, raw: bytes, keep_runs: bool) -> Decoded:
        """Decode serialized request ``raw`` in a worker; blocks until it is done."""
        pool = self._pool
        try:
            return pool.submit(_decode_bytes, raw, keep_runs).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:  # the first thread to notice rebuilds it
                    log.error("a decode worker died; restarting the pool of %d", self.workers)
                    self._pool = self._new_pool()
                    self.restarts += 1
            pool.shutdown(wait=False, cancel_futures=True)
            return _decode_bytes(raw, keep_runs)  # this batch: in the collector process

    def close(self) -> None:
        """Stop the workers after the batches in flight. Idempotent."""
        self._pool.shutdown(wait=True, cancel_futures=False)
