"""Run start records: runs that began and have not ended — ``running`` or ``abandoned``.

The SDK sends a start record (``semconv.RUN_START_SPAN_NAME``) when a run starts, so that
a process killed by SIGKILL or the OOM killer still leaves its run in the index. Start
records live in ``run_starts`` (migration 0006), apart from ``runs``: the run's own span is
written exactly as any other and supersedes its start record whatever the arrival order:

* start record, then run span: the run span's commit deletes the start row (both
  committed at the same time on PostgreSQL: the one committing last deletes it after its
  commit, :func:`purge_superseded`);
* run span, then start record (or a start record retried late): the insert is skipped
  because the run is stored (and readers skip a start row whose run is stored anyway,
  which covers two PostgreSQL transactions committing both at once);
* a start record retried: ``ON CONFLICT (run_id) DO NOTHING``.

A start row is ``running`` until it is ``MLTRACE_ABANDON_AFTER`` seconds old, then
``abandoned``: derived at query time (one rule, in Python, for SQLite and PostgreSQL).

Example::

    open_run_summaries(store, component="train", abandon_after_s=3600)
    # -> [{"run_id": ..., "status": "running", "end": None, "duration_s": 12.5, ...}]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mltrace_collector.index.model import RunStart
from otel_mltrace import semconv
from otel_mltrace.config import _positive_seconds, resolve

if TYPE_CHECKING:
    from mltrace_collector.index.store.cursor import Cursor, Row
    from mltrace_collector.index.store.cursor import StoreAccess as Store

RUNNING, ABANDONED = "running", "abandoned"
OPEN_STATUSES = (RUNNING, ABANDONED)
_COLUMNS = "run_id, component, trace_id, span_id, service, parent_run_id, start_ns"
_INSERT = (
    f"INSERT INTO run_starts ({_COLUMNS}, ingested_ns) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = ?) "
    "ON CONFLICT (run_id) DO NOTHING"
)
_OPEN = "NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = s.run_id)"
_DELETE_CHUNK = 500


def is_start_record(attrs: Mapping[str, Any]) -> bool:
    return semconv.RUN_START_RUN_ID in attrs and semconv.COMPONENT not in attrs


def decode_start(
    attrs: Mapping[str, Any], parent_span_id: bytes, start_ns: int, trace_id: bytes,
    resource: Mapping[str, Any],
) -> RunStart:  # fmt: skip
    """The ``RunStart`` of a start record span; ``SpanRejected`` naming a bad attribute."""
    from mltrace_collector.index.decode.span_checks import (
        MAX_COMPONENT_LENGTH,
        MAX_RUN_ID_LENGTH,
        SpanRejected,
        _string,
    )

    run_id = _string(attrs, semconv.RUN_START_RUN_ID, MAX_RUN_ID_LENGTH)
    component = _string(attrs, semconv.RUN_START_COMPONENT, MAX_COMPONENT_LENGTH)
    if run_id is None or component is None:
        raise SpanRejected(
            f"a {semconv.RUN_START_SPAN_NAME} span needs both {semconv.RUN_START_RUN_ID} "
            f"and {semconv.RUN_START_COMPONENT} as non-empty strings"
        )
    if len(trace_id) != 16 or len(parent_span_id) != 8:
        raise SpanRejected(
            f"a {semconv.RUN_START_SPAN_NAME} span must have a 16-byte trace_id and the "
            "run span (8-byte span ID) as its parent"
        )
    parent = attrs.get(semconv.PARENT_RUN_ID)
    service = attrs.get(semconv.SERVICE_NAME, resource.get(semconv.SERVICE_NAME))
    return RunStart(
        run_id=run_id,
        component=component,
        trace_id=trace_id.hex(),
        span_id=parent_span_id.hex(),
        service=service if isinstance(service, str) else None,
        start_ns=start_ns,
        parent_run_id=parent if isinstance(parent, str) and parent else None,
    )


def start_rows(starts: Sequence[RunStart]) -> list[tuple[Any, ...]]:
    """``run_starts`` rows (without ``ingested_ns``), one per run ID."""
    rows: dict[str, tuple[Any, ...]] = {}
    for s in starts:
        rows.setdefault(
            s.run_id,
            (s.run_id, s.component, s.trace_id, s.span_id, s.service, s.parent_run_id,
             s.start_ns),
        )  # fmt: skip
    return list(rows.values())


def write_starts(
    sql: Callable[[str], str],
    cur: Cursor,
    rows: Sequence[tuple[Any, ...]],
    run_ids: Sequence[str],
    now: int,
) -> None:
    """Inside the ingest transaction, after the runs: store new start records of runs not
    stored, then drop the start rows of the runs of this commit (``run_ids``)."""
    if rows:
        cur.executemany(sql(_INSERT), [(*row, now, row[0]) for row in sorted(rows)])
    if not run_ids:
        return
    cur.execute("SELECT run_id FROM run_starts LIMIT 1")
    if not cur.fetchall():  # nothing announced (the common case without start records)
        return
    for i in range(0, len(run_ids), _DELETE_CHUNK):
        chunk = list(run_ids[i : i + _DELETE_CHUNK])
        marks = ", ".join("?" * len(chunk))
        cur.execute(sql(f"DELETE FROM run_starts WHERE run_id IN ({marks})"), chunk)


def purge_superseded(sql: Callable[[str], str], cur: Cursor, run_ids: Sequence[str]) -> int:
    """Delete the start rows of ``run_ids`` whose run is stored; returns how many.

    After a commit, in a transaction of its own, where writers commit concurrently
    (PostgreSQL, READ COMMITTED): a start record and its run span committed at the same
    time each miss the other's row (the insert's ``NOT EXISTS``, :func:`write_starts`'
    delete), which leaves a superseded start row. Readers skip it (``_OPEN``), but nothing
    would ever delete it. Whichever of the two commits last sees the other's row here."""
    if not run_ids:
        return 0
    cur.execute("SELECT run_id FROM run_starts LIMIT 1")
    if not cur.fetchall():  # nothing announced (the common case without start records)
        return 0
    gone = 0
    ids = sorted(set(run_ids))  # key order: no deadlock between replicas
    for i in range(0, len(ids), _DELETE_CHUNK):
        chunk = ids[i : i + _DELETE_CHUNK]
        marks = ", ".join("?" * len(chunk))
        cur.execute(
            sql(
                f"DELETE FROM run_starts WHERE run_id IN ({marks}) "
                "AND EXISTS (SELECT 1 FROM runs r WHERE r.run_id = run_starts.run_id)"
            ),
            chunk,
        )
        gone += max(cur.rowcount, 0)
    return gone


