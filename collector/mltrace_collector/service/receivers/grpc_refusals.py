"""Count the OTLP/gRPC calls gRPC core refuses for a ``grpc-encoding`` it cannot decode.

grpcio decodes ``identity``, ``gzip`` and ``deflate`` only. A call with another
``grpc-encoding`` (``zstd`` or ``snappy`` from an OTel Collector's ``otlp`` exporter) is
refused inside gRPC core's HPACK parser, before any Python code (interceptor, handler)
runs: the client gets ``INTERNAL: Error parsing 'grpc-encoding' metadata`` (fixed text,
which an OTel Collector treats as a permanent error and drops the batch) and core writes
``Error parsing 'grpc-encoding' metadata: invalid value`` to the process's stderr (fd 2),
without the value. That line is the only trace of the refusal, so ``otel-mltrace serve``
passes fd 2 through a pipe (:func:`watch_grpc_core_log`): every byte still reaches the
original stderr at once, and each such line counts one refusal as
``REFUSALS["grpc"]["unsupported"]`` and logs a warning naming the supported encodings and
the exporter setting to use. Only the ``serve`` process does this (never a library user's
process or a test runner, whose fd 2 belongs to someone else).

Example::

    watch_grpc_core_log()   # once, in the serve command, before the gRPC server starts
"""

from __future__ import annotations

import atexit
import faulthandler
import logging
import os
import sys
import threading

from .refusals import REFUSALS

__all__ = ["GRPC_ENCODINGS", "HINT", "watch_grpc_core_log"]

log = logging.getLogger("mltrace_collector.receivers")

GRPC_ENCODINGS = ("identity", "gzip", "deflate")
"""What grpcio's core decodes (``grpc.Compression``)."""
HINT = (
    "an OTLP/gRPC export was refused by gRPC core for an unsupported grpc-encoding "
    "(zstd or snappy?); this receiver decodes identity, gzip and deflate: set "
    "'compression: gzip' (or 'none') on the sender's otlp exporter, or send over "
    "OTLP/HTTP (otlphttp), which accepts zstd, snappy, lz4, zlib, deflate and gzip"
)
_MARK = b"Error parsing 'grpc-encoding' metadata"
_started = threading.Lock()
_watching = False


def watch_grpc_core_log() -> bool:
    """Pipe fd 2 through a counting reader thread (idempotent); False if it cannot."""
    global _watching
    with _started:
        if _watching:
            return True
        try:
            original = os.dup(2)
            read_end, write_end = os.pipe()
            os.dup2(write_end, 2)
            os.close(write_end)
        except OSError as exc:
            log.warning("cannot watch gRPC core's log for refused encodings: %s", exc)
            return False
        _watching = True
    noticed = threading.Event()
    pump = threading.Thread(
        target=_pump, args=(read_end, original, noticed), name="grpc-core-log", daemon=True
    )
    pump.start()
    atexit.register(_restore, original, pump)
    if faulthandler.is_enabled():  # a crash report must reach the real stderr, not the pipe
        faulthandler.enable(file=original)
    # the pump must never block on a write to the pipe it drains, so it does not log itself
    threading.Thread(target=_warn, args=(noticed,), name="grpc-refusal-log", daemon=True).start()
    return True


def _restore(original: int, pump: threading.Thread) -> None:
    """At exit: fd 2 back to the real stderr, then let the pump pass on what is left in
    the pipe (a traceback, the last log lines) before the interpreter kills it."""
    try:
        sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last writer is gone: the pump reads to EOF
    except (OSError, ValueError):
        return
    pump.join(2.0)


def _pump(read_end: int, original: int, noticed: threading.Event) -> None:
    try:
        _drain(read_end, original, noticed)
    finally:  # nobody reads the pipe any more: fd 2 back to the real stderr, or the next
        try:  # 64 KiB written to it would block every logging call for good
            os.dup2(original, 2)
        except OSError:
            pass


def _drain(read_end: int, original: int, noticed: threading.Event) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            return
        if not chunk:
            os.close(read_end)
            return
        view = memoryview(chunk)
        while view:
            try:
                view = view[os.write(original, view) :]
            except OSError:
                break  # the original stderr is gone: keep draining, keep counting
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()[-4096:]
        for line in lines:
            if _MARK in line:
                REFUSALS.add("grpc", "unsupported")
                noticed.set()


def _warn(noticed: threading.Event) -> None:
    while True:
        noticed.wait()
        noticed.clear()
        log.warning(HINT)
        threading.Event().wait(10.0)  # at most one warning per 10 s; the counter has them all
