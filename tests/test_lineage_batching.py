"""Batched graph walks agree with the one-edge-at-a-time stitching rules past chunk limits.

The stitching tests use small graphs; here one run reads 1,300 artifacts (more than two
``IN`` chunks of 500) — versioned IDs with several writers (one only after the reader
started: clock skew), unversioned URIs with writers before and after the reader — and
the prefetch cap is forced low, so every batched path and its fallback run. The expected
producers come from ``LineageQueries.producer_for``, the single-item implementation.
"""

from __future__ import annotations

import pytest

from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.queries import lineage_walk
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store.base import Store
from tests.backends import lineage_store  # noqa: F401  (fixture)

N_INPUTS = 1300
READER_START = 10_000


def _run(run_id: str, start: int, end: int, ins: list[str], outs: list[str]) -> RunRecord:
    return RunRecord(
        run_id=run_id, component=run_id.split("-")[0], trace_id="0" * 31 + "1",
        span_id="0" * 15 + "1", parent_span_id=None, service="t", start_ns=start,
        end_ns=end, status="ok", status_message=None, inputs=tuple(ins), outputs=tuple(outs),
    )  # fmt: skip


def _index(store: Store) -> list[str]:
    runs: list[RunRecord] = []
    inputs: list[str] = []
    for k in range(N_INPUTS):
        raw = f"s3://raw/{k}.csv@sha256:{k:04x}"
        if k % 3 == 0:  # unversioned: writers before and after the reader started
            aid = f"s3://u/{k}.csv"
            runs.append(_run(f"early-{k}", 1, 100 + k, [raw], [aid + "@v:1"]))
            runs.append(_run(f"late-{k}", 1, READER_START + 5, [raw], [aid + "@v:2"]))
        elif k % 3 == 1:  # versioned, two writers that ended before the reader
            aid = f"s3://v/{k}.csv@sha256:{k:04x}"
            runs.append(_run(f"old-{k}", 1, 50, [raw], [aid]))
            runs.append(_run(f"new-{k}", 1, 60, [raw], [aid]))
        else:  # versioned, only written after the reader started (clock skew)
            aid = f"s3://s/{k}.csv@sha256:{k:04x}"
            runs.append(_run(f"skew-{k}", 1, READER_START + 10, [raw], [aid]))
        inputs.append(aid)
    runs.append(_run("reader-0", READER_START, READER_START + 1, inputs, ["s3://out/o.csv@v:9"]))
    store.ingest(runs)
    return inputs


@pytest.mark.parametrize("prefetch_runs", [3, 10_000])
def test_wide_trace_matches_single_item_rules(
    lineage_store: Store,  # noqa: F811
    prefetch_runs: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lineage_walk, "PREFETCH_RUNS", prefetch_runs)
    inputs = _index(lineage_store)
    q = LineageQueries(lineage_store)
    graph = q.trace("s3://out/o.csv@v:9")
    expected = {("reader-0", "s3://out/o.csv@v:9", "output")}
    for aid in inputs:
        expected.add((aid, "reader-0", "input"))
        producer = q.producer_for(aid, READER_START)
        assert producer is not None, aid
        expected.add((producer["run_id"], aid, "output"))
        for io in lineage_store.run_io(producer["run_id"]):
            if io["direction"] == "in":
                expected.add((io["artifact_id"], producer["run_id"], "input"))
    got = {(e["source"], e["target"], e["relation"]) for e in graph["edges"]}
    assert got == expected
    producers = {s for s, _, rel in expected if rel == "output"}
    assert set(graph["runs"]) == producers
    assert any(p.startswith("early-") for p in producers)  # unversioned: not the late writer
    assert any(p.startswith("new-") for p in producers)  # versioned: newest that ended
    assert any(p.startswith("skew-") for p in producers)  # none ended: the earliest writer
    assert q.inspect("reader-0")["inputs"] == [
        {"artifact_id": a, "producer_run_id": q.producer_for(a, READER_START)["run_id"]}  # type: ignore[index]
        for a in sorted(inputs)
    ]
    # downstream of each kind of producer reaches the reader through what it really read
    for run_id in ("early-0", "new-1", "skew-2"):
        assert "reader-0" in q.downstream(run_id)["runs"]
    for run_id in ("late-0", "old-1"):
        down = q.downstream(run_id)
        assert ("reader-0" in down["runs"]) == run_id.startswith("old-")
