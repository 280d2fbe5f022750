"""A rejected duplicate run span leaves nothing of itself in the index.

A second span with an indexed run ID is rejected (tests/test_duplicate_runs.py). Its other
data (``run_io`` rows, artifacts and their ``first_seen_ns``, output summaries, record
chunks, checks and the flags a failed check raises) must not be written under the shared
run ID either: the index after "A, then duplicate B" is, table by table, the index after
"A" alone. Covered on SQLite and PostgreSQL, in the collector process and in decode
workers, for spans the C reader prepares (plain runs) and spans the Python decoder
prepares (runs with events), with the pure Python path too, for duplicates within one
request, across requests, and within one group commit. A duplicate's record chunk spans
(children of its run span, naming the run ID) are rejected and leave nothing either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mltrace_collector.index.decode import processor
from mltrace_collector.index.decode.isolation import foreign_chunk_rejections
from mltrace_collector.index.decode.processor import decode_request
from mltrace_collector.index.store import open_store
from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.ingest_rows import prepare
from mltrace_collector.service.collector import Collector, CollectorSettings
from otel_mltrace import semconv
from otel_mltrace.distributions import summarize, to_event_attributes
from otel_mltrace.records import MAX_IDS_PER_CHUNK
from otel_mltrace.run import Run
from tests.otlp_builders import chunk_span as chunk_span_of
from tests.otlp_builders import kvs, request, run_span
from tests.otlp_builders import send_http as send
from tests.servers.postgres import PostgresServer

T0 = 1_700_000_000_000_000_000
SKIP_COLUMNS = {"ingested_ns", "flagged_ns", "applied_ns"}  # when it was written, not what


# -- spans -------------------------------------------------------------------------------
def _event(name: str, attrs: dict[str, Any]) -> Span.Event:
    return Span.Event(name=name, attributes=kvs(attrs))


def rich_span(
    run_id: str, *, start_ns: int, outputs: list[str], scores: list[float], extra: bool
) -> Span:
    """A run span with output summaries, record chunks and checks (the Python decoder's)."""
    span = run_span(
        "train",
        run_id=run_id,
        start_ns=start_ns,
        outputs=outputs,
        inputs=["s3://b/data@v:1"] + (["s3://b/extra@v:1"] if extra else []),
    )
    events = [_event(semconv.OUTPUT_EVENT, dict(to_event_attributes(summarize("score", scores))))]
    events.append(
        _event(
            semconv.RECORDS_EVENT,
            {
                semconv.RECORDS_OUTPUT: outputs[0],
                semconv.RECORDS_IDS: [f"{run_id}-{s}" for s in scores],
            },
        )
    )
    events.append(
        _event(
            semconv.CHECK_EVENT,
            {
                semconv.CHECK_NAME: "rows",
                semconv.CHECK_PHASE: "after",
                semconv.CHECK_STATUS: "fail" if extra else "pass",
                semconv.CHECK_ON_FAIL: "flag",
            },
        )
    )
    if extra:  # a new output name, records for another output, another check
        events.append(
            _event(semconv.OUTPUT_EVENT, dict(to_event_attributes(summarize("loss", [0.1, 0.2]))))
        )
        events.append(
            _event(
                semconv.RECORDS_EVENT,
                {
                    semconv.RECORDS_OUTPUT: "s3://b/other@v:1",
                    semconv.RECORDS_IDS: ["x1", "x2"],
                },
            )
        )
        events.append(
            _event(
                semconv.CHECK_EVENT,
                {
                    semconv.CHECK_NAME: "fresh",
                    semconv.CHECK_PHASE: "before",
                    semconv.CHECK_STATUS: "fail",
                    semconv.CHECK_ON_FAIL: "flag",
                },
            )
        )
    span.events.extend(events)
    return span


def originals() -> list[Span]:
    """Run "rich" (with events) and run "plain" (the C reader's kind of span)."""
    return [
        rich_span(
            "rich", start_ns=T0, outputs=["s3://b/model@v:1"], scores=[0.5, 0.7], extra=False
        ),
        run_span(
            "predict",
            run_id="plain",
            start_ns=T0,
            inputs=["s3://b/data@v:1"],
            outputs=["s3://b/pred@v:1"],
        ),
    ]


def duplicates() -> list[Span]:
    """Other spans with the same run IDs: earlier (their artifacts would be seen first),
    other inputs and outputs, other summaries, records and checks."""
    return [
        rich_span(
            "rich", start_ns=T0 - 10**9, outputs=["s3://b/model@v:2"], scores=[9.0], extra=True
        ),
        run_span(
            "predict",
            run_id="plain",
            start_ns=T0 - 10**9,
            inputs=["s3://b/data@v:1", "s3://b/extra@v:1"],
            outputs=["s3://b/pred@v:1", "s3://b/pred@v:2"],
        ),
    ]


def neighbour() -> Span:
    """A new run next to the duplicates: it is stored, with all of its rows."""
    return rich_span(
        "new", start_ns=T0 + 10**9, outputs=["s3://b/model@v:3"], scores=[1.0], extra=True
    )


# -- the index, table by table -----------------------------------------------------------
def snapshot(store: Store) -> dict[str, list[str]]:
    """Every table's rows (sorted, as JSON), without the columns that say when."""
    if store.backend == "postgres":
        names = store.query(
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        )
    else:
        names = store.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    tables = sorted(str(r["name"]) for r in names if r["name"] != "schema_migrations")
    assert {"runs", "run_io", "artifacts", "run_outputs", "records", "run_checks"} <= set(tables)
    dump = {}
    for table in tables:
        rows = store.query(f"SELECT * FROM {table}")  # noqa: S608 - names from the catalog
        dump[table] = sorted(
            json.dumps({k: v for k, v in r.items() if k not in SKIP_COLUMNS}, sort_keys=True)
            for r in rows
        )
    return dump


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty indexes (a file, or a database on the session server)."""
    made: list[str] = []

    def make() -> str:
        if request.param == "sqlite":
            made.append(str(tmp_path / f"index-{len(made)}.db"))
        else:
            server: PostgresServer = request.getfixturevalue("postgres_server")
            made.append(server.create_database())
        return made[-1]

    yield make
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        for url in made:
            server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(params=["in-process", "pure-python", "workers"])
def start(
    request: pytest.FixtureRequest, new_db: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], Collector]]:
    """Starts collectors on fresh indexes: decoding in process (the C reader where it can,
    or the pure Python decoder only) or in decode workers."""
    if request.param == "pure-python":
        monkeypatch.setattr(processor, "walk_spans", None)
    running: list[Collector] = []

    def start_one() -> Collector:
        settings = CollectorSettings.resolve(
            db=new_db(),
            grpc_address="127.0.0.1:0",
            http_address="127.0.0.1:0",
            decode_workers=2 if request.param == "workers" else 0,
        )
        running.append(Collector(settings))
        running[-1].start()
        return running[-1]

    yield start_one
    for collector in running:
        collector.stop()


# -- tests -------------------------------------------------------------------------------
def test_a_duplicate_in_a_later_request_leaves_nothing(start: Callable[[], Collector]) -> None:
    service, first = start(), originals()
    assert not send(service, request(first)).HasField("partial_success")
    after_a = snapshot(service.store)
    assert len(after_a["runs"]) == 2 and after_a["run_outputs"] and after_a["records"]

    partial = send(service, request(duplicates())).partial_success
    assert partial.rejected_spans == 2, partial.error_message
    assert snapshot(service.store) == after_a

    # The indexed spans again (an exporter's retry): accepted, and still nothing changes.
    assert not send(service, request(first)).HasField("partial_success")
    assert snapshot(service.store) == after_a


def test_a_duplicate_in_the_same_request_leaves_nothing(start: Callable[[], Collector]) -> None:
    first, again, new = originals(), duplicates(), neighbour()
    mixed = start()
    partial = send(mixed, request([*first, *again, new])).partial_success
    assert partial.rejected_spans == 2, partial.error_message
    alone = start()
    assert not send(alone, request([*first, new])).HasField("partial_success")
    assert snapshot(mixed.store) == snapshot(alone.store)

    # Retries next to a new run: the retried spans write nothing, the new run everything.
    later = rich_span(
        "later", start_ns=T0 - 5 * 10**9, outputs=["s3://b/model@v:1"], scores=[2.0], extra=True
    )
    assert not send(mixed, request([*first, later])).HasField("partial_success")
    assert not send(alone, request([later])).HasField("partial_success")
    assert snapshot(mixed.store) == snapshot(alone.store)


def test_a_duplicate_in_the_same_group_commit_leaves_nothing(new_db: Callable[[], str]) -> None:
    """Two requests committed in one transaction (the writer's group commit)."""
    new = neighbour()
    first = decode_request(request(originals()))
    again = decode_request(request([*duplicates(), new]))
    alone = decode_request(request([new]))
    grouped, reference = open_store(new_db()), open_store(new_db())
    try:
        stored = grouped.ingest_prepared([prepare(b.runs, b.record_chunks) for b in (first, again)])
        assert set(stored) == {"rich", "plain"}
        reference.ingest_prepared([prepare(b.runs, b.record_chunks) for b in (first, alone)])
        assert snapshot(grouped) == snapshot(reference)
    finally:
        grouped.close()
        reference.close()


def test_a_run_span_after_its_start_record_is_no_duplicate(start: Callable[[], Collector]) -> None:
    service = start()
    run = originals()[1]
    record = Span(
        trace_id=run.trace_id,
        span_id=b"\x01" * 8,
        parent_span_id=run.span_id,
        name=semconv.RUN_START_SPAN_NAME,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0,
        attributes=kvs({semconv.RUN_START_RUN_ID: "plain", semconv.RUN_START_COMPONENT: "p"}),
    )
    assert not send(service, request([record])).HasField("partial_success")
    assert len(snapshot(service.store)["run_starts"]) == 1
    assert not send(service, request([run])).HasField("partial_success")
    after = snapshot(service.store)
    assert after["run_starts"] == [] and len(after["runs"]) == 1
    assert send(service, request([duplicates()[1]])).partial_success.rejected_spans == 1
    assert snapshot(service.store) == after


# -- record chunk spans (children of their run span, naming its run ID) ------------------
def chunk_span(run: Span, run_id: str, ids: list[str]) -> Span:
    """A record chunk span of ``run`` for its model output, as ``otel_mltrace.records``
    sends one."""
    return chunk_span_of(run, run_id, {"s3://b/model@v:1": ids}, at_ns=T0)


def test_a_duplicates_chunk_span_in_a_later_request_leaves_nothing(
    start: Callable[[], Collector],
) -> None:
    service, first, again = start(), originals(), duplicates()
    own, foreign = chunk_span(first[0], "rich", ["a1", "a2"]), chunk_span(again[0], "rich", ["b1"])
    assert not send(service, request([own, *first])).HasField("partial_success")
    after_a = snapshot(service.store)
    assert {json.loads(r)["record_id"] for r in after_a["records"]} >= {"a1", "a2"}

    partial = send(service, request([*again, foreign])).partial_success
    assert partial.rejected_spans == 3, partial.error_message
    assert foreign.span_id.hex() in partial.error_message
    assert snapshot(service.store) == after_a
    partial = send(service, request([foreign])).partial_success  # alone, later
    assert partial.rejected_spans == 1 and foreign.span_id.hex() in partial.error_message
    assert snapshot(service.store) == after_a

    # The indexed run's chunk span again (a retry), and a new one of it: both accepted.
    more = chunk_span(first[0], "rich", ["a3"])
    assert not send(service, request([own, more])).HasField("partial_success")
    records = {json.loads(r)["record_id"] for r in snapshot(service.store)["records"]}
    assert {"a3"} <= records and not {"b1"} & records
    assert service.pipeline.stats["spans_rejected"] == 4


def test_a_duplicates_chunk_span_in_the_same_request_leaves_nothing(
    start: Callable[[], Collector],
) -> None:
    """Chunk spans before and after their run spans, in one request."""
    first, again, new = originals(), duplicates(), neighbour()
    own, foreign = chunk_span(first[0], "rich", ["a1"]), chunk_span(again[0], "rich", ["b1"])
    mixed = start()
    partial = send(mixed, request([foreign, own, *first, *again, new])).partial_success
    assert partial.rejected_spans == 3, partial.error_message
    alone = start()
    assert not send(alone, request([own, *first, new])).HasField("partial_success")
    assert snapshot(mixed.store) == snapshot(alone.store)


def test_a_duplicates_chunk_span_in_the_same_group_commit_leaves_nothing(
    new_db: Callable[[], str],
) -> None:
    """The chunk span in one request, the run span it names (indexed) in another."""
    first, again = originals(), duplicates()
    foreign = chunk_span(again[0], "rich", ["b1"])
    a, b = decode_request(request(first)), decode_request(request([foreign, *again]))
    grouped, reference = open_store(new_db()), open_store(new_db())
    try:
        rows = [prepare(x.runs, x.record_chunks) for x in (a, b)]
        stored = grouped.ingest_prepared(rows)
        assert [r.span_id for r in foreign_chunk_rejections(rows[1], stored)] == [
            foreign.span_id.hex()
        ]
        assert foreign_chunk_rejections(rows[0], stored) == []
        reference.ingest_prepared([prepare(a.runs, a.record_chunks)])
        assert snapshot(grouped) == snapshot(reference)
    finally:
        grouped.close()
        reference.close()


def test_a_chunk_span_before_any_span_of_its_run_is_written(
    start: Callable[[], Collector],
) -> None:
    """Undecidable at write time (docs/semantics.md, record-level lineage): no span of the
    run ID is indexed yet, so the chunk is written under it; the SDK's usual order."""
    service, first = start(), originals()
    own = chunk_span(first[0], "rich", ["early"])
    assert not send(service, request([own])).HasField("partial_success")
    assert not send(service, request(first)).HasField("partial_success")
    records = {json.loads(r)["record_id"] for r in snapshot(service.store)["records"]}
    assert "early" in records


def test_the_sdks_chunk_spans_of_a_duplicate_run_leave_nothing(
    spans: InMemorySpanExporter, collector: Collector
) -> None:
    """Two SDK runs with one run ID, each logging records on record chunk spans (sent, as
    the SDK exports them, before their run span), encoded by the official OTLP encoder."""
    sent: list[ExportTraceServiceResponse] = []
    for name in ("a", "b"):
        with Run("predict", run_id="shared") as run:
            out = run.add_output(f"s3://b/pred-{name}.parquet", version="v:1")
            run.log_records(out, [f"{name}-{i}" for i in range(MAX_IDS_PER_CHUNK + 1)])
        got = spans.get_finished_spans()
        assert [s.name for s in got] == [semconv.RECORDS_SPAN_NAME] * 2 + ["predict"]
        req = ExportTraceServiceRequest.FromString(encode_spans(got).SerializeToString())
        sent.append(send(collector, req))
        spans.clear()
    assert not sent[0].HasField("partial_success")
    assert sent[1].partial_success.rejected_spans == 3, sent[1].partial_success.error_message
    found = snapshot(collector.store)
    assert len(found["runs"]) == 1 and len(found["records"]) == MAX_IDS_PER_CHUNK + 1
    assert {json.loads(r)["record_id"][0] for r in found["records"]} == {"a"}
