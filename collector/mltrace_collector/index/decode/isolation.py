"""Request isolation: one client's bad data never fails another client's good request.

The writers commit many requests in one transaction (group commit). When that commit
fails, :func:`commit_each` commits the requests of the group one by one, so that only
the request whose data the store refuses fails; :func:`failure` turns its error into
``Rejected`` (HTTP 400 / gRPC ``INVALID_ARGUMENT``) when the data is the cause.

Duplicate run IDs: the store keeps the first span of a run ID (``ON CONFLICT DO
NOTHING``), and nothing else of a later span either (``store.own_rows``).
:func:`duplicate_rejections` reports each later span with another span ID as an OTLP
partial-success rejection naming both spans; the same span sent again (an exporter's
retry) is not a duplicate, so ingest stays idempotent. A record chunk span (a child of
its run span) whose run ID is indexed for another span than its parent is not stored
either (``store.identity.chunk_owners``); :func:`foreign_chunk_rejections` names it.

Example::

    results = commit_each(store, [rows_a, rows_b])   # one result per batch
    if isinstance(results[1], Exception):
        raise failure(results[1])
    rejections = duplicate_rejections(rows_a, results[0])
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence

from mltrace_collector.index.ingest import Rejected
from mltrace_collector.index.model import DecodedBatch, Rejection
from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.identity import StoredRun, is_foreign_chunk
from mltrace_collector.index.store.ingest_rows import Prepared
from otel_mltrace import semconv

log = logging.getLogger("mltrace_collector.isolation")

MAX_STORE_INT = 2**63 - 1
"""The largest integer an index column holds (SQLite INTEGER, PostgreSQL BIGINT)."""

CommitResult = dict[str, StoredRun] | Exception
"""Per batch: the contested run IDs' stored spans (committed), or why it failed."""


def timestamp_problem(field: str, value: int) -> str | None:
    """Why the span timestamp ``field`` = ``value`` (ns) cannot be stored, or None.

    >>> timestamp_problem("end_time_unix_nano", 2**63) is not None
    True
    """
    if value <= MAX_STORE_INT:
        return None
    return (
        f"{field} is {value}, beyond the largest timestamp the index can store "
        f"({MAX_STORE_INT} ns, in the year 2262): send Unix-epoch nanoseconds"
    )


def is_data_error(exc: BaseException) -> bool:
    """Whether the store refused the data itself (a value out of range, a constraint),
    rather than failing for a reason of its own (disk, connection, lock)."""
    if isinstance(exc, OverflowError | sqlite3.IntegrityError | sqlite3.DataError):
        return True
    try:
        import psycopg
    except ImportError:  # the PostgreSQL extra is not installed: no PostgreSQL errors
        return False
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)


def failure(exc: Exception) -> Exception:
    """What the receiver raises for a request whose commit failed alone: ``Rejected``
    (400 / INVALID_ARGUMENT) when its data is the cause, else the error itself."""
    if is_data_error(exc):
        return Rejected(f"the index cannot store this request's data ({type(exc).__name__}: {exc})")
    return exc


def commit_each(store: Store, batches: Sequence[Prepared]) -> list[CommitResult]:
    """Commit ``batches`` in one transaction; if that fails, each in its own, so that one
    batch the store refuses fails alone. One result per batch, in order."""
    try:
        stored: CommitResult = store.ingest_prepared(batches)
        return [stored] * len(batches)
    except Exception as exc:
        if len(batches) == 1 or not is_data_error(exc):
            # Only data can be guilty alone. A disk, fsync, lock or connection failure fails
            # the whole group: retried one by one, requests whose rows the failed commit
            # already wrote would find them "stored" and be acknowledged although the sync
            # failed, and a locked or lost store would stall the writer once per request.
            log.warning("store commit of %d request(s) failed: %s", len(batches), exc)
            return [exc] * len(batches)
        log.warning("group commit of %d requests failed (%s): one by one", len(batches), exc)
    results: list[CommitResult] = []
    for batch in batches:
        try:
            results.append(store.ingest_prepared([batch]))
        except Exception as exc:
            log.warning("store commit of one request failed: %s", exc)
            results.append(exc)
    return results


def is_duplicate_run(stored: StoredRun, trace_id: str, span_id: str) -> bool:
    """Whether a span (``trace_id``, ``span_id``) with the run ID of ``stored`` is a
    duplicate run: the one place that decides. The same span again is a retry, not a
    duplicate. (Run start records live in their own table, ``run_starts``, so the final
    span of a run never meets its start record here.)"""
    return (stored.trace_id, stored.span_id) != (trace_id, span_id)


def duplicate_rejections(rows: Prepared, stored: Mapping[str, StoredRun]) -> list[Rejection]:
    """The run spans of ``rows`` that were not stored because their run ID is indexed for
    another span (``stored``: what ``Store.ingest_prepared`` returned for the commit)."""
    if not stored:
        return []
    rejections = []
    for row in rows.runs:
        run_id, trace_id, span_id = row[0], row[2], row[3]
        known = stored.get(run_id)
        if known is not None and is_duplicate_run(known, trace_id, span_id):
            rejections.append(
                Rejection(
                    trace_id,
                    span_id,
                    f"{semconv.RUN_ID} {run_id!r} is already indexed for span "
                    f"{known.span_id} (trace {known.trace_id}); this span was not stored: "
                    "give each run its own run ID",
                )
            )
    return rejections


def foreign_chunk_rejections(rows: Prepared, stored: Mapping[str, StoredRun]) -> list[Rejection]:
    """The record chunk spans of ``rows`` that were not stored because their run ID is
    indexed for another span than their parent (``store.identity.chunk_owners``, which
    made the same decision inside the commit): one rejection per span."""
    rejections: dict[tuple[str, str], Rejection] = {}
    for chunk in rows.chunks:
        known = stored.get(chunk.run_id or "")
        if known is None or chunk.trace_id is None or chunk.span_id is None:
            continue
        if is_foreign_chunk(known, chunk):
            parent = chunk.parent_span_id or "none"
            rejections[(chunk.trace_id, chunk.span_id)] = Rejection(
                chunk.trace_id,
                chunk.span_id,
                f"record chunk span names {semconv.RECORDS_RUN_ID} {chunk.run_id!r}, which is "
                f"indexed for span {known.span_id} (trace {known.trace_id}), but its parent "
                f"is span {parent} (trace {chunk.trace_id}); its records were not stored: "
                "send record chunks as children of their run's span, one run ID per run",
            )
    return list(rejections.values())


def reject_unstored(
    batch: DecodedBatch, rows: Prepared, stored: Mapping[str, StoredRun], runs: int
) -> int:
    """After a commit: record in ``batch`` the duplicate run spans and foreign record chunk
    spans of ``rows`` that were not stored; returns ``runs`` less the dropped runs."""
    runs = drop_duplicates(batch, duplicate_rejections(rows, stored), runs)
    foreign = foreign_chunk_rejections(rows, stored)
    batch.rejections.extend(foreign)
    batch.other_spans -= len(foreign)  # counted there when decoded: now rejected instead
    return runs


def drop_duplicates(batch: DecodedBatch, rejections: Sequence[Rejection], runs: int) -> int:
    """Record ``rejections`` in ``batch`` and drop their runs from ``batch.runs`` (observers
    and forwarded links then see only indexed spans); returns ``runs`` less the dropped."""
    if not rejections:
        return runs
    batch.rejections.extend(rejections)
    gone = {(r.trace_id, r.span_id) for r in rejections}
    batch.runs = [run for run in batch.runs if (run.trace_id, run.span_id) not in gone]
    return runs - len(rejections)
