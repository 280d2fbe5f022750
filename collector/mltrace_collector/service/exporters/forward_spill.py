"""Disk spill for the forward queue: append-only segment files, fsync'd, replayed on restart.

The forwarder appends every received request to the newest segment file (write-ahead:
``append`` returns only once the record is fsync'd, and the receiver acknowledges the
export only after that); the sender loads the oldest segment when memory has room, and
deletes a segment only after every request in it was acknowledged downstream. Segments
left by a previous run (crash, or a shutdown whose grace period ran out) are replayed at
start: at-least-once, so a downstream may see a request twice. The directory is bounded
(``max_bytes``); a request that does not fit is dropped and counted by the caller.

Record layout (little endian): ``u32 length, u32 spans, u32 crc32(payload), i64 received
unix ns``, then ``length`` bytes of a serialized ``ExportTraceServiceRequest``. A torn
tail (crash mid-write) is detected by length/CRC and ignored.

Example::

    spill = SpillDir("/var/lib/mltrace/forward", max_bytes=256 << 20)
    spill.append(request.SerializeToString(), spans=12, received_ns=time.time_ns())
    segment = spill.take_oldest()            # -> Segment(path, records) or None
    spill.release(segment.path)              # after every record was sent
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from mltrace_collector.service.exporters.host import HostSettings

log = logging.getLogger("mltrace_collector.forward")

MEMORY_ONLY = "memory"
"""``MLTRACE_FORWARD_SPILL_DIR=memory``: keep the forward queue in memory only (lost on a crash)."""


def default_spill_dir(db: str, http_address: str) -> str:
    """Where the forward queue is written ahead when ``MLTRACE_FORWARD_SPILL_DIR`` is unset:
    beside a SQLite index (``<db>-forward-spill``), or for a PostgreSQL store, under the
    user's data directory, one folder per HTTP listen address (two replicas on one host
    never share one).

    >>> default_spill_dir("/var/lib/mltrace/index.db", "127.0.0.1:4318")
    '/var/lib/mltrace/index.db-forward-spill'
    """
    if "://" not in db:
        return f"{db}-forward-spill"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    where = "".join(c if c.isalnum() else "_" for c in http_address)
    return str(Path(base) / "otel-mltrace" / f"forward-spill-{where}")


def spill_dir_for(configured: str | None, collector: HostSettings) -> str | None:
    """The forward spill directory to use: ``configured`` (``MLTRACE_FORWARD_SPILL_DIR``),
    ``None`` (memory only) for ``memory``, else the default beside the index — or memory
    only, with a warning, when that cannot be created (a read-only HOME must not stop the
    collector from starting)."""
    if configured == MEMORY_ONLY:
        return None
    if configured is not None:
        return configured
    where = default_spill_dir(collector.db, collector.http_address)
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as exc:
        log.warning(
            "forward queue kept in memory only (lost on a crash): cannot create %s (%s); "
            "set MLTRACE_FORWARD_SPILL_DIR to a writable directory",
            where,
            exc.strerror or exc,
        )
        return None
    return where


HEADER = struct.Struct("<IIIq")
SEGMENT_BYTES = 4 * 1024 * 1024
"""A segment is closed once it reaches this size (one segment is loaded into memory at once)."""
_PREFIX, _SUFFIX = "segment-", ".otlp"


@dataclass(frozen=True)
class SpillRecord:
    payload: bytes
    spans: int
    received_ns: int


@dataclass(frozen=True)
class Segment:
    path: Path
    records: list[SpillRecord]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_segment(path: Path) -> list[SpillRecord]:
    """Every intact record of a segment file, stopping at a torn or corrupt tail."""
    records: list[SpillRecord] = []
    data = path.read_bytes()
    offset = 0
    while offset + HEADER.size <= len(data):
        length, spans, crc, received_ns = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        payload = data[start : start + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            log.warning("forward spill %s: torn record at byte %d ignored", path, offset)
            break
        records.append(SpillRecord(payload, spans, received_ns))
        offset = start + length
    return records


class SpillDir:
    """A bounded directory of spill segments. Thread-safe."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(
                f"MLTRACE_FORWARD_SPILL_MAX_BYTES={max_bytes} must be positive, e.g. 268435456"
            )
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"MLTRACE_FORWARD_SPILL_DIR={str(directory)!r} cannot be created ({exc}); "
                "point it at a writable directory"
            ) from exc
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._closed: list[Path] = []  # oldest first, not yet taken
        self._taken: set[Path] = set()
        self._sizes: dict[Path, int] = {}
        self._spans: dict[Path, int] = {}
        self._active: Path | None = None
        self._file: BinaryIO | None = None
        self._sync_lock = threading.Lock()
        self._written = self._synced = 0  # records appended / known to be on disk
        existing = sorted(self.dir.glob(f"{_PREFIX}*{_SUFFIX}"))
        self._seq = 0
        for path in existing:
            self._seq = max(self._seq, int(path.name[len(_PREFIX) : -len(_SUFFIX)]))
            records = read_segment(path)
            if not records:
                path.unlink(missing_ok=True)
                continue
            self._closed.append(path)
            self._sizes[path] = path.stat().st_size
            self._spans[path] = sum(r.spans for r in records)
        if self._closed:
            log.info(
                "forward spill: replaying %d spans from %d segments in %s",
                self.spans,
                len(self._closed),
                self.dir,
            )

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    @property
    def spans(self) -> int:
        """Spans in segments not yet acknowledged (including taken ones)."""
        with self._lock:
            return sum(self._spans.values())

    @property
    def pending_segments(self) -> int:
        with self._lock:
            return len(self._closed) + (1 if self._active is not None else 0)

    @property
    def waiting_spans(self) -> int:
        """Spans in segments not yet loaded by the sender (the rest are in its memory)."""
        with self._lock:
            return sum(n for path, n in self._spans.items() if path not in self._taken)

    def append(self, payload: bytes, spans: int, received_ns: int) -> bool:
        """Append one request durably (write, then fsync before returning); False when the
        bound is reached. Concurrent appenders share one fsync (group commit)."""
        record = HEADER.pack(len(payload), spans, zlib.crc32(payload), received_ns) + payload
        with self._lock:
            if sum(self._sizes.values()) + len(record) > self.max_bytes:
                return False
            if self._file is None or self._active is None:
                self._seq += 1
                self._active = self.dir / f"{_PREFIX}{self._seq:012d}{_SUFFIX}"
                self._file = open(self._active, "ab")  # kept open across appends
                _fsync_dir(self.dir)  # the new file's name is durable too
                self._sizes[self._active] = 0
                self._spans[self._active] = 0
            at = self._sizes[self._active]
            try:
                self._file.write(record)
                self._file.flush()
            except OSError:  # disk full, I/O error: no torn record may hide the next ones
                self._truncate_to(at)
                raise
            self._written += 1
            mine = self._written
            self._sizes[self._active] += len(record)
            self._spans[self._active] += spans
            if self._sizes[self._active] >= SEGMENT_BYTES:
                self._close_active()
        self._sync(mine)
        return True

    def _truncate_to(self, size: int) -> None:
        """Cut the active segment back to ``size`` bytes (a record that failed half-way
        would end every read of the segment there); close it when that fails too."""
        assert self._file is not None
        try:
            self._file.seek(size)
            self._file.truncate(size)
        except (OSError, ValueError):
            self._close_active()

    def _sync(self, mine: int) -> None:
        with self._sync_lock:
            if self._synced >= mine:
                return  # another appender's fsync covered this record
            with self._lock:
                target = self._written
                fd = os.dup(self._file.fileno()) if self._file is not None else None
            if fd is not None:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._synced = max(self._synced, target)

    def _close_active(self) -> None:
        if self._file is not None and self._active is not None:
            os.fsync(self._file.fileno())  # everything written so far is durable
            self._file.close()
            self._closed.append(self._active)
        self._file = None
        self._active = None

    def take_oldest(self) -> Segment | None:
        """Load the oldest segment (closing the active one if it is the only one)."""
        with self._lock:
            if not self._closed:
                self._close_active()
            if not self._closed:
                return None
            path = self._closed.pop(0)
            self._taken.add(path)
        return Segment(path, read_segment(path))

    def release(self, path: Path) -> None:
        """Every record of a taken segment was acknowledged: delete it."""
        with self._lock:
            self._taken.discard(path)
            self._sizes.pop(path, None)
            self._spans.pop(path, None)
        path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the active file; segments stay on disk for the next start. Idempotent."""
        with self._lock:
            self._close_active()
