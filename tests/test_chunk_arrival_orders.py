"""The records of a run ID are those of the span it is indexed for, in every arrival order.

Two spans A and B share run ID R (a duplicate run); each sends its records on a record
chunk span (a child of its run span). A chunk whose run ID has no indexed span yet is
written (the index cannot know its owner then), and deleted when another span is indexed
for R (``store.record_owners``, migration 0007). So for each of the 24 orders of {chunk of
A, span A, chunk of B, span B}, committed one by one, on SQLite and PostgreSQL: R is
indexed for the first run span to arrive, the records and record sets of R are exactly
that span's (a record both spans sent included), the other run span is rejected, the
other chunk span too when it arrives after the indexed span, and sending all four again
(an exporter's retry) changes nothing. On PostgreSQL, chunk B and span A committed by two
writers at the same time leave none of B's records either.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
from contextlib import closing
from typing import Any

import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from mltrace_collector.index.decode.isolation import duplicate_rejections, foreign_chunk_rejections
from mltrace_collector.index.decode.processor import decode_request
from mltrace_collector.index.store import open_store, writes
from mltrace_collector.index.store.base import Store, migrations, split_statements
from mltrace_collector.index.store.extras import record_sets_of
from mltrace_collector.index.store.ingest_rows import Prepared, prepare
from mltrace_collector.index.store.record_owners import UNKNOWN_OWNER
from mltrace_collector.service.collector import Collector, CollectorSettings
from tests.backends import target
from tests.otlp_builders import chunk_span, request, run_span, send_http

__all__ = ["target"]  # fixture: a fresh index on SQLite and on PostgreSQL

T0 = 1_700_000_000_000_000_000
MODEL, OTHER = "s3://b/model@v:1", "s3://b/other@v:1"
# What each span's chunk span carries, by output: a record both send ("shared"), and
# B's records for an output A has none for (its record set must go with its rows).
RECORDS = {
    "A": {MODEL: ["a1", "a2", "shared"]},
    "B": {MODEL: ["b1", "shared"], OTHER: ["b2"]},
}


def spans_of(run_id: str) -> dict[str, Span]:
    """Run spans "A", "B" with run ID ``run_id`` (their own traces), and their chunk spans."""
    spans: dict[str, Span] = {}
    for name in ("A", "B"):
        run = run_span("train", run_id=run_id, start_ns=T0, outputs=list(RECORDS[name]))
        spans[f"span {name}"] = run
        spans[f"chunk {name}"] = chunk_span(run, run_id, RECORDS[name])
    return spans


def records_of(store: Store, run_id: str) -> set[tuple[str, str]]:
    """(output, record ID) of every record row of ``run_id``'s record sets."""
    rows = store.query(
        "SELECT s.output_artifact_id, r.record_id FROM records r "
        "JOIN record_sets s ON s.set_id = r.set_id WHERE s.run_id = ?",
        (run_id,),
    )
    return {(r["output_artifact_id"], r["record_id"]) for r in rows}


def expected(name: str) -> set[tuple[str, str]]:
    return {(out, rid) for out, ids in RECORDS[name].items() for rid in ids}


def commit(store: Store, span: Span) -> int:
    """Commit one span as the collector does; returns how many spans it rejected."""
    batch = decode_request(request([span]))
    rows = prepare(batch.runs, batch.record_chunks)
    stored = store.ingest_prepared([rows])
    return len(duplicate_rejections(rows, stored)) + len(foreign_chunk_rejections(rows, stored))


def dump(store: Store, table: str) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in store.query(f"SELECT * FROM {table}"))  # noqa: S608 - ours


ORDERS = list(itertools.permutations(["chunk A", "span A", "chunk B", "span B"]))


def test_every_arrival_order_keeps_the_indexed_spans_records(target: str) -> None:
    store = open_store(target)
    try:
        for n, order in enumerate(ORDERS):
            run_id = f"R{n:02d}"
            spans = spans_of(run_id)
            rejected = [commit(store, spans[name]) for name in order]

            winner = next(name for name in order if name.startswith("span"))[-1]
            loser = "B" if winner == "A" else "A"
            got = store.get_run(run_id)
            assert got is not None and got["span_id"] == spans[f"span {winner}"].span_id.hex()
            assert records_of(store, run_id) == expected(winner), order
            outputs = {r["output_artifact_id"] for r in store.query(
                "SELECT output_artifact_id FROM record_sets WHERE run_id = ?", (run_id,)
            )}  # fmt: skip
            assert outputs == set(RECORDS[winner]), order
            assert [(r["run_id"], r["output_artifact_id"]) for r in record_sets_of(
                store, "shared") if r["run_id"] == run_id] == [(run_id, MODEL)]  # fmt: skip
            # Rejected: the loser's run span, and its chunk span if it came after the
            # winner's run span (else it was written, then deleted when that was indexed).
            late = order.index(f"chunk {loser}") > order.index(f"span {winner}")
            want = {f"span {loser}": 1, f"chunk {loser}": int(late)}
            assert dict(zip(order, rejected, strict=True)) == {
                name: want.get(name, 0) for name in order
            }, order

        before = {table: dump(store, table) for table in ("runs", "records", "record_sets")}
        for n, order in enumerate(ORDERS):  # everything again (retries): no change
            spans = spans_of(f"R{n:02d}")
            for name in order:
                commit(store, spans[name])
        assert {table: dump(store, table) for table in before} == before
    finally:
        store.close()


