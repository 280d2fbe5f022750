"""Artifact identity: content addressing, URI pass-through, the stat cache, errors."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from otel_mltrace import _statcache
from otel_mltrace.artifacts import artifact_id, clear_stat_cache, is_versioned

HOUR_NS = 3600 * 10**9


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MLTRACE_STAT_CACHE", raising=False)
    clear_stat_cache()
    yield
    clear_stat_cache()


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


def write(path: Path, data: bytes, settled: bool = True) -> Path:
    """Write ``data``; ``settled`` backdates mtime so the digest may be cached."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if settled:
        old = path.stat().st_mtime_ns - HOUR_NS
        os.utime(path, ns=(old, old))
    return path


def digest(aid: str) -> str:
    return aid.rsplit("@", 1)[1]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- files --------------------------------------------------------------------------------


def test_file_id_is_resolved_uri_and_sha256_of_content(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", b"a,b\n1,2\n")
    link = tmp_path / "link.csv"
    link.symlink_to(f)
    expected = f"{f.resolve().as_uri()}@sha256:{sha(b'a,b' + bytes([10]) + b'1,2' + bytes([10]))}"
    assert artifact_id(f) == expected
    assert artifact_id(str(f)) == expected
    assert artifact_id(link) == expected
    assert artifact_id(f.as_uri()) == expected
    assert artifact_id("file://localhost" + str(f)) == expected


def test_relative_path_resolves_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = write(tmp_path / "x.bin", b"x")
    monkeypatch.chdir(tmp_path)
    assert artifact_id("x.bin") == artifact_id(f)
    assert artifact_id("x.bin").startswith(f"file://{tmp_path.resolve()}/x.bin@")


def test_same_bytes_two_paths_same_digest(tmp_path: Path) -> None:
    a = write(tmp_path / "a" / "one.bin", b"\x00payload" * 1000)
    b = write(tmp_path / "b" / "two.bin", b"\x00payload" * 1000)
    assert artifact_id(a) != artifact_id(b)
    assert digest(artifact_id(a)) == digest(artifact_id(b))


def test_one_changed_byte_changes_digest(tmp_path: Path) -> None:
    data = bytearray(os.urandom(3 << 20))  # larger than the small-file fast path
    a = write(tmp_path / "a.bin", bytes(data))
    data[len(data) // 2] ^= 1
    b = write(tmp_path / "b.bin", bytes(data))
    assert digest(artifact_id(a)) != digest(artifact_id(b))
    assert digest(artifact_id(a)) == f"sha256:{sha(a.read_bytes())}"


def test_path_with_explicit_uri_hashes_content_under_that_uri(tmp_path: Path) -> None:
    f = write(tmp_path / "model.pkl", b"weights")
    assert artifact_id(f, uri="s3://models/m.pkl") == f"s3://models/m.pkl@sha256:{sha(b'weights')}"


def test_empty_file(tmp_path: Path) -> None:
    assert digest(artifact_id(write(tmp_path / "e", b""))) == f"sha256:{sha(b'')}"


# --- directories --------------------------------------------------------------------------


def test_directory_digest_ignores_creation_order(tmp_path: Path) -> None:
    files = {"b.txt": b"B", "a/z.txt": b"Z", "a/b/c.txt": b"C", "0": b"0"}
    for name in files:
        write(tmp_path / "one" / name, files[name])
    for name in reversed(list(files)):
        write(tmp_path / "two" / name, files[name])
    one, two = artifact_id(tmp_path / "one"), artifact_id(tmp_path / "two")
    assert one.startswith(f"{(tmp_path / 'one').resolve().as_uri()}@sha256-tree:")
    assert digest(one) == digest(two)
    assert is_versioned(one)


def test_directory_digest_tracks_nested_content_and_names(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    write(d / "train" / "part-0.csv", b"1,2\n")
    write(d / "meta.json", b"{}")
    base = digest(artifact_id(d))
    assert digest(artifact_id(d)) == base

    (d / "empty").mkdir()
    assert digest(artifact_id(d)) == base, "empty directories do not count"

    write(d / "train" / "part-0.csv", b"1,3\n")
    changed = digest(artifact_id(d))
    assert changed != base

    (d / "train" / "part-0.csv").rename(d / "train" / "part-1.csv")
    renamed = digest(artifact_id(d))
    assert renamed not in (base, changed)

    write(d / "train" / "part-0.csv", b"1,3\n")
    (d / "train" / "part-1.csv").unlink()
    assert digest(artifact_id(d)) == changed


def test_directory_digest_differs_from_file_with_same_listing(tmp_path: Path) -> None:
    write(tmp_path / "d" / "f", b"x")
    write(tmp_path / "f", b"x")
    assert digest(artifact_id(tmp_path / "d")) != digest(artifact_id(tmp_path / "f"))


@pytest.mark.timeout(30)
def test_symlink_loops_do_not_hang(tmp_path: Path) -> None:
    d = tmp_path / "d"
    write(d / "sub" / "f.txt", b"f")
    (d / "sub" / "up").symlink_to("..")  # back to an ancestor
    (d / "sub" / "root").symlink_to(d)
    (d / "self").symlink_to("self")  # ELOOP
    (d / "dangling").symlink_to("missing")
    (d / "alias").symlink_to("sub")  # a legitimate directory link is followed
    first = artifact_id(d)
    assert artifact_id(d) == first
    (d / "dangling").unlink()
    (d / "dangling").symlink_to("elsewhere")
    assert artifact_id(d) != first, "a link's target text is part of the tree"

    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(FileNotFoundError, match="loop"):
        artifact_id(tmp_path / "loop")


def test_special_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe"):
        artifact_id(fifo)
    write(tmp_path / "f", b"x")
    artifact_id(tmp_path)  # a FIFO inside a directory is skipped, not opened


# --- URIs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/key.parquet", "gs://b/k", "bq://proj.ds.table", "https://h/x?y=1", "my+db.x://t"],
)
def test_external_uris_pass_through(uri: str) -> None:
    assert artifact_id(uri) == uri
    assert not is_versioned(uri)
    assert artifact_id(uri, version="123") == f"{uri}@v:123"
    assert is_versioned(artifact_id(uri, version="123"))


def test_existing_version_is_kept_and_ids_are_idempotent(tmp_path: Path) -> None:
    assert artifact_id("s3://b/k@v:7") == "s3://b/k@v:7"
    assert artifact_id("s3://b/k@v:7", version="7") == "s3://b/k@v:7"
    assert artifact_id("s3://u@host/k") == "s3://u@host/k"
    with pytest.raises(ValueError, match="conflicts"):
        artifact_id("s3://b/k@v:7", version="8")
    aid = artifact_id(write(tmp_path / "f", b"x"))
    assert artifact_id(aid) == aid


@pytest.mark.parametrize("version", ["", "a b", "1@2", "2024/01", "x\n"])
def test_bad_version_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match="version="):
        artifact_id("s3://b/k", version=version)


def test_version_on_content_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="drop version="):
        artifact_id(b"x", version="1")
    with pytest.raises(ValueError, match="drop version="):
        artifact_id(write(tmp_path / "f", b"x"), version="1")