# -- reads -----------------------------------------------------------------------------------
def abandon_after_s(explicit: float | None = None) -> float:
    """``MLTRACE_ABANDON_AFTER`` (seconds > 0), or ``explicit``; a ``ValueError`` naming
    the variable and the bad value otherwise."""
    value = resolve("abandon_after", explicit)
    if explicit is not None:
        value = _positive_seconds(str(explicit))
    return float(value)


def summarize(row: Row, abandon_after: float, now_ns: int) -> dict[str, Any]:
    """A start row in the form of ``lineage_walk.run_summary`` (no end; the status and
    ``duration_s``, the time since it started, derived at ``now_ns``)."""
    from mltrace_collector.index.queries.lineage_walk import iso  # (lineage_walk imports the store)

    age_s = max(0, now_ns - int(row["start_ns"])) / 1e9
    return {
        "run_id": row["run_id"],
        "component": row["component"],
        "status": ABANDONED if age_s > abandon_after else RUNNING,
        "start": iso(row["start_ns"]),
        "end": None,
        "start_ns": row["start_ns"],
        "end_ns": None,
        "duration_s": round(age_s, 6),
        "code_revision": None,
        "service": row.get("service"),
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
    }


def open_run_summaries(
    store: Store,
    component: str | None = None,
    *,
    since_ns: int = 0,
    until_ns: int = 2**62,
    limit: int = 50,
    abandon_after: float | None = None,
    now_ns: int | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Runs started and not ended (of ``component``, or all; only ``running`` or only
    ``abandoned`` ones with ``status``), newest first."""
    after = abandon_after_s(abandon_after)
    now = time.time_ns() if now_ns is None else now_ns
    where = [_OPEN, "s.start_ns >= ?", "s.start_ns <= ?"]
    params: list[Any] = [since_ns, until_ns]
    if component is not None:
        where.append("s.component = ?")
        params.append(component)
    if status is not None:  # in SQL, before the LIMIT: the same cut summarize() makes
        where.append("s.start_ns < ?" if status == ABANDONED else "s.start_ns >= ?")
        params.append(now - int(after * 1e9))
    rows = store.query(
        f"SELECT {_COLUMNS} FROM run_starts s WHERE {' AND '.join(where)} "
        "ORDER BY s.start_ns DESC, s.run_id DESC LIMIT ?",
        (*params, limit),
    )
    return [summarize(r, after, now) for r in rows]


def find_open_run(store: Store, ident: str, abandon_after: float | None = None) -> Row | None:
    """The open run with ID ``ident`` (or the one whose ID starts with it, if unique):
    its summary plus ``parent_run_id``; None when there is none."""
    rows = store.query(
        f"SELECT {_COLUMNS} FROM run_starts s WHERE s.run_id = ? AND {_OPEN}", (ident,)
    )
    if not rows and len(ident) >= 6:
        rows = store.query(
            f"SELECT {_COLUMNS} FROM run_starts s WHERE s.run_id >= ? AND s.run_id < ? "
            f"AND substr(s.run_id, 1, ?) = ? AND {_OPEN} LIMIT 2",
            (ident, ident + "\U0010ffff", len(ident), ident),
        )
    if len(rows) != 1:
        return None
    summary = summarize(rows[0], abandon_after_s(abandon_after), time.time_ns())
    return {**summary, "parent_run_id": rows[0]["parent_run_id"]}


def merge_newest(
    done: list[dict[str, Any]], started: list[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """Ended and open run summaries together, newest first (as ``history`` orders them)."""
    if not started:
        return done
    merged = sorted([*done, *started], key=lambda r: (r["start_ns"], r["run_id"]), reverse=True)
    return merged[:limit]


def inspect_open(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``LineageQueries.inspect`` of an open run: what its start record told."""
    status = summary["status"]
    message = (
        f"started {summary['duration_s']:.0f}s ago and never ended (the process was killed?)"
        if status == ABANDONED
        else "still running (or killed less than MLTRACE_ABANDON_AFTER ago)"
    )
    return {
        **summary,
        "parent_span_id": None,
        "parent_run_id": summary.get("parent_run_id"),
        "status_message": message,
        "code_repository": None,
        "code_function": None,
        "code_file": None,
        "params": {},
        "metrics": {},
        "tags": [],
        "inputs": [],
        "outputs": [],
        "output_summaries": [],
        "checks": [],
        "attributes": {},
    }


def open_counts(store: Store, abandon_after: float | None = None) -> dict[tuple[str, str], int]:
    """``{(component, status): n}`` of open runs, ``status`` running or abandoned."""
    cutoff = time.time_ns() - int(abandon_after_s(abandon_after) * 1e9)
    rows = store.query(
        "SELECT s.component, CASE WHEN s.start_ns < ? THEN 'abandoned' ELSE 'running' END "
        f"AS status, COUNT(*) AS n FROM run_starts s WHERE {_OPEN} GROUP BY 1, 2",
        (cutoff,),
    )
    return {(str(r["component"]), str(r["status"])): int(r["n"]) for r in rows}
