"""Artifact identity without a local file: external URIs pass through (with an optional
version), and in-memory content (str with a URI, bytes, NumPy arrays, pandas frames) is
addressed by its digest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from otel_mltrace.artifacts import artifact_id, is_versioned
from tests import support_artifacts
from tests.support_artifacts import digest, sha, write

# autouse (tests/support_artifacts.py): every test starts with an empty stat cache
_fresh_cache = support_artifacts._fresh_cache


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
