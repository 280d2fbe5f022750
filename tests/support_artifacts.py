"""What the artifact identity tests (tests/test_artifacts_*.py) share: an autouse
fixture that empties the stat cache around each test, and helpers to write settled files
and read digests.

Usage::

    from tests import support_artifacts
    from tests.support_artifacts import digest, sha, write

    _fresh_cache = support_artifacts._fresh_cache  # autouse once bound in the module

    def test_x(tmp_path: Path) -> None:
        f = write(tmp_path / "a.bin", b"x")
        assert digest(artifact_id(f)) == f"sha256:{sha(b'x')}"
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_mltrace.artifacts import clear_stat_cache

HOUR_NS = 3600 * 10**9


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MLTRACE_STAT_CACHE", raising=False)
    clear_stat_cache()
    yield
    clear_stat_cache()


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
