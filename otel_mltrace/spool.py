"""A durable, size-capped local spool of OTLP export requests that could not be sent yet.

One directory per collector endpoint (``<spool_dir>/<hash of protocol+endpoint>/``); each
file holds one serialized ``ExportTraceServiceRequest``, named
``<time_ns>-<pid>-<seq>.<spans>.otlp``. A file is written under a temporary name, fsynced
and renamed, so a reader only ever sees complete files. Several processes may share a
spool: a sender claims a file with an exclusive non-blocking ``flock`` (released by the
kernel if the process dies), sends it and unlinks it while still holding the lock. The
collector's ingest is idempotent, so a file sent twice (sent, then the process died before
the unlink) does no harm. A file the collector refuses as too large is sent in pieces; the
pieces it did not take yet are written as new files before the old one goes.

Each process keeps an index of the files (name, size, spans; a heap in name order), so
``put`` and ``claim`` cost O(log n), not a listing of the directory each (O(n²) over a
long outage). What other processes did is picked up by a rescan: when the index has no
file left to claim, at most every ``RESCAN_S`` for the size cap, and for ``pending()``
(a report: always exact). A file another process sent is found gone when opened.

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
import heapq
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SUFFIX = ".otlp"
RESCAN_S = 1.0
"""Most seconds ``put`` trusts the index for the size cap before listing the directory
(files other processes wrote count too)."""


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
        self._lock = threading.Lock()  # the index below
        self._files_at: dict[str, tuple[int, int]] = {}  # name -> (bytes, spans)
        self._order: list[str] = []  # heap of names, may hold names no longer in the index
        self._bytes = 0
        self._scanned_at: float | None = None  # monotonic time of the last listing

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
        self._put_lock, self._lock = threading.Lock(), threading.Lock()

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

    def _rescan(self) -> None:
        """Rebuild the index from the directory (every process's files)."""
        found: dict[str, tuple[int, int]] = {}
        try:
            with os.scandir(self.directory) as it:
                for entry in it:
                    if entry.name.endswith(_SUFFIX):
                        with contextlib.suppress(FileNotFoundError):
                            found[entry.name] = (entry.stat().st_size, _spans_of(entry.name))
        except OSError:  # not created yet, or unusable (put() reports that)
            pass
        with self._lock:
            self._files_at = found
            self._order = sorted(found)  # a sorted list is a heap
            self._bytes = sum(size for size, _ in found.values())
            self._scanned_at = time.monotonic()

    def _forget(self, name: str) -> None:
        with self._lock:
            gone = self._files_at.pop(name, None)
            if gone is not None:
                self._bytes -= gone[0]

    def pending(self) -> tuple[int, int]:
        """(spans, bytes) waiting in the spool, from every process (lists the directory)."""
        self._rescan()
        with self._lock:
            return sum(spans for _, spans in self._files_at.values()), self._bytes

    def put(self, payload: bytes, spans: int, replacing: int = 0) -> bool:
        """Write one request durably; False (nothing written) when it would pass the cap.

        ``replacing``: bytes of spool files about to be removed because this one (and its
        siblings) replace them -- the pieces of a file split on replay, written while the
        file is still there -- not counted against the cap."""
        with self._put_lock:
            if not self.enabled:
                return False
            at = self._scanned_at
            if at is None or time.monotonic() - at >= RESCAN_S:
                self._rescan()
            if self._bytes - replacing + len(payload) > self.max_bytes:
                return False
            name = self._write(payload, spans)
            with self._lock:
                if name not in self._files_at:  # else a rescan since the rename has it
                    self._files_at[name] = (len(payload), spans)
                    self._bytes += len(payload)
                    heapq.heappush(self._order, name)
            return True

    def _write(self, payload: bytes, spans: int) -> str:
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
        return name

    def _candidates(self) -> Iterator[str]:
        """Names in the index, oldest first, each taken off the heap as it is handed out;
        when none is left, one rescan for what other processes spooled meanwhile."""
        for attempt in range(2):
            while True:
                with self._lock:
                    if not self._order:
                        break
                    name = heapq.heappop(self._order)
                    if name not in self._files_at:
                        continue  # sent already
                yield name
            if attempt == 0:
                self._rescan()

    @contextlib.contextmanager
    def claim(self) -> Iterator[SpooledBatch | None]:
        """The oldest file no other process is sending, locked until the block ends."""
        if self._scanned_at is None:
            self._rescan()  # files an earlier process left
        busy: list[str] = []  # being sent by another process: back on the heap after
        try:
            for name in self._candidates():
                path = self.directory / name
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    self._forget(name)  # sent by another process meanwhile
                    continue
                try:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        busy.append(name)
                        continue
                    if os.fstat(fd).st_nlink == 0:
                        self._forget(name)  # sent and unlinked between our listing and lock
                        continue
                    with os.fdopen(os.dup(fd), "rb") as f:
                        payload = f.read()
                    batch = SpooledBatch(path, _spans_of(name), payload)
                    try:
                        yield batch
                    finally:
                        if batch.finished:
                            self._forget(name)
                        else:
                            busy.append(name)  # stays for a later try
                    return
                finally:
                    os.close(fd)  # releases the lock
            yield None
        finally:
            with self._lock:
                for name in busy:
                    if name in self._files_at:
                        heapq.heappush(self._order, name)
