"""Stat cache for artifact digests: an unchanged file costs a ``stat``, not a re-hash.

Internal to :mod:`otel_mltrace.artifacts`. An entry maps an absolute path to the digest of
its content together with the file's *stat key* ``(size, mtime_ns, ctime_ns, inode,
device)``; the entry is valid only while a fresh ``stat`` returns the same key. ``ctime``
is part of the key (on top of size, mtime, inode, device) because tools that restore
``mtime`` after a write (``cp -p``, ``rsync -t``, ``touch -d``) cannot restore ``ctime``.

Two layers:

* memory: a dict, always on, bounded (oldest entries dropped first);
* persistent (optional): a small SQLite file at ``resolve("stat_cache")``
  (``$MLTRACE_STAT_CACHE``), shared by the separate processes of a pipeline. It runs in WAL
  mode with a busy timeout so concurrent writers wait instead of failing; a lock that
  outlasts the timeout skips that one read or write (it is only a cache). A file that is
  not a usable SQLite database (corrupt, unwritable, wrong file) turns the persistent layer
  off for this process with one warning: identification never fails because of the cache.
  WAL needs a local filesystem: do not point the cache at NFS.

Which digests may be stored at all (the "recently modified" rule) is decided by the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import NamedTuple

from otel_mltrace.config import resolve

log = logging.getLogger("otel_mltrace.artifacts")

MEMORY_LIMIT = 200_000
"""Most entries the memory layer holds; the oldest are dropped first beyond it."""
BUSY_TIMEOUT_S = 5.0
ALGO = "sha256"
SETTLE_NS = 2_000_000_000
"""Digests of files modified less than this long before hashing are never cached."""
BUFFER_SIZE = 4 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stat_cache (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    device   INTEGER NOT NULL,
    digest   TEXT NOT NULL
)
"""


class StatKey(NamedTuple):
    """What must not change for a cached digest to stay valid."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class _Persistent:
    """The SQLite layer for one path. Every failure degrades to "not cached"."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.broken = False
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc)
        ):
            return  # contention beyond the busy timeout: skip this one operation
        self.broken = True
        log.warning(
            "stat cache %s is unusable (%s: %s); continuing with an in-memory cache only. "
            "Fix: delete the file, or point MLTRACE_STAT_CACHE at a writable local path.",
            self.path,
            type(exc).__name__,
            exc,
        )
        self.close()

    def get(self, path: str) -> tuple[StatKey, str] | None:
        if self.broken:
            return None
        with self._lock:
            try:
                row = (
                    self._connect()
                    .execute(
                        "SELECT size, mtime_ns, ctime_ns, inode, device, digest "
                        "FROM stat_cache WHERE path = ?",
                        (path,),
                    )
                    .fetchone()
                )
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)
                return None
        if row is None:
            return None
        return StatKey(*row[:5]), str(row[5])

    def put(self, path: str, key: StatKey, digest: str) -> None:
        if self.broken:
            return
        with self._lock:
            try:
                self._connect().execute(
                    "INSERT OR REPLACE INTO stat_cache "
                    "(path, size, mtime_ns, ctime_ns, inode, device, digest) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (path, *key, digest),
                )
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)

    def clear(self) -> None:
        if self.broken:
            return
        with self._lock:
            try:
                self._connect().execute("DELETE FROM stat_cache")
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass


class StatCache:
    """Memory dict in front of the optional SQLite file; thread-safe, fork-safe."""

    def __init__(self) -> None:
        self._memory: dict[str, tuple[StatKey, str]] = {}
        self._persistent: _Persistent | None = None
        self._lock = threading.Lock()

    def _layer(self) -> _Persistent | None:
        """The persistent layer for the currently configured path (re-read on every call,
        so tests and long-lived processes may change ``MLTRACE_STAT_CACHE``)."""
        try:
            path = resolve("stat_cache")
        except ValueError:
            return None
        if not path:
            return None
        cur = self._persistent
        if cur is not None and cur.path == path and cur.pid == os.getpid():
            return cur
        with self._lock:
            cur = self._persistent
            if cur is None or cur.path != path or cur.pid != os.getpid():
                if cur is not None and cur.pid == os.getpid():
                    cur.close()
                # After fork the parent's connection is dropped without closing it.
                cur = self._persistent = _Persistent(str(path))
            return cur

    def get(self, path: str, key: StatKey) -> str | None:
        """The cached digest of ``path`` if its stat key is still ``key``, else ``None``."""
        hit = self._memory.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        layer = self._layer()
        if layer is None:
            return None
        row = layer.get(path)
        if row is None or row[0] != key:
            return None
        self._remember(path, row[0], row[1])
        return row[1]

    def put(self, path: str, key: StatKey, digest: str) -> None:
        self._remember(path, key, digest)
        layer = self._layer()
        if layer is not None:
            layer.put(path, key, digest)

    def _remember(self, path: str, key: StatKey, digest: str) -> None:
        memory = self._memory
        memory.pop(path, None)
        memory[path] = (key, digest)
        if len(memory) > MEMORY_LIMIT:
            try:
                del memory[next(iter(memory))]
            except (KeyError, StopIteration, RuntimeError):
                pass

    def clear(self, persistent: bool = True) -> None:
        """Forget every entry in memory, and in the SQLite file too when ``persistent``."""
        self._memory.clear()
        layer = self._layer()
        if layer is not None:
            if persistent:
                layer.clear()
            with self._lock:
                layer.close()
                self._persistent = None


_cache = StatCache()
_tls = threading.local()


def clear(persistent: bool = True) -> None:
    """Forget cached digests (see :func:`otel_mltrace.artifacts.clear_stat_cache`)."""
    _cache.clear(persistent=persistent)


def _buffer() -> tuple[bytearray, memoryview]:
    buf: tuple[bytearray, memoryview] | None = getattr(_tls, "buf", None)
    if buf is None:
        raw = bytearray(BUFFER_SIZE)
        buf = _tls.buf = (raw, memoryview(raw))
    return buf


def _hash_file(path: str) -> tuple[str, os.stat_result, os.stat_result]:
    """sha256 hex of a file's bytes, with its ``fstat`` before and after the read."""
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()
        before = os.fstat(fd)
        h = hashlib.sha256()
        if before.st_size <= BUFFER_SIZE // 4:
            h.update(f.readall())
        else:
            if hasattr(os, "posix_fadvise"):
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
                except OSError:
                    pass
            raw, view = _buffer()
            while n := f.readinto(raw):
                h.update(view[:n])
        after = os.fstat(fd)
    return h.hexdigest(), before, after


def file_digest(path: str, st: os.stat_result) -> str:
    """Digest of the regular file at absolute ``path`` (``st``: its current ``stat``)."""
    cached = _cache.get(path, StatKey.of(st))
    if cached is not None:
        return cached
    for _attempt in range(3):
        digest, before, after = _hash_file(path)
        key = StatKey.of(before)
        if key == StatKey.of(after):
            break  # nobody wrote while we read
    else:
        return digest  # still changing under us: report what we read, cache nothing
    # A write within the same timestamp tick as the last one leaves the stat key unchanged,
    # so a digest is only remembered once the file has been quiet for SETTLE_NS.
    if time.time_ns() - before.st_mtime_ns >= SETTLE_NS:
        _cache.put(path, key, digest)
    return digest
