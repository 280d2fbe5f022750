"""Random pipelines and the comparison of the real queries with ``tests.lineage_model``.

Shared by ``tests/test_semantics_properties.py`` (a bounded number of examples per
backend) and ``scripts/semantics_soak.py`` (a longer run). A pipeline has components
with variants (a ``variant`` param choosing the output URI, like logreg/rf models),
re-runs, fan-in and fan-out, versioned and unversioned URIs, overwrites, in-place updates
(a run writing what it read), zero-length runs (some at another run's very instant), reads
of versions that only a later run writes (or none), raw data read in several versions, record
IDs from a small pool of stable keys carried across versions (on the run span or on record
chunk spans), flags on records, and duplicate runs (another span with a run ID, its records
on chunk spans arriving in any order).

Example::

    pipeline = pipelines().example()
    check_against_model(store, pipeline, random.Random(0))
"""

from __future__ import annotations

import graphlib
import random
from collections import Counter
from dataclasses import dataclass, replace

from hypothesis import strategies as st

from mltrace_collector.index.model import RecordChunk, RunRecord
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.graph_reads import producers_for
from mltrace_collector.service.exporters.staleness import StaleCache
from tests.lineage_model import Edge, Model, MRun, split

KEYS = [f"k{i}" for i in range(5)]
LATER = ["ingest/o0", "clean/o0", "ingest/o0@v:1", "clean/o0@v:2", "trainx/o0@v:1"]
"""Outputs a later run may write, read before that (so a reader may come before every
writer of the version it read: overlapping runs, clock skew, each reading what the other
wrote)."""
NOW = 10_000_000
DAY = 86_400 * 10**9


@dataclass
class Pipeline:
    runs: list[MRun]
    flags: list[str]
    older_than_ns: int


@st.composite
def pipelines(draw: st.DrawFn, max_runs: int = 9) -> Pipeline:
    n = draw(st.integers(2, max_runs))
    runs: list[MRun] = []
    written: list[str] = []  # artifact IDs written so far
    raw = ["raw/a@v:1", "raw/a@v:2", "raw/b", "raw/c@v:1"]
    for i in range(n):
        comp = draw(st.sampled_from(["ingest", "clean", "train", "predict"]))
        variant = draw(st.sampled_from(["x", "y"])) if comp == "train" else ""
        start = 1000 * (i + 1) + draw(st.integers(0, 400))
        # overlaps (a reader may start first), and zero-length runs (start = end)
        end = start + draw(st.one_of(st.just(0), st.integers(0, 1500)))
        if runs and draw(st.integers(0, 5)) == 0:  # zero-length, at another run's instant
            start = end = draw(st.sampled_from([runs[-1].start, runs[-1].end]))
        pool = raw + written + sorted({split(w)[0] for w in written})
        if draw(st.integers(0, 3)) == 0:  # what a later run may write (or none ever does)
            pool += LATER
        inputs = tuple(sorted(set(draw(st.lists(st.sampled_from(pool), max_size=3)))))
        outputs: list[str] = []
        for k in range(draw(st.integers(0 if i else 1, 2))):
            uri = f"{comp}{variant}/o{k}"
            version = draw(st.sampled_from([None, "v:1", "v:2", "v:3"]))
            outputs.append(uri if version is None else f"{uri}@{version}")
        if inputs and draw(st.integers(0, 3)) == 0:  # an in-place update: writes what it read
            outputs.append(draw(st.sampled_from(inputs)))
        outputs = sorted(set(outputs))
        records: list[tuple[str, str, str]] = []
        for out in outputs:
            if draw(st.booleans()):
                for key in draw(
                    st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True)
                ):
                    source = draw(st.sampled_from(["", key, key, *KEYS]))
                    records.append((out, key, source))
        runs.append(
            MRun(f"r{i:02d}", comp, start, end, inputs, tuple(outputs), tuple(records),
                 {"variant": variant})
        )  # fmt: skip
        written += outputs
    record_ids = sorted({rid for r in runs for _, rid, _ in r.records})
    flaggable = [*record_ids, *record_ids, *sorted({o for r in runs for o in r.outputs})]
    flaggable += [r.run_id for r in runs]
    flags = draw(st.lists(st.sampled_from(flaggable), max_size=3, unique=True))
    older_than = draw(st.sampled_from([DAY, NOW - 3000, NOW - 6000]))
    return Pipeline(runs, flags, older_than)


