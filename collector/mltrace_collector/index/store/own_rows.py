"""The rows a commit writes when some of its run spans were not inserted.

A run ID is stored for the first span that brings it (``INSERT ... ON CONFLICT DO
NOTHING``); another span with that ID is rejected (``isolation.duplicate_rejections``).
Everything else a run span carries (its ``run_io`` rows, the artifacts it names and their
``first_seen_ns``, output summaries, record chunks, checks and the flags they raise) is
then written for the inserted span only, so that a rejected span leaves nothing of itself
in the index. A span stored before (an exporter's retry) writes nothing either: its rows
were committed with its run, in one transaction.

The common commit (every run new, each run ID once) needs none of this:
``writes.write_plan`` runs its prebuilt statements and calls :func:`own_rows` only when
``identity.contested_ids`` is not empty.

Example::

    rows = own_rows(plan.batch, plan.runs, inserted)  # inserted: IDs the INSERT wrote
    rows.io, rows.artifacts, rows.outputs, rows.records
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from mltrace_collector.index.model import RunRecord, split_artifact_id


class Prepared(Protocol):
    """What :func:`own_rows` reads of ``ingest_rows.Prepared`` (typed here: writes imports us)."""

    @property
    def io(self) -> Mapping[str, Sequence[tuple[Any, ...]]]: ...
    @property
    def outputs(self) -> Sequence[tuple[Any, ...]]: ...
    @property
    def records(self) -> Sequence[RunRecord]: ...


class OwnRows(NamedTuple):
    """What to write besides the ``runs`` rows: of the inserted spans, and nothing else."""

    io: list[tuple[Any, ...]]
    artifacts: list[tuple[Any, ...]]
    """``(artifact_id, uri, version, first_seen_ns)``, by artifact ID (key order)."""
    outputs: list[tuple[Any, ...]]
    records: list[RunRecord]
    """Runs whose record chunks and checks are written (one per inserted run ID)."""


def own_rows(batch: Prepared, runs: Sequence[tuple[Any, ...]], inserted: Sequence[str]) -> OwnRows:
    """The rows of the spans inserted as ``inserted`` (run IDs) from ``batch``, whose
    ``runs`` rows (sorted by run ID, stably) were written in that order.

    The multi-row insert keeps the first row of a run ID, and ``batch`` holds the I/O rows
    and output summaries of that same first span (``ingest_rows.prepare`` and ``ingest_rows._merge``
    keep the first): a later span with the ID contributes nothing, not even an earlier
    ``first_seen_ns`` of an artifact it names. Record chunks and checks travel on
    ``batch.records``, which holds every span: they are matched by (trace, span) ID.
    """
    first: dict[str, tuple[Any, ...]] = {}
    for row in runs:
        first.setdefault(row[0], row)
    ids = list(dict.fromkeys(inserted))
    io = [row for run_id in ids for row in batch.io.get(run_id, ())]
    seen: dict[str, tuple[str, str | None, int]] = {}
    for run_id, direction, aid, uri, _ in io:
        run = first[run_id]
        at = run[6] if direction == "in" else run[7]  # start_ns, end_ns: as prepare does
        known = seen.get(aid)
        if known is None or at < known[2]:
            seen[aid] = (uri, split_artifact_id(aid)[1], at)
    spans = {run_id: (first[run_id][2], first[run_id][3]) for run_id in ids}
    records: list[RunRecord] = []
    for record in batch.records:
        if spans.get(record.run_id) == (record.trace_id, record.span_id):
            del spans[record.run_id]  # an identical copy in the same request: once
            records.append(record)
    wanted = set(ids)
    return OwnRows(
        io,
        [(aid, *seen[aid]) for aid in sorted(seen)],
        sorted((row for row in batch.outputs if row[0] in wanted), key=lambda r: (r[0], r[1])),
        records,
    )
