"""Ingest rows: the rows and JSON text of decoded runs, made in any thread.

The first of the three ingest stages (``writes`` has the other two, the write plan and
its statements): :func:`prepare` is pure (no I/O, no store), so an ingest worker or a
receiver thread runs it before a batch ever waits for the store's write lock; the C
reader (``decode/fast_rows.py``) builds the same rows with :func:`dumps_sorted` and
``_split_artifact_id``. :func:`_merge` joins the prepared batches of one group commit.

Example::

    prepared = prepare(runs, chunks)  # any thread
    plan = writes.plan_write([prepared], store._known, store._sql)
"""

from __future__ import annotations

import functools
import json
from _json import make_encoder
from collections.abc import Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

from mltrace_collector.index.model import RecordChunk, RunRecord, RunStart, split_artifact_id
from mltrace_collector.index.store.run_starts import start_rows


def _unserializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.JSONEncoder's own C encoder, built once: (markers, default, encoder, indent,
# key separator, item separator, sort_keys, skipkeys, allow_nan).
_c_dumps_sorted = make_encoder(
    None, _unserializable, encode_basestring_ascii, None, ": ", ", ", True, False, True
)
_c_dumps = make_encoder(
    None, _unserializable, encode_basestring_ascii, None, ": ", ", ", False, False, True
)


def dumps_sorted(value: Any) -> str:
    """``json.dumps(value, sort_keys=True)``, byte for byte, without building an encoder
    per call (the C encoder is made once; decoded data is acyclic JSON-safe values)."""
    return "".join(_c_dumps_sorted(value, 0))


def dumps(value: Any) -> str:
    """``json.dumps(value)``, byte for byte (see :func:`dumps_sorted`)."""
    return "".join(_c_dumps(value, 0))


# Artifact IDs repeat across the runs of a batch (shared inputs): split each once.
_split_artifact_id = functools.lru_cache(maxsize=1 << 16)(split_artifact_id)
_EMPTY_LIST, _EMPTY_MAP = json.dumps([]), json.dumps({})


@dataclass
class Prepared:
    """The rows of some runs (and loose record chunks), ready for :func:`write`."""

    runs: list[tuple[Any, ...]]
    """``runs`` rows without the trailing ``ingested_ns``."""
    io: dict[str, list[tuple[Any, ...]]]
    """``run_io`` rows by run ID (of the first run with that ID: the one that is stored)."""
    artifacts: dict[str, tuple[str, str | None, int]]
    outputs: list[tuple[Any, ...]]
    records: Sequence[RunRecord]
    chunks: Sequence[RecordChunk]
    starts: list[tuple[Any, ...]] = field(default_factory=list)
    """``run_starts`` rows of run start records (``mltrace_collector.index.store.run_starts``)."""


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.run_id,
        run.component,
        run.trace_id,
        run.span_id,
        run.parent_span_id,
        run.service,
        run.start_ns,
        run.end_ns,
        run.status,
        run.status_message,
        run.code_revision,
        run.code_repository,
        run.code_function,
        run.code_file,
        dumps_sorted(run.params) if run.params else _EMPTY_MAP,
        dumps_sorted(run.metrics) if run.metrics else _EMPTY_MAP,
        dumps(list(run.tags)) if run.tags else _EMPTY_LIST,
        dumps_sorted(run.attributes),
        len(run.inputs),
        len(run.outputs),
    )


def prepare(
    runs: Sequence[RunRecord], chunks: Sequence[RecordChunk] = (), starts: Sequence[RunStart] = ()
) -> Prepared:
    """Rows and JSON text of ``runs`` (and of run start records); pure (no I/O), so any
    thread may call it."""
    io_rows: dict[str, list[tuple[Any, ...]]] = {}
    artifacts: dict[str, tuple[str, str | None, int]] = {}
    output_rows: list[tuple[Any, ...]] = []
    split = _split_artifact_id
    for run in runs:
        run_id = run.run_id
        if run_id in io_rows:  # the same run twice in one request: the first one is stored
            continue
        rows = io_rows[run_id] = []
        for direction, ids, seen in (
            ("in", run.inputs, run.start_ns),
            ("out", run.outputs, run.end_ns),
        ):
            for aid in ids:
                uri, version = split(aid)
                rows.append((run_id, direction, aid, uri, 0 if version is None else 1))
                known = artifacts.get(aid)
                if known is None or seen < known[2]:
                    artifacts[aid] = (uri, version, seen)
        for out in run.output_summaries:
            output_rows.append(
                (run_id, out.name, out.kind, out.count, out.null_count, out.invalid_count,
                 out.sum, out.min, out.max, dumps_sorted(out.summary))
            )  # fmt: skip
    rows = [_run_row(r) for r in runs]
    return Prepared(rows, io_rows, artifacts, output_rows, runs, chunks, start_rows(starts))


def _merge(batches: Sequence[Prepared]) -> Prepared:
    if len(batches) == 1:
        return batches[0]
    artifacts = dict(batches[0].artifacts)
    io = dict(batches[0].io)
    outputs = list(batches[0].outputs)
    for batch in batches[1:]:
        again = io.keys() & batch.io.keys()  # run IDs of an earlier batch: rare
        outputs.extend(row for row in batch.outputs if row[0] not in again)
        for run_id, rows in batch.io.items():
            io.setdefault(run_id, rows)
        for aid, row in batch.artifacts.items():
            known = artifacts.get(aid)
            if known is None or row[2] < known[2]:
                artifacts[aid] = row
    return Prepared(
        [row for b in batches for row in b.runs],
        io,
        artifacts,
        outputs,  # of the first span of each run ID, as io (``own_rows``)
        [run for b in batches for run in b.records],
        [chunk for b in batches for chunk in b.chunks],
        [row for b in batches for row in b.starts],
    )
