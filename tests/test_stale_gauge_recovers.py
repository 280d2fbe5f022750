"""The staleness gauge's background pass survives a failing read and catches up after.

A pass that fails (the store unreachable, a table briefly missing) is logged, the last
answer is kept, and the next scrape after the interval tries again — the gauge must not
freeze on its last answer forever. Real SQLite index; the failure is a real one (the
``run_io`` table renamed away by another connection, then back).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import open_store
from mltrace_collector.service.exporters.staleness import MIN_INTERVAL_S, StaleCache

S = 10**9
T = 1_750_000_000 * S


def _run(
    run_id: str, comp: str, start: int, ins: tuple[str, ...], outs: tuple[str, ...]
) -> RunRecord:
    return RunRecord(
        run_id=run_id, component=comp, trace_id="ab" * 16, span_id=f"{start % 16**16:016x}",
        parent_span_id=None, service="svc", start_ns=start, end_ns=start + S, status="ok",
        status_message=None, inputs=ins, outputs=outs,
    )  # fmt: skip


def _settled(cache: StaleCache, watermark: int, deadline_s: float = 20.0) -> bool:
    """``cache.get`` once its background pass (if any) is done: whether "use" is stale."""
    end = time.monotonic() + deadline_s
    while True:
        got = cache.get(["make", "use"], watermark, now_ns=T + 10 * S)
        if cache._idle.is_set() or time.monotonic() > end:  # a pass finished
            got = cache.get(["make", "use"], watermark, now_ns=T + 10 * S)
            return got["use"].stale
        time.sleep(0.05)


def test_a_failed_pass_is_logged_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "index.db")
    store = open_store(db)
    cache = StaleCache(LineageQueries(store), stale_after_s=10**6, background=True)
    try:
        store.ingest(
            [
                _run("m1", "make", T, (), ("mem://x",)),
                _run("u1", "use", T + 2 * S, ("mem://x",), ("mem://y",)),
            ]
        )
        assert _settled(cache, 1) is False
        # mem://x is overwritten after u1 read it: u1 is stale from now on
        store.ingest([_run("m2", "make", T + 4 * S, (), ("mem://x",))])
        other = sqlite3.connect(db)
        other.execute("ALTER TABLE run_io RENAME TO run_io_away")
        other.commit()
        time.sleep(MIN_INTERVAL_S + 0.1)
        with caplog.at_level(logging.ERROR, "mltrace_collector.metrics"):
            assert _settled(cache, 2) is False  # the pass failed: the last answer is kept
        assert "computing staleness failed" in caplog.text
        other.execute("ALTER TABLE run_io_away RENAME TO run_io")
        other.commit()
        other.close()
        time.sleep(MIN_INTERVAL_S + 0.1)
        assert _settled(cache, 2) is True  # no new ingest since: retried all the same
    finally:
        cache.close()
        store.close()
