"""A run never stitches a read to itself (docs/semantics.md, "Stitching").

A run that reads and writes the same URI (``inputs=["mem://t"], outputs=["mem://t"]``,
an in-place update) got its own write as the producer of its read when it was the latest
writer that had "ended by" its start — a zero-length run (start = end), a tie on time, or,
for a versioned ID whose writers all ended after the read (clock skew), the earliest of
them. ``trace`` then showed the run as its own parent, ``downstream`` as its own reader,
and ``stale`` called it stale because of the version it wrote itself. The read goes to
the previous producer; on SQLite and on a real PostgreSQL, and the reference model agrees.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import Store
from tests.backends import lineage_store, postgres_server, postgres_url
from tests.lineage_model import Model, MRun
from tests.semantics_check import NOW, Pipeline, check_against_model

__all__ = ["lineage_store", "postgres_server", "postgres_url"]  # fixtures

CASES: dict[str, list[MRun]] = {
    # p writes mem://t; u updates it in place in no time at all (start = end)
    "zero-length": [
        MRun("p", "make", 1000, 1100, (), ("mem://t",)),
        MRun("u", "update", 2000, 2000, ("mem://t",), ("mem://t",), (("mem://t", "k1", "k1"),)),
    ],
    # u starts the instant p ends, takes no time, and its ID is the larger: a tie on time
    "tie": [
        MRun("p", "make", 1000, 2000, (), ("mem://t",), (("mem://t", "k1", ""),)),
        MRun("u", "update", 2000, 2000, ("mem://t",), ("mem://t",), (("mem://t", "k1", "k1"),)),
    ],
    # an ordinary in-place update: the read stitched right, but stale blamed u's own write
    "in-place": [
        MRun("p", "make", 1000, 1100, (), ("mem://t",)),
        MRun("u", "update", 2000, 2500, ("mem://t",), ("mem://t",)),
    ],
    # u reads x@v:1 and writes it back unchanged; p's end is after u's start (clock skew):
    # the skew fallback (earliest writer) was u itself
    "versioned-skew": [
        MRun("p", "make", 1000, 3000, (), ("s3://x@v:1",), (("s3://x@v:1", "k1", ""),)),
        MRun("u", "touch", 2000, 2500, ("s3://x@v:1",), ("s3://x@v:1",)),
    ],
}


def _edges(graph: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e["source"], e["target"], e["relation"]) for e in graph["edges"]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_never_stitches_its_read_to_itself(lineage_store: Store, case: str) -> None:
    runs = CASES[case]
    flags = ["k1"] if any(r.records for r in runs) else []  # review ranks record lineages
    check_against_model(lineage_store, Pipeline(runs, flags, older_than_ns=NOW), random.Random(0))
    q = LineageQueries(lineage_store)
    read = runs[1].inputs[0]

    up = q.trace("u")
    assert set(up["runs"]) == {"u", "p"}
    assert ("p", read, "output") in _edges(up)
    assert ("u", read, "output") not in _edges(up)  # u is not its own parent
    assert [i["producer_run_id"] for i in q.inspect("u")["inputs"]] == ["p"]

    down = q.downstream("u")
    assert set(down["runs"]) == {"u"}  # u is not its own reader
    assert (read, "u", "input") not in _edges(down)
    assert set(q.downstream("p")["runs"]) == {"p", "u"}

    stale = {r["run_id"]: r for r in q.stale(10**9, now_ns=NOW)}
    assert not stale["u"]["stale"], stale["u"]["reasons"]  # its own write is no newer input


def test_the_model_says_the_same() -> None:
    """The reference model (``tests/lineage_model.py``) holds the rule too."""
    for runs in CASES.values():
        model = Model(runs)
        u = model.runs["u"]
        assert [model.input_producer(u, a) for a in u.inputs] == [model.runs["p"]]
        assert model.trace_run("u")[0] == {"u", "p"}
        assert model.downstream_run("u")[0] == {"u"}
        assert model.stale(NOW, 10**18)["u"] == (False, False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_stale_gauge_agrees(lineage_store: Store, case: str) -> None:
    """``mltrace_component_stale``'s direct rules (``StaleCache``): not stale by its own write."""
    from mltrace_collector.service.exporters.staleness import StaleCache

    runs = CASES[case]
    check_against_model(lineage_store, Pipeline(runs, [], older_than_ns=NOW), random.Random(1))
    comps = {r.component for r in runs}
    got = StaleCache(LineageQueries(lineage_store), stale_after_s=10**12).get(comps, 1)
    assert {c: g.stale for c, g in got.items()} == {"make": False, runs[1].component: False}


@pytest.mark.parametrize("case", ["zero-length", "versioned-skew"])
@pytest.mark.parametrize("cached", [False, True])
def test_forwarded_span_links_the_previous_producer(
    lineage_store: Store, case: str, cached: bool
) -> None:
    """The forwarder's span link from ``u`` goes to ``p``, not to ``u`` itself (which it
    used to drop, leaving no link), from the index and from its producer cache alike."""
    from mltrace_collector.service.exporters.forward_links import (
        ProducerCache,
        consumers_of,
        find_links,
    )
    from tests.semantics_check import run_record

    rng = random.Random(2)
    p, u = (run_record(r, rng) for r in CASES[case])
    lineage_store.ingest([p, u])
    cache = ProducerCache(LineageQueries(lineage_store).producer_for)
    if cached:
        cache.remember([p, u])
    found = find_links(consumers_of([u]), cache.lookup)
    assert found.missing == 0
    links = found.links[bytes.fromhex(u.span_id)]
    assert [(t.trace_id.hex(), t.span_id.hex()) for t in links] == [(p.trace_id, p.span_id)]
