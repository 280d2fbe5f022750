"""A durable, size-capped local spool of OTLP export requests that could not be sent yet.

One directory per collector endpoint (``<spool_dir>/<hash of protocol+endpoint>/``); each
file holds one serialized ``ExportTraceServiceRequest``, named
``<time_ns>-<pid>-<seq>.<spans>.otlp``. A file is written under a temporary name, fsynced
and renamed, so a reader only ever sees complete files. Several processes may share a
spool: a sender claims a file with an exclusive non-blocking ``flock`` (released by the
kernel if the process dies), sends it and unlinks it while still holding the lock. The
collector's ingest is idempotent, so a file sent twice (sent, then the process died before
the unlink) does no harm.

Example::

    from otel_mltrace.spool import Spool
    spool = Spool.for_endpoint("/tmp/spool", "http://collector:4317", "grpc", 1 << 28)
    spool.put(payload, spans=512)
    with spool.claim() as batch:          # None when nothing is waiting
        if batch is not None and send(batch.payload):
            batch.done()
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SUFFIX = ".otlp"


@dataclass
class SpooledBatch:
    """A claimed spool file: ``done()`` removes it; otherwise it stays for a later try."""

    path: Path
    spans: int
    payload: bytes
    finished: bool = False

    def done(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.finished = True


def _spans_of(name: str) -> int:
    try:
        return int(name[: -len(_SUFFIX)].rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return 0


class Spool:
    """The spool directory of one endpoint; bounded by ``max_bytes`` (0 disables it)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(
                f"spool size cap {max_bytes} is negative; set MLTRACE_SPOOL_MAX_BYTES to a "
                "byte count (0 turns the spool off)"
            )
        self.directory = directory
        self.max_bytes = max_bytes
        self._about = ""
        self._created = False
        self._seq = itertools.count()
        self._put_lock = threading.Lock()  # the cap holds within a process; across, roughly

    @classmethod
    def for_endpoint(cls, base: str, endpoint: str, protocol: str, max_bytes: int) -> Spool:
        key = hashlib.sha256(f"{protocol} {endpoint}".encode()).hexdigest()[:16]
        spool = cls(Path(base) / key, max_bytes)
        spool._about = f"{protocol} {endpoint}\n"
        if spool.directory.is_dir():  # created on the first write, not before
            with contextlib.suppress(OSError):
                spool._remove_orphans()
        return spool

    def after_fork(self) -> None:
        """In a forked child: a lock another parent thread held would never be released."""
        self._put_lock = threading.Lock()

    def _remove_orphans(self) -> None:
        """Half-written files of writers that died (``.tmp-<pid>-<seq>``, pid gone)."""
        for entry in os.scandir(self.directory):
            if not entry.name.startswith(".tmp-"):
                continue
            try:
                os.kill(int(entry.name.split("-")[1]), 0)
            except ProcessLookupError:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            except (ValueError, IndexError, PermissionError):
                continue

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def _files(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.directory) as it:
                return [e for e in it if e.name.endswith(_SUFFIX)]
        except OSError:  # not created yet, or unusable (put() reports that)
            return []

    def pending(self) -> tuple[int, int]:
        """(spans, bytes) waiting in the spool, from every process."""
        spans = size = 0
        for entry in self._files():
            with contextlib.suppress(FileNotFoundError):
                size += entry.stat().st_size
                spans += _spans_of(entry.name)
        return spans, size

    def put(self, payload: bytes, spans: int) -> bool:
        """Write one request durably; False (nothing written) when it would pass the cap."""
        with self._put_lock:
            if not self.enabled or self.pending()[1] + len(payload) > self.max_bytes:
                return False
            self._write(payload, spans)
            return True

    def _write(self, payload: bytes, spans: int) -> None:
        if not self._created:
            self.directory.mkdir(parents=True, exist_ok=True)
            about = self.directory / "ENDPOINT"  # which collector these files are for
            if self._about and not about.exists():
                about.write_text(self._about, encoding="utf-8")
            self._created = True
        seq = next(self._seq)
        name = f"{time.time_ns()}-{os.getpid()}-{seq}.{spans}{_SUFFIX}"
        tmp = self.directory / f".tmp-{os.getpid()}-{seq}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.directory / name)
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)  # the rename itself survives a power cut
            finally:
                os.close(dfd)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    @contextlib.contextmanager
    def claim(self) -> Iterator[SpooledBatch | None]:
        """The oldest file no other process is sending, locked until the block ends."""
        for entry in sorted(self._files(), key=lambda e: e.name):
            try:
                fd = os.open(entry.path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # sent by another process meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                if os.fstat(fd).st_nlink == 0:
                    continue  # sent and unlinked between our listing and our lock
                with os.fdopen(os.dup(fd), "rb") as f:
                    payload = f.read()
                yield SpooledBatch(Path(entry.path), _spans_of(entry.name), payload)
                return
            finally:
                os.close(fd)  # releases the lock
        yield None
