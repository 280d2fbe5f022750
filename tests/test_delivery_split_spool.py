"""Splitting for a collector's body limit loses nothing on replay or in a forked child.

When the collector refuses a spooled request as too large and then stops answering
part-way through its pieces (a restart), the pieces it did not take are written back to
the spool before the original file goes. The original still sat in the spool while they
were written, so on a spool more than half full the pieces counted twice against
``MLTRACE_SPOOL_MAX_BYTES``: they were dropped as "spool full" and the original deleted —
spans lost that were safe on disk. And a child forked while the parent's worker held the
learned limit's lock kept it locked: its first refusal hung its worker. Real components:
``otel-mltrace serve`` children.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import otel_mltrace as mlt
from tests.serve_process import ServeProcess
from tests.servers.ports import free_port
from tests.support_index import runs_in

pytestmark = pytest.mark.usefixtures("no_start_records")  # exact span counts (conftest)

LIMIT = 2048


class _StopOnRefusal(logging.Handler):
    """Stops the collector the moment the SDK says it refused a request as too large (before
    the pieces are sent): the collector restarting in the middle of a split."""

    def __init__(self, serve: ServeProcess) -> None:
        super().__init__()
        self.serve = serve
        self.fired = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and "refused a request" in record.getMessage():
            self.fired = True
            self.serve.terminate()


def _runs(n: int) -> None:
    for i in range(n):
        with mlt.run("step", outputs=[f"s3://bucket/{i}.parquet"]):
            pass


def test_pieces_of_a_spooled_request_are_kept_when_the_collector_stops_mid_split(
    tmp_path: Path,
) -> None:
    ports = (free_port(), free_port())
    endpoint = f"http://127.0.0.1:{ports[1]}"
    spool_dir = str(tmp_path / "spool")
    mlt.configure(endpoint=endpoint, protocol="http/protobuf", spool_dir=spool_dir)
    _runs(200)
    down = mlt.shutdown(timeout_s=10)
    assert (down.pending_in_spool, down.dropped) == (200, 0), down
    (original,) = (tmp_path / "spool").glob("*/*.otlp")
    cap = original.stat().st_size * 3 // 2  # the spool is two thirds full

    serve = ServeProcess.start(str(tmp_path / "c.db"), tmp_path / "serve.log",
                               env={"MLTRACE_MAX_BODY_BYTES": str(LIMIT)}, ports=ports)  # fmt: skip
    stopper = _StopOnRefusal(serve)
    logger = logging.getLogger("otel_mltrace")
    logger.addHandler(stopper)
    try:
        mlt.configure(endpoint=endpoint, protocol="http/protobuf", spool_dir=spool_dir,
                      spool_max=cap)  # fmt: skip
        cut = mlt.shutdown(timeout_s=30)
    finally:
        logger.removeHandler(stopper)
        serve.terminate()
    assert stopper.fired
    assert cut.dropped == 0, cut.summary()
    assert cut.pending_in_spool == 200 - cut.delivered, cut
    assert not original.exists()  # replaced by its pieces

    with ServeProcess.start(str(tmp_path / "c.db"), tmp_path / "serve2.log", ports=ports):
        mlt.configure(endpoint=endpoint, protocol="http/protobuf", spool_dir=spool_dir)
        back = mlt.shutdown(timeout_s=60)
        assert back and back.dropped == 0 and back.pending_in_spool == 0, back
        assert runs_in(tmp_path / "c.db") == 200


def _child_runs(n: int) -> None:
    _runs(n)  # no flush: the child ends with os._exit, like every multiprocessing child


def test_a_child_forked_while_the_limit_is_being_learned_still_splits(tmp_path: Path) -> None:
    """The learned limit's lock, held by the parent's worker at the moment of a fork, stayed
    held in the child forever: the child's first refusal hung its worker, and its runs were
    lost at exit. The child gets its own lock (as the spool's)."""
    import multiprocessing

    from otel_mltrace.delivery_processor import DeliveringProcessor
    from otel_mltrace.provider import _switch

    serve = ServeProcess.start(str(tmp_path / "c.db"), tmp_path / "serve.log",
                               env={"MLTRACE_MAX_BODY_BYTES": str(LIMIT)})  # fmt: skip
    try:
        mlt.configure(endpoint=serve.grpc_url, spool_dir=str(tmp_path / "spool"))
        proc = _switch.delegate
        assert isinstance(proc, DeliveringProcessor)
        with proc._size_limit._lock:  # as the worker inside refused() when the fork comes
            child = multiprocessing.get_context("fork").Process(target=_child_runs, args=(60,))
            child.start()
        child.join(60)
        assert child.exitcode == 0
        report = mlt.shutdown(timeout_s=30)
        assert report.dropped == 0, report
        assert runs_in(tmp_path / "c.db") == 60  # the child's, split to fit
    finally:
        serve.terminate()


def test_an_unreadable_one_span_spool_file_is_not_called_a_span(tmp_path: Path) -> None:
    """A damaged spool file named as one span, refused as too large, was dropped as "a
    single span larger than its limit" (raise the limit: no help); it is an unreadable file."""
    from otel_mltrace.spool import Spool

    serve = ServeProcess.start(str(tmp_path / "c.db"), tmp_path / "serve.log",
                               env={"MLTRACE_MAX_BODY_BYTES": str(LIMIT)})  # fmt: skip
    try:
        spool = Spool.for_endpoint(
            str(tmp_path / "spool"), serve.http_url, "http/protobuf", 1 << 20
        )
        assert spool.put(b"\xff" * (4 * LIMIT), spans=1)
        mlt.configure(endpoint=serve.http_url, protocol="http/protobuf",
                      spool_dir=str(tmp_path / "spool"))  # fmt: skip
        report = mlt.shutdown(timeout_s=60)
        assert (report.dropped, report.pending_in_spool) == (1, 0), report
        assert report.dropped_reasons == {
            "too large for the collector, and not a readable OTLP request to split": 1
        }
    finally:
        serve.terminate()