def record_chunks(
    records: tuple[tuple[str, str, str], ...], rng: random.Random
) -> list[RecordChunk]:
    """``(output, record ID, source)`` rows as record chunks: up to two per output."""
    by_output: dict[str, list[tuple[str, str]]] = {}
    for out, rid, src in records:
        by_output.setdefault(out, []).append((rid, src))
    chunks = []
    for out, rows in sorted(by_output.items()):
        rng.shuffle(rows)
        half = max(1, len(rows) // 2)
        parts = [rows[:half], rows[half:]] if len(rows) > 1 else [rows]
        for index, part in enumerate(parts):
            chunks.append(
                RecordChunk(
                    out, index, len(parts), tuple(r for r, _ in part), tuple(s for _, s in part)
                )
            )
    return chunks


def run_record(run: MRun, rng: random.Random) -> RunRecord:
    return RunRecord(
        run_id=run.run_id, component=run.component, trace_id=f"{rng.getrandbits(128):032x}",
        span_id=f"{rng.getrandbits(64):016x}", parent_span_id=None, service="svc",
        start_ns=run.start, end_ns=run.end, status="ok", status_message=None,
        inputs=run.inputs, outputs=run.outputs, params=dict(run.params),
        record_chunks=tuple(record_chunks(run.records, rng)),
    )  # fmt: skip


def as_chunk_spans(run: RunRecord, rng: random.Random) -> tuple[RunRecord, list[RecordChunk]]:
    """``run`` without its record chunks, and those chunks as record chunk spans (children
    of the run span naming its run ID), as the SDK sends large record batches."""
    loose = [
        replace(c, run_id=run.run_id, trace_id=run.trace_id,
                span_id=f"{rng.getrandbits(64):016x}", parent_span_id=run.span_id)
        for c in run.record_chunks
    ]  # fmt: skip
    return replace(run, record_chunks=()), loose


def duplicate(run: MRun, rng: random.Random) -> tuple[RunRecord, list[RecordChunk]]:
    """Another span with ``run``'s run ID (a second process using it): other records, for
    ``run``'s outputs and one of its own, on record chunk spans. The model has none of
    them: the run ID is indexed for ``run``'s span, so the duplicate leaves nothing."""
    records = [
        (out, key, rng.choice(["", *KEYS]))
        for out in (*run.outputs, "dupe/o@v:1")
        for key in rng.sample(KEYS, rng.randint(1, 3))
    ]
    span = replace(run, records=tuple(records))
    return as_chunk_spans(run_record(span, rng), rng)


Item = RunRecord | RecordChunk


def ingest_shuffled(store: Store, runs: list[MRun], rng: random.Random) -> None:
    """Every run's span in random order, some twice (a retried batch), in random batches.
    Some runs send their records on record chunk spans, and some have a duplicate (another
    span with the run ID, with records on chunk spans of its own): its run span arrives
    after the run's, its chunk spans anywhere, also before any span of the run ID."""
    items: list[Item] = []
    dupes: dict[str, str] = {}  # run ID -> span ID of its duplicate
    for run in runs:
        record = run_record(run, rng)
        if rng.random() < 0.5:
            record, loose = as_chunk_spans(record, rng)
            items += loose
        items.append(record)
        if rng.random() < 0.3:
            other, loose = duplicate(run, rng)
            dupes[run.run_id] = other.span_id
            items += [other, *loose]
    items += [i for i in items if rng.random() < 0.3]
    rng.shuffle(items)
    for run_id, dupe in dupes.items():  # the run's first span before its duplicate's
        spans = [(k, i.span_id) for k, i in enumerate(items)
                 if isinstance(i, RunRecord) and i.run_id == run_id]  # fmt: skip
        first_dupe = next(k for k, span_id in spans if span_id == dupe)
        first_own = next(k for k, span_id in spans if span_id != dupe)
        if first_dupe < first_own:
            items[first_dupe], items[first_own] = items[first_own], items[first_dupe]
    while items:
        k = rng.randint(1, 4)
        part, items = items[:k], items[k:]
        store.ingest(
            [i for i in part if isinstance(i, RunRecord)],
            records=[i for i in part if isinstance(i, RecordChunk)],
        )


def _same(what: str, got: tuple[set[str], set[Edge]], want: tuple[set[str], set[Edge]]) -> None:
    """Assert equal graphs; the message names the query and what differs."""
    if got != want:
        raise AssertionError(
            f"{what}: runs only in the answer {sorted(got[0] - want[0])}, only in the model "
            f"{sorted(want[0] - got[0])}; edges only in the answer {sorted(got[1] - want[1])}, "
            f"only in the model {sorted(want[1] - got[1])}"
        )


def _edges(graph: dict[str, object]) -> set[tuple[str, str, str]]:
    edges = graph["edges"]
    assert isinstance(edges, list)
    return {(e["source"], e["target"], e["relation"]) for e in edges}


def check_against_model(store: Store, p: Pipeline, rng: random.Random) -> None:
    """Ingest ``p`` into the empty ``store`` and assert every query equals the model's."""
    ingest_shuffled(store, p.runs, rng)
    model = Model(p.runs)
    q = LineageQueries(store)
    check_acyclic(q, p.runs, model)
    for run in p.runs:
        graph = q.trace(run.run_id)
        _same(
            f"trace {run.run_id}", (set(graph["runs"]), _edges(graph)), model.trace_run(run.run_id)
        )
        graph = q.downstream(run.run_id)
        want = model.downstream_run(run.run_id)
        _same(f"downstream {run.run_id}", (set(graph["runs"]), _edges(graph)), want)
    for aid in sorted({o for r in p.runs for o in r.outputs}):
        graph = q.trace(aid)
        _same(f"trace {aid}", (set(graph["runs"]), _edges(graph)), model.trace_artifact(aid))
    check_stale(q, model, p)
    for rid in sorted({rid for r in p.runs for _, rid, _ in r.records}):
        graph = q.trace(rid)
        want_runs, want_records = model.trace_record(rid)
        got_records = {
            (e["id"], tuple(e["produced_by"]), tuple(e["outputs"]))
            for e in graph["records"].values()
        }
        want_occurrences = {
            (r, tuple(sorted({k[0] for k in keys})), tuple(sorted({k[1] for k in keys})))
            for r, keys in want_records
        }
        assert (set(graph["runs"]), got_records) == (want_runs, want_occurrences), (
            "record trace",
            rid,
        )
    if p.flags:
        q.flag(p.flags)
        got = q.review(limit=1000)
        want_rows = model.review_runs(p.flags)
        assert {(r["run_id"], r["flagged_count"], r["unflagged_count"]) for r in got["runs"]} == {
            (u, a, b) for u, a, b, _ in want_rows
        }, "review"
        if want_rows:
            top = {u for u, _, _, s in want_rows if s == want_rows[0][3]}
            assert got["runs"][0]["run_id"] in top, "review top culprit"
        else:
            assert got["runs"] == [] and "ranked" not in got["verdict"], got["verdict"]


def find_cycle(producers: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph run -> the producers of its inputs, or ``None``."""
    try:
        graphlib.TopologicalSorter(producers).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def check_acyclic(q: LineageQueries, runs: list[MRun], model: Model) -> None:
    """The stitch graph (each run -> the producer each of its inputs stitched to, as the
    index answers: ``producers_for``, behind ``inspect``, ``stale`` and record lineage,
    in one batch) has no cycle; nor has the model's."""
    reads = [(aid, run.start, run.run_id) for run in runs for aid in run.inputs]
    real: dict[str, set[str]] = {run.run_id: set() for run in runs}
    for (_, _, reader), producer in producers_for(q.store, reads).items():
        if producer is not None:
            real[str(reader)].add(producer["run_id"])
    cycle = find_cycle(real)
    assert cycle is None, f"the stitch graph has a cycle: {' <- '.join(cycle)}"
    modelled = {
        r.run_id: {p.run_id for a in r.inputs if (p := model.input_producer(r, a))} for r in runs
    }
    assert find_cycle(modelled) is None, "the model's stitch graph has a cycle"


def check_stale(q: LineageQueries, model: Model, p: Pipeline) -> None:
    rows = q.stale(p.older_than_ns / 1e9, now_ns=NOW)
    want = model.stale(NOW, p.older_than_ns)
    got = {r["run_id"]: (r["stale"], bool(r["reasons"])) for r in rows}
    assert got == want, "stale"
    for r in rows:
        up = r["upstream"]
        if up is None:
            continue
        path = up["path"]
        assert path[0] == r["run_id"] and path[-1] == up["run_id"]
        for i in range(0, len(path) - 2, 2):
            reader, aid, producer = model.runs[path[i]], path[i + 1], path[i + 2]
            found = model.input_producer(reader, aid)
            assert aid in reader.inputs and found is not None and found.run_id == producer
        assert model.direct_stale(up["run_id"], NOW, p.older_than_ns)
    check_stale_gauge(q, model, p, {r["run_id"]: r["stale"] for r in rows})


def check_stale_gauge(q: LineageQueries, model: Model, p: Pipeline, live: dict[str, bool]) -> None:
    """``mltrace_component_stale{component}`` is 1 iff at least one live run of the
    component is stale by the model (inherited staleness included), and
    ``mltrace_component_stale_runs`` is the model's count of them — both equal to what
    ``stale`` lists, for every component (whichever of its runs is newest, live or not)."""
    components = {run.component for run in p.runs}
    gauge = StaleCache(q, p.older_than_ns / 1e9).get(components, 1, now_ns=NOW)
    want = model.stale(NOW, p.older_than_ns)  # every live run -> (stale, directly stale)
    model_count = Counter(model.runs[r].component for r, (stale, _) in want.items() if stale)
    listed = Counter(model.runs[r].component for r, stale in live.items() if stale)
    got = {c: (g.stale, g.stale_runs) for c, g in gauge.items()}
    assert got == {c: (model_count[c] > 0, model_count[c]) for c in components}, (
        "stale gauge vs model",
        got,
        model_count,
    )
    assert {c: n for c, (_, n) in got.items() if n} == dict(listed), ("stale gauge vs stale", got)