def test_file_uri_on_another_host_is_refused() -> None:
    with pytest.raises(ValueError, match="another host"):
        artifact_id("file://server/share/x.csv")


# --- in-memory content --------------------------------------------------------------------


def test_str_with_uri_is_content() -> None:
    text = "héllo\n"
    aid = artifact_id(text, uri="mem://greeting")
    assert aid == f"mem://greeting@sha256:{sha(text.encode('utf-8'))}"
    # the string is content even when it looks like a URI or a path
    assert artifact_id("s3://b/k", uri="mem://t") == f"mem://t@sha256:{sha(b's3://b/k')}"


def test_str_without_uri_is_never_content() -> None:
    with pytest.raises(FileNotFoundError):
        artifact_id("just some text")


def test_bytes_like() -> None:
    expected = f"mem://bytes@sha256:{sha(b'abc')}"
    assert artifact_id(b"abc") == expected
    assert artifact_id(bytearray(b"abc")) == expected
    assert artifact_id(memoryview(b"xabc")[1:]) == expected
    assert artifact_id(b"abc", uri="s3://b/blob") == f"s3://b/blob@sha256:{sha(b'abc')}"


def test_ndarray_digest_covers_dtype_shape_and_values() -> None:
    a = np.arange(12, dtype=np.int64)
    aid = artifact_id(a)
    assert aid.startswith("mem://ndarray@sha256:")
    assert artifact_id(np.arange(12, dtype=np.int64)) == aid
    assert artifact_id(a.reshape(3, 4)) != aid, "same bytes, other shape"
    assert artifact_id(a.view(np.float64)) != aid, "same bytes, other dtype"
    b = a.copy()
    b[5] = -1
    assert artifact_id(b) != aid
    m = np.arange(20).reshape(4, 5)
    assert artifact_id(m.T) == artifact_id(np.ascontiguousarray(m.T)), "layout does not count"
    assert artifact_id(a, uri="mem://features") == "mem://features@" + digest(aid)
    assert artifact_id(np.array(["2024-01-01"], dtype="datetime64[D]")).startswith("mem://")
    with pytest.raises(TypeError, match="dtype object"):
        artifact_id(np.array([{"a": 1}], dtype=object))


