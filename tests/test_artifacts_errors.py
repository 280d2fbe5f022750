"""Artifact identity errors name the value and the fix (missing path, unsupported type,
bad URI), and ``is_versioned`` tells versioned IDs from plain URIs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_mltrace.artifacts import artifact_id, is_versioned
from tests import support_artifacts

# autouse (tests/support_artifacts.py): every test starts with an empty stat cache
_fresh_cache = support_artifacts._fresh_cache


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
