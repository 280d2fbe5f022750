"""Store rows straight from the wire for plain run spans (``_otlp_fast.prepare_plain``).

``processor._run_record`` + ``ingest_rows.prepare`` cost ~45 µs of Python per run span; the C
extension builds the same rows for the common span (a component run with simple, finite
attributes and no events) and hands every other span back by its index. Those are decoded
and prepared here with the processor's own code, and both parts merged into one
``Prepared`` exactly as ``ingest_rows.prepare`` would have built it (tests/test_otlp_fast_rows.py
compares the two paths).

Example::

    got = decode_rows(request, raw)  # None: use decode_request + prepare
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mltrace_collector.index.decode import processor
from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.index.store import ingest_rows
from mltrace_collector.index.store.ingest_rows import Prepared

if TYPE_CHECKING:
    from mltrace_collector.index.decode._otlp_fast import RunRows

PreparePlain = Callable[
    [bytes, Callable[[Any], str], Callable[[str], tuple[str, str | None]]],
    "tuple[list[RunRows], list[tuple[int, int, int]], int] | None",
]
prepare_plain: PreparePlain | None
try:  # the optional C extension (_otlp_fast*.c); without it, callers take the pure path
    from mltrace_collector.index.decode._otlp_fast import prepare_plain
except ImportError:  # pragma: no cover - a build without a C compiler
    prepare_plain = None


def decode_rows(
    request: ExportTraceServiceRequest | None, raw: bytes
) -> tuple[DecodedBatch, Prepared | None, int] | None:
    """``(batch, rows, runs)`` of ``request`` (serialized: ``raw``) as
    ``decode_and_prepare(..., keep_runs=False)`` makes them: ``batch.runs`` empty, ``rows``
    None when there is nothing to store, ``runs`` the number of runs decoded. None when the
    C extension is missing or leaves the request to the pure path. ``request`` None: parsed
    from ``raw`` only if some span needs the Python decoder (most requests need none)."""
    if prepare_plain is None or processor.walk_spans is None:  # pure path asked for (tests)
        return None
    got = prepare_plain(raw, ingest_rows.dumps_sorted, ingest_rows._split_artifact_id)
    if got is None:
        return None
    done, todo, other_spans = got
    if todo and request is None:
        request = ExportTraceServiceRequest.FromString(raw)
    batch = DecodedBatch(other_spans=other_spans)
    resources: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for r, s, k in todo:  # what C handed back: the processor's own code, from upb
        assert request is not None
        resource_spans = request.resource_spans[r]
        if r not in resources:
            attrs = processor.attributes(resource_spans.resource.attributes)
            resources[r] = attrs, processor._resource_attributes(attrs)
        processor._decode_into(batch, resource_spans.scope_spans[s].spans[k], *resources[r])

    run_rows: list[tuple[Any, ...]] = []
    io: dict[str, list[tuple[Any, ...]]] = {}
    artifacts: dict[str, tuple[str, str | None, int]] = {}
    for row, io_rows, run_artifacts in done:  # ingest_rows.prepare, from rows
        run_rows.append(row)
        run_id = row[0]
        if run_id in io:  # the same run twice: the first one is stored
            continue
        io[run_id] = io_rows
        for aid, uri, version, seen in run_artifacts:
            known = artifacts.get(aid)
            if known is None or seen < known[2]:
                artifacts[aid] = (uri, version, seen)
    if any(run.run_id in io for run in batch.runs):
        # A run ID both in C and in Python: which is first in the request (and so stored)
        # is not known here. Rare (a retried run next to its record chunk spans...): redo.
        return None

    runs = len(done) + len(batch.runs)
    rows = None
    if runs or batch.record_chunks or batch.run_starts:
        rows = ingest_rows.prepare(batch.runs, batch.record_chunks, batch.run_starts)
        rows.records = [r for r in rows.records if r.record_chunks or r.checks]
        if done:
            rows = ingest_rows._merge([Prepared(run_rows, io, artifacts, [], [], []), rows])
    batch.runs = []
    return batch, rows, runs