def test_dataframe_digest() -> None:
    df = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    aid = artifact_id(df)
    assert aid.startswith("mem://dataframe@sha256:")
    assert artifact_id(df.copy()) == aid
    assert artifact_id(df.rename(columns={"x": "z"})) != aid, "column rename"
    assert artifact_id(df.astype({"x": "float64"})) != aid, "dtype"
    assert artifact_id(df.set_axis([10, 11, 12])) != aid, "index"
    changed = df.copy()
    changed.loc[1, "y"] = "B"
    assert artifact_id(changed) != aid
    s = df["x"]
    assert artifact_id(s).startswith("mem://dataframe@sha256:")
    assert artifact_id(s) != artifact_id(s.rename("other"))
    assert artifact_id(s) != artifact_id(df[["x"]])
    assert artifact_id(df, uri="bq://p.d.t") == "bq://p.d.t@" + digest(aid)


def test_module_import_does_not_import_pandas() -> None:
    code = "import sys, otel_mltrace.artifacts; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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


# --- errors -------------------------------------------------------------------------------


def test_missing_path_names_path_and_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "data.csv"
    for value in (missing, str(missing), missing.as_uri()):
        with pytest.raises(FileNotFoundError) as info:
            artifact_id(value)
        assert str(missing) in str(info.value)
        assert "create it first" in str(info.value) and "s3://" in str(info.value)


@pytest.mark.parametrize("value", [object(), {"a": 1}, 3.5, None, [b"x"]])
def test_unsupported_type_names_type_and_alternative(value: object) -> None:
    with pytest.raises(TypeError) as info:
        artifact_id(value)
    assert type(value).__name__ in str(info.value)
    assert "s3://bucket/key" in str(info.value) and "bytes" in str(info.value)


@pytest.mark.parametrize(
    "uri", ["", "   ", "s3://b/k\n", "\ts3://b/k", "mem://x\x00", "s3://b/k@v:1"]
)
def test_bad_uri_names_value(uri: str) -> None:
    with pytest.raises(ValueError) as info:
        artifact_id(b"x", uri=uri)
    assert repr(uri) in str(info.value)


def test_is_versioned() -> None:
    assert is_versioned("file:///d/x.csv@sha256:ab12")
    assert is_versioned("file:///d@sha256-tree:ab12")
    assert is_versioned("s3://b/k@v:3")
    assert not is_versioned("s3://b/k")
    assert not is_versioned("s3://user@host/k")
