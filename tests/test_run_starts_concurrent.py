"""A start record and its run span committed at the same time leave no start row behind.

On PostgreSQL (READ COMMITTED) two writers (replicas, or decode workers) can commit a
run's start record and its run span at once: the start record's insert does not see the
uncommitted run, the run span's delete does not see the uncommitted start row, so both
commit and a superseded start row stays. Readers skip it (tests/test_run_starts_store.py),
and the writer that commits last now deletes it after its commit
(``run_starts.purge_superseded``), in both orders. An announced run whose span never came
(abandoned) keeps its start row: it is the only record of that run.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from mltrace_collector.index.model import RunRecord, RunStart
from mltrace_collector.index.store import open_store, writes
from mltrace_collector.index.store.ingest_rows import prepare
from mltrace_collector.index.store.run_starts import open_counts, write_starts


def start(run_id: str, start_ns: int) -> RunStart:
    return RunStart(run_id, "train", "ab" * 16, "cd" * 8, "svc", start_ns)


def final(run_id: str, start_ns: int) -> RunRecord:
    return RunRecord(
        run_id=run_id, component="train", trace_id="ab" * 16, span_id="cd" * 8,
        parent_span_id=None, service="svc", start_ns=start_ns, end_ns=start_ns + 10**9,
        status="ok", status_message=None, inputs=(), outputs=("s3://b/out",),
    )  # fmt: skip


@pytest.mark.parametrize("last", ["start record", "run span"])
def test_concurrent_start_and_run_span_leave_no_start_row(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, last: str
) -> None:
    first_store, other_store = open_store(postgres_url), open_store(postgres_url)
    try:
        now = time.time_ns()
        other_store.ingest([], starts=[start("killed", now)])  # never ends: kept
        batches = {
            "start record": prepare([], starts=[start("R", now)]),
            "run span": prepare([final("R", now)]),
        }
        inside, go = threading.Event(), threading.Event()

        def then_wait(*args: Any) -> None:  # the last one waits inside its transaction
            write_starts(*args)  # what writes.write_plan calls
            inside.set()
            assert go.wait(30), "the other commit did not come"

        monkeypatch.setattr(writes, "write_starts", then_wait)
        errors: list[BaseException] = []

        def commit_last() -> None:
            try:
                first_store.ingest_prepared([batches[last]])
            except BaseException as exc:  # re-raised by the test below
                errors.append(exc)

        thread = threading.Thread(target=commit_last)
        thread.start()
        assert inside.wait(30)
        monkeypatch.undo()  # the other commit runs unpaused
        other = "run span" if last == "start record" else "start record"
        other_store.ingest_prepared([batches[other]])
        go.set()
        thread.join(30)
        assert not errors and not thread.is_alive()

        rows = first_store.query("SELECT run_id FROM run_starts ORDER BY run_id")
        assert rows == [{"run_id": "killed"}]  # R's superseded start row: deleted
        assert first_store.get_run("R") is not None
        assert open_counts(first_store, abandon_after=1e-9) == {("train", "abandoned"): 1}
    finally:
        first_store.close()
        other_store.close()
