"""Stitching is acyclic by construction (docs/semantics.md, "Stitching"), from the user's side.

Two runs used to stitch to each other, so ``trace`` showed a run as its own ancestor:

* **same instant**: two zero-length runs at one nanosecond (start = end = t), ``a`` reads
  ``x`` and writes ``y``, ``b`` reads ``y`` and writes ``x`` — "ended at or before t" held
  both ways (unversioned URIs, and versioned IDs);
* **clock skew**: two overlapping runs, ``a`` reads ``x@v:1`` that only ``b`` wrote and
  ``b`` reads ``y@v:1`` that only ``a`` wrote — the fallback "if none ended by t, the one
  that ended first" picked the other run both ways.

Runs are ordered by (start, run ID) and a producer always comes before its reader in that
order, so only the later run (``b``) gets its input from the other. The runs are made by the
real OTel SDK with explicit times, encoded with the official OTLP encoder, ingested through
the real pipeline on SQLite and on a real PostgreSQL, and asked through the
``otel-mltrace`` CLI; the forwarder's span links (index and producer cache) agree.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import open_store
from mltrace_collector.service.ingest.pipeline import IngestPipeline
from otel_mltrace import semconv
from otel_mltrace.cli import main
from tests.backends import postgres_server, postgres_url
from tests.lineage_model import MRun
from tests.semantics_check import NOW, Pipeline, check_against_model

__all__ = ["postgres_server", "postgres_url"]  # fixtures

T = 1_750_000_000 * 10**9
S = 10**9

# run ID -> (start ns, end ns, inputs, outputs); "a" < "b" in run ID order
CASES: dict[str, dict[str, tuple[int, int, list[str], list[str]]]] = {
    "same instant": {
        "a": (T, T, ["mem://x"], ["mem://y"]),
        "b": (T, T, ["mem://y"], ["mem://x"]),
    },
    "same instant, versioned": {
        "a": (T, T, ["s3://x@v:1"], ["s3://y@v:1"]),
        "b": (T, T, ["s3://y@v:1"], ["s3://x@v:1"]),
    },
    "clock skew": {
        "a": (T, T + 2 * S, ["s3://x@v:1"], ["s3://y@v:1"]),
        "b": (T + S, T + 3 * S, ["s3://y@v:1"], ["s3://x@v:1"]),
    },
    # the same, the later-starting run having the smaller ID: the order is by start first
    "clock skew, IDs reversed": {
        "b": (T, T + 2 * S, ["s3://x@v:1"], ["s3://y@v:1"]),
        "a": (T + S, T + 3 * S, ["s3://y@v:1"], ["s3://x@v:1"]),
    },
}
FIRST = {
    "same instant": "a",
    "same instant, versioned": "a",
    "clock skew": "a",
    "clock skew, IDs reversed": "b",
}


def otlp(runs: dict[str, tuple[int, int, list[str], list[str]]]) -> bytes:
    """The runs as one OTLP request body, made by the real SDK with explicit times."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "acyclic-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.test_stitching_acyclic")
    for run_id, (start, end, inputs, outputs) in runs.items():
        attrs: dict[str, Any] = {
            semconv.COMPONENT: f"step_{run_id}",
            semconv.RUN_ID: run_id,
            semconv.INPUTS: inputs,
            semconv.OUTPUTS: outputs,
        }
        tracer.start_span(f"step_{run_id}", start_time=start, attributes=attrs).end(end_time=end)
    provider.shutdown()
    return encode_spans(list(exporter.get_finished_spans())).SerializeToString()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty index: a SQLite path or a real PostgreSQL URL."""
    target = str(tmp_path / "index.db")
    if request.param == "postgres":
        target = request.getfixturevalue("postgres_url")
    open_store(target).close()
    yield target


def ingest(target: str, body: bytes) -> None:
    store = open_store(target)
    pipeline = IngestPipeline(store, max_inflight=4)
    try:
        outcome = pipeline.export(ExportTraceServiceRequest.FromString(body))
        assert outcome.rejected_spans == 0, outcome.error_message
    finally:
        pipeline.close()
        store.close()


def cli(target: str, *args: str) -> Any:
    result = CliRunner().invoke(main, ["--db", target, *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def stored_record(row: Any, inputs: Any, outputs: Any) -> RunRecord:
    """The ``RunRecord`` of a stored run row, as a collector hands it to the forwarder."""
    return RunRecord(
        run_id=row["run_id"], component=row["component"], trace_id=row["trace_id"],
        span_id=row["span_id"], parent_span_id=None, service="acyclic-test",
        start_ns=row["start_ns"], end_ns=row["end_ns"], status="ok", status_message=None,
        inputs=tuple(inputs), outputs=tuple(outputs),
    )  # fmt: skip


def producers(graph: dict[str, Any]) -> dict[str, set[str]]:
    """run ID -> the runs its inputs stitched to, from a trace graph's edges."""
    made_by = {e["target"]: e["source"] for e in graph["edges"] if e["relation"] == "output"}
    found: dict[str, set[str]] = {run: set() for run in graph["runs"]}
    for e in graph["edges"]:
        if e["relation"] == "input" and e["source"] in made_by:
            found[e["target"]].add(made_by[e["source"]])
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_runs_never_stitch_to_each_other(database: str, case: str) -> None:
    runs = CASES[case]
    ingest(database, otlp(runs))
    first = FIRST[case]
    (second,) = set(runs) - {first}
    (read_by_first,) = runs[first][2]
    (read_by_second,) = runs[second][2]

    # the later run (start, then run ID) got its input from the earlier one ...
    up = cli(database, "trace", second)
    assert set(up["runs"]) == {first, second}
    assert producers(up) == {second: {first}, first: set()}
    raw = {a["id"] for a in up["artifacts"].values() if a["raw"]}
    assert raw == {read_by_first}  # ... whose input, written only later, is raw data
    # ... and never the other way round: no run is its own ancestor
    down = cli(database, "trace", first)
    assert set(down["runs"]) == {first}
    assert producers(down) == {first: set()}

    inspected = {r: cli(database, "inspect", r)["inputs"] for r in runs}
    assert [i["producer_run_id"] for i in inspected[second]] == [first]
    assert [i["producer_run_id"] for i in inspected[first]] == [None]
    assert inspected[second][0]["artifact_id"] == read_by_second

    # downstream is the same relation the other way
    assert set(cli(database, "downstream", first)["runs"]) == {first, second}
    assert set(cli(database, "downstream", second)["runs"]) == {second}

    # stale: "same instant" — b overwrote mem://x after a read it, so a is directly stale
    # and b inherits it through its producer a; "clock skew" — a got x@v:1 (raw), and b
    # wrote the same version: nothing is stale. Never a run blamed on itself.
    q = LineageQueries(open_store(database))
    try:
        rows = {r["run_id"]: r for r in q.stale(10**9, now_ns=T + 10 * S)}
    finally:
        q.store.close()
    overwritten = case == "same instant"
    assert rows[first]["stale"] == overwritten and rows[first]["upstream"] is None
    assert rows[second]["stale"] == overwritten and not rows[second]["reasons"]
    if overwritten:
        assert rows[second]["upstream"]["path"] == [second, read_by_second, first]


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_forwarded_span_links_go_one_way(database: str, case: str, cached: bool) -> None:
    """The forwarder's span links (to Jaeger) follow the same rule, from the index and
    from its producer cache of recent versioned writes alike: the later run links to the
    earlier, the earlier links to nothing."""
    from mltrace_collector.service.exporters.forward_links import (
        ProducerCache,
        consumers_of,
        find_links,
    )

    ingest(database, otlp(CASES[case]))
    store = open_store(database)
    try:
        runs = {r["run_id"]: r for r in (store.get_run(run_id) for run_id in CASES[case]) if r}
        records = [
            stored_record(row, CASES[case][run_id][2], CASES[case][run_id][3])
            for run_id, row in runs.items()
        ]
        cache = ProducerCache(LineageQueries(store).producer_for)
        if cached:
            cache.remember(records)
        found = find_links(consumers_of(records), cache.lookup)
    finally:
        store.close()
    first = runs[FIRST[case]]
    (second,) = (row for run_id, row in runs.items() if run_id != FIRST[case])
    assert found.missing == 1  # the earlier run's input: raw data
    assert list(found.links) == [bytes.fromhex(second["span_id"])]
    (link,) = found.links[bytes.fromhex(second["span_id"])]
    assert (link.trace_id.hex(), link.span_id.hex()) == (first["trace_id"], first["span_id"])