def old_index(target: str, upto: int) -> None:
    """Make ``target`` an index of schema version ``upto``, as an older release left it."""
    statements: list[tuple[str, tuple[object, ...]]] = [
        (statement, ())
        for number, sql in migrations()
        if number <= upto
        for statement in split_statements(sql)
    ]
    statements.append((
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns BIGINT NOT NULL)",
        (),
    ))  # fmt: skip
    statements += [
        ("INSERT INTO schema_migrations VALUES (?, 0)", (n,)) for n, _ in migrations() if n <= upto
    ]
    # An old writer's rows: run "old"'s records (a chunk span written before its run span).
    statements.append(("INSERT INTO record_sets VALUES (7, 'old', ?)", (MODEL,)))
    statements += [("INSERT INTO records VALUES (?, 7, '')", (rid,)) for rid in ("o1", "o2")]
    if target.startswith("postgresql"):
        with psycopg.connect(target, autocommit=True) as pg:
            for statement, params in statements:
                pg.execute(statement.replace("?", "%s").encode(), params)
        return
    with closing(sqlite3.connect(target)) as lite, lite:
        for statement, params in statements:
            lite.execute(statement, params)


def test_records_written_before_migration_7_are_kept(target: str) -> None:
    """Migration 0007 keeps every record row, of unknown owner, and indexing a span for
    their run ID then deletes none of them (they are treated as before)."""
    old_index(target, 6)
    store = open_store(target)
    try:
        assert store.query("SELECT MAX(version) AS v FROM schema_migrations") == [{"v": 7}]
        rows = store.query("SELECT record_id, set_id, owner_id FROM records ORDER BY record_id")
        assert rows == [
            {"record_id": rid, "set_id": 7, "owner_id": UNKNOWN_OWNER} for rid in ("o1", "o2")
        ]
        spans = spans_of("old")
        assert commit(store, spans["chunk B"]) == 0  # B's, written: its owner is unknown
        assert commit(store, spans["span A"]) == 0  # deletes B's rows, keeps the old ones
        assert records_of(store, "old") == {(MODEL, "o1"), (MODEL, "o2")}
        sets = store.query("SELECT output_artifact_id FROM record_sets WHERE run_id = 'old'")
        assert sets == [{"output_artifact_id": MODEL}]  # B's other output: gone, empty
    finally:
        store.close()


def send(service: Collector, span: Span) -> ExportTraceServiceResponse:
    return send_http(service, request([span]))


def test_the_collector_deletes_a_duplicates_early_chunk_and_says_so(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Over OTLP/HTTP: B's chunk span is acknowledged (its owner is unknown then), deleted
    when A's run span is indexed (logged, naming the run ID, the span and the count), and
    B's run span is rejected by partial success."""
    settings = CollectorSettings.resolve(
        db=target, grpc_address="127.0.0.1:0", http_address="127.0.0.1:0", decode_workers=0
    )
    service = Collector(settings)
    service.start()
    try:
        spans = spans_of("shared-id")
        caplog.set_level(logging.WARNING, "mltrace_collector.index.store.record_owners")
        for name in ("chunk B", "chunk A", "span A"):
            assert not send(service, spans[name]).HasField("partial_success"), name
        partial = send(service, spans["span B"]).partial_success
        assert partial.rejected_spans == 1, partial.error_message
        assert records_of(service.store, "shared-id") == expected("A")
        said = caplog.text
        assert "'shared-id'" in said and spans["span A"].span_id.hex() in said
        assert "deleted 2 record(s) of output s3://b/model@v:1" in said
        assert "deleted 1 record(s) of output s3://b/other@v:1" in said
    finally:
        service.stop()


# -- concurrent writers (PostgreSQL: READ COMMITTED) ------------------------------------
def prepared(span: Span) -> Prepared:
    batch = decode_request(request([span]))
    return prepare(batch.runs, batch.record_chunks)


def paused_inside(
    monkeypatch: pytest.MonkeyPatch, name: str, inside: threading.Event, go: threading.Event
) -> None:
    """Make the next commit that calls ``writes.<name>`` wait, after it, until ``go``:
    its transaction is then open, with its rows written, while another one commits."""
    real = getattr(writes, name)

    def then_wait(*args: Any) -> Any:
        result = real(*args)
        inside.set()
        assert go.wait(30), "the other commit did not come"
        return result

    monkeypatch.setattr(writes, name, then_wait)


@pytest.mark.parametrize("last", ["chunk B", "span A"])
def test_concurrent_commits_leave_no_foreign_records(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, last: str
) -> None:
    """Two writers (replicas, or decode workers) commit chunk B and span A at the same
    time: neither transaction sees the other's rows, so the in-transaction cleanup cannot
    delete B's rows. Whichever commits last re-checks after its commit and deletes them."""
    first_store, other_store = open_store(postgres_url), open_store(postgres_url)
    try:
        spans = spans_of("R")
        inside, go = threading.Event(), threading.Event()
        # The one to commit last waits inside its transaction (after writing B's chunk /
        # after A's in-transaction cleanup) while the other commits.
        paused_inside(
            monkeypatch, "ingest_extras" if last == "chunk B" else "drop_foreign_records",
            inside, go,
        )  # fmt: skip
        errors: list[BaseException] = []

        def commit_last() -> None:
            try:
                first_store.ingest_prepared([prepared(spans[last])])
            except BaseException as exc:  # re-raised by the test below
                errors.append(exc)

        thread = threading.Thread(target=commit_last)
        thread.start()
        assert inside.wait(30)
        monkeypatch.undo()  # the other commit runs unpaused
        other = "span A" if last == "chunk B" else "chunk B"
        other_store.ingest_prepared([prepared(spans[other])])
        go.set()
        thread.join(30)
        assert not errors and not thread.is_alive()
        assert records_of(first_store, "R") == set(), records_of(first_store, "R")
        assert first_store.query("SELECT run_id FROM record_sets") == []
        commit(first_store, spans["chunk A"])
        assert records_of(first_store, "R") == expected("A")
    finally:
        first_store.close()
        other_store.close()
