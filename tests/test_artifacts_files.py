"""Artifact identity of files and directories on disk: the resolved file URI plus the
SHA-256 of the content, directory tree digests, symlink loops and special files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from otel_mltrace.artifacts import artifact_id, is_versioned
from tests import support_artifacts
from tests.support_artifacts import digest, sha, write

# autouse (tests/support_artifacts.py): every test starts with an empty stat cache
_fresh_cache = support_artifacts._fresh_cache


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