# (writer, reader, whether the writer is the reader's producer): only the order matters
COMMON: dict[str, tuple[MRun, MRun, bool]] = {
    # ended exactly when the reader started, larger ID: it still came before (earlier start)
    "ended at the reader's start, larger ID": (
        MRun("z", "make", 1000, 2000, (), ("mem://t",)),
        MRun("a", "use", 2000, 2500, ("mem://t",), ("use/o@v:1",)),
        True,
    ),
    # zero-length at the reader's start: the smaller ID comes first ...
    "zero-length at the reader's start, smaller ID": (
        MRun("a", "make", 2000, 2000, (), ("s3://t@v:1",)),
        MRun("b", "use", 2000, 2500, ("s3://t@v:1",), ("use/o@v:1",)),
        True,
    ),
    # ... the larger does not (the one common-looking case the order changes)
    "zero-length at the reader's start, larger ID": (
        MRun("b", "make", 2000, 2000, (), ("mem://t",)),
        MRun("a", "use", 2000, 2500, ("mem://t",), ("use/o@v:1",)),
        False,
    ),
}


@pytest.mark.parametrize("case", sorted(COMMON))
def test_ties_on_time_are_broken_by_the_order(database: str, case: str) -> None:
    writer, reader, stitched = COMMON[case]
    store = open_store(database)
    try:
        check_against_model(
            store, Pipeline([writer, reader], [], older_than_ns=NOW), random.Random(0)
        )
        (read,) = LineageQueries(store).inspect(reader.run_id)["inputs"]
    finally:
        store.close()
    assert read["producer_run_id"] == (writer.run_id if stitched else None)
