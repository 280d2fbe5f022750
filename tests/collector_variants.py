"""Collectors in the variants the ingest tests run on (backend x where decoding happens),
and the plain one on loopback ports that many tests start.

Example::

    @pytest.fixture(params=["sqlite-in-process", "sqlite-workers", "postgres-in-process"])
    def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Collector]:
        with variant_collector(request, tmp_path) as collector:
            yield collector
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mltrace_collector.service.collector import Collector, CollectorSettings


@contextlib.contextmanager
def variant_collector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Collector]:
    """A started collector on free loopback ports for the variant ``request.param``,
    ``"<sqlite|postgres>-<in-process|workers>"``: SQLite in ``tmp_path`` or a fresh
    PostgreSQL database (fixture ``postgres_url``); decoding in this process or in two
    decode workers. Stopped when the ``with`` ends."""
    variant = str(request.param)
    db = str(tmp_path / "lineage.db")
    if variant.startswith("postgres"):
        db = request.getfixturevalue("postgres_url")
    with loopback_collector(db, decode_workers=2 if variant.endswith("workers") else 0) as c:
        yield c


@contextlib.contextmanager
def loopback_collector(db: Path | str, **settings: Any) -> Iterator[Collector]:
    """A started collector on free loopback ports (gRPC and HTTP) with its index at ``db``
    (a SQLite path or a database URL) and other ``CollectorSettings`` by keyword. Stopped
    when the ``with`` ends."""
    collector = Collector(
        CollectorSettings.resolve(
            db=str(db), grpc_address="127.0.0.1:0", http_address="127.0.0.1:0", **settings
        )
    )
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()
