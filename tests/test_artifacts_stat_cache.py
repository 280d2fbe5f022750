"""The stat cache of artifact digests: an unchanged file is not read again, any change
(size, mtime, inode, ctime) is, the persistent SQLite cache is shared between processes, and
a corrupt or unwritable cache falls back to memory.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otel_mltrace import _statcache
from otel_mltrace.artifacts import artifact_id, clear_stat_cache
from tests import support_artifacts
from tests.support_artifacts import digest, sha, write

# autouse (tests/support_artifacts.py): every test starts with an empty stat cache
_fresh_cache = support_artifacts._fresh_cache


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path ``_hash_file`` reads, in order."""
    calls: list[str] = []
    real = _statcache._hash_file

    def counting(path: str) -> tuple[str, os.stat_result, os.stat_result]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(_statcache, "_hash_file", counting)
    return calls


# --- stat cache ---------------------------------------------------------------------------


def test_unchanged_file_is_not_read_again(tmp_path: Path, hash_calls: list[str]) -> None:
    f = write(tmp_path / "big.bin", os.urandom(1 << 20))
    first = artifact_id(f)
    assert artifact_id(f) == first
    assert artifact_id(str(f)) == first
    assert len(hash_calls) == 1


def test_directory_reuses_file_digests(tmp_path: Path, hash_calls: list[str]) -> None:
    for i in range(5):
        write(tmp_path / "d" / f"{i}.txt", str(i).encode())
    first = artifact_id(tmp_path / "d")
    assert artifact_id(tmp_path / "d") == first
    assert len(hash_calls) == 5


def test_recently_modified_file_is_not_cached(tmp_path: Path, hash_calls: list[str]) -> None:
    f = write(tmp_path / "fresh.bin", b"v1", settled=False)
    artifact_id(f)
    artifact_id(f)
    assert len(hash_calls) == 2, "mtime < 2 s old: a same-tick rewrite would be invisible"


@pytest.mark.parametrize("change", ["size", "mtime", "replace"])
def test_changed_file_is_hashed_again(tmp_path: Path, hash_calls: list[str], change: str) -> None:
    f = write(tmp_path / "f.bin", b"version-1")
    first = artifact_id(f)
    mtime = f.stat().st_mtime_ns
    if change == "size":
        write(f, b"version-22")
    elif change == "mtime":  # same size, different bytes, different mtime
        write(f, b"version-2")
        os.utime(f, ns=(mtime + 10**9, mtime + 10**9))
    else:  # atomic replace (new inode) carrying the very same size and mtime
        write(tmp_path / "tmp", b"version-2")
        os.utime(tmp_path / "tmp", ns=(mtime, mtime))
        os.replace(tmp_path / "tmp", f)
    second = artifact_id(f)
    assert second != first
    assert digest(second) == f"sha256:{sha(f.read_bytes())}"
    assert len(hash_calls) == 2


def test_restored_mtime_is_caught_by_ctime(tmp_path: Path, hash_calls: list[str]) -> None:
    f = write(tmp_path / "f.bin", b"version-1")
    first = artifact_id(f)
    st = f.stat()
    with open(f, "r+b") as fh:  # same inode, same size
        fh.write(b"VERSION")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # like cp -p / rsync -t
    assert artifact_id(f) != first
    assert len(hash_calls) == 2


_CHILD = """
import sys
from otel_mltrace import _statcache
from otel_mltrace.artifacts import artifact_id
if sys.argv[1] == "forbid-hashing":
    def refuse(path):
        raise AssertionError("re-hashed " + path)
    _statcache._hash_file = refuse
print(artifact_id(sys.argv[2]))
"""


def _child(mode: str, path: Path, cache: Path) -> str:
    env = {**os.environ, "MLTRACE_STAT_CACHE": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_persistent_cache_is_shared_between_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hash_calls: list[str]
) -> None:
    cache = tmp_path / "cache" / "stat.db"
    a = write(tmp_path / "a.bin", b"hashed by the child")
    b = write(tmp_path / "b.bin", b"hashed by the parent")

    child_id = _child("hash", a, cache)
    monkeypatch.setenv("MLTRACE_STAT_CACHE", str(cache))
    clear_stat_cache(persistent=False)  # like a new process: memory empty, file kept
    assert artifact_id(a) == child_id
    assert hash_calls == [], "the parent found the child's digest in the SQLite file"

    parent_id = artifact_id(b)
    assert hash_calls == [str(b)]
    assert _child("forbid-hashing", b, cache) == parent_id


def test_concurrent_processes_share_one_cache(tmp_path: Path) -> None:
    cache = tmp_path / "stat.db"
    for i in range(40):
        write(tmp_path / "d" / f"{i}.bin", os.urandom(2048))
    code = textwrap.dedent(
        """
        import sys
        from otel_mltrace.artifacts import artifact_id, clear_stat_cache
        for _ in range(3):
            clear_stat_cache(persistent=False)
            aid = artifact_id(sys.argv[1])
        print(aid)
        """
    )
    env = {**os.environ, "MLTRACE_STAT_CACHE": str(cache)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "d")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert all("unusable" not in err for _, err in results)
    assert len({out.strip() for out, _ in results}) == 1


def test_corrupt_cache_file_falls_back_to_memory(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    hash_calls: list[str],
) -> None:
    cache = tmp_path / "stat.db"
    cache.write_bytes(b"this is not a sqlite database" * 100)
    monkeypatch.setenv("MLTRACE_STAT_CACHE", str(cache))
    f = write(tmp_path / "f.bin", b"data")
    with caplog.at_level(logging.WARNING, logger="otel_mltrace.artifacts"):
        first = artifact_id(f)
        assert artifact_id(f) == first
    assert len(hash_calls) == 1, "the memory layer still works"
    assert str(cache) in caplog.text and "MLTRACE_STAT_CACHE" in caplog.text
    assert cache.read_bytes().startswith(b"this is not"), "a foreign file is never overwritten"


def test_unwritable_cache_location_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = write(tmp_path / "a-file", b"x")
    monkeypatch.setenv("MLTRACE_STAT_CACHE", str(blocker / "sub" / "stat.db"))
    f = write(tmp_path / "f.bin", b"data")
    assert artifact_id(f) == f"{f.resolve().as_uri()}@sha256:{sha(b'data')}"
