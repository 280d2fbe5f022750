"""The order stitching respects, so that the lineage graph is acyclic by construction.

Runs are ordered by ``(start, run ID)``. A writer ``W`` may be the producer of a read by
run ``R`` only if ``W`` comes before ``R`` in that order (docs/semantics.md, "Stitching"):
along every stitch edge ``(start, run ID)`` strictly increases, so no chain of producers
leads back to where it started — whatever the times (two zero-length runs at one
nanosecond, clock skew between hosts) — and a run is never its own producer. Within that,
the usual rules choose: the writer that ended last by ``R``'s start, or, for a versioned
ID none of them had finished writing (clock skew), the one that ended first.

Both SQL dialects use :data:`BEFORE_READER` with the parameters of
:func:`reader_bounds`; Python code (writers of one versioned ID fetched in one batch) uses
:func:`comes_before`. Without a start (``trace X`` of an artifact alone) every writer
qualifies; without a reader, every writer that started by the start.

Run IDs compare code point by code point everywhere: Python's ``<``, SQLite's ``BINARY``,
and on PostgreSQL ``COLLATE "C"`` (:func:`byte_order`) — a database's own collation may be
linguistic (``en_US.utf8``: ``a`` before ``B``), and SQL and Python disagreeing on which
of two runs at one instant came first let them stitch to each other.

Example::

    comes_before(writer["start_ns"], writer["run_id"], 1_000, "run-b")   # bool
    sql = f"... WHERE p.end_ns <= ? AND {BEFORE_READER.format(p='p', c=byte_order(backend))} ..."
    params = [..., *reader_bounds(1_000, "run-b")]
"""

from __future__ import annotations

NO_BOUND = 2**62
"""A time after every run (no bound)."""

BEFORE_READER = "({p}.start_ns < ? OR ({p}.start_ns = ? AND {p}.run_id{c} < ?))"
"""Writer alias ``{p}`` comes before the reader; parameters from :func:`reader_bounds`
after the end bound; ``{c}``: :func:`byte_order`."""


WRITER_BEFORE_READER = (
    "({p}.start_ns < {r}.start_ns OR "
    "({p}.start_ns = {r}.start_ns AND {p}.run_id{c} < {r}.run_id{c}))"
)
"""Writer alias ``{p}`` comes before reader alias ``{r}`` (both ``runs`` rows): the same
order as :data:`BEFORE_READER`, for a join over many readers at once (component edges)."""


def byte_order(backend: str) -> str:
    """What follows a run ID in SQL so that it compares as Python's ``<`` does: ``COLLATE
    "C"`` on PostgreSQL (``backend``: ``Store.backend``), nothing on SQLite (``BINARY``)."""
    return ' COLLATE "C"' if backend == "postgres" else ""


def reader_bounds(start_ns: int | None, reader: str | None) -> tuple[int, int, int, str]:
    """Parameters ``(end bound, start bound, start bound, reader ID)`` for
    ``{p}.end_ns <= ? AND`` :data:`BEFORE_READER`: ended by ``start_ns`` and before
    ``(start_ns, reader)``; without a reader, started by ``start_ns`` (any ID)."""
    if start_ns is None:
        return NO_BOUND, NO_BOUND, NO_BOUND, ""
    if reader is None:
        return start_ns, start_ns + 1, start_ns, ""
    return start_ns, start_ns, start_ns, reader


def comes_before(start_ns: int, run_id: str, reader_start: int | None, reader: str | None) -> bool:
    """Whether a writer that started at ``start_ns`` may produce what ``reader`` (started at
    ``reader_start``) read: ``(start_ns, run_id) < (reader_start, reader)``."""
    if reader_start is None:
        return True
    if reader is None:
        return start_ns <= reader_start
    return (start_ns, run_id) < (reader_start, reader)
