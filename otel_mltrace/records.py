"""Record-level lineage: send the IDs of the records a run produced, in bounded chunks.

``Run.log_records(output, ids, sources=None)`` calls :func:`emit_records`. IDs never travel
as one unbounded attribute:

* a **chunk** is one ``mltrace.records`` span event with at most ``MAX_IDS_PER_CHUNK``
  (10,000) IDs and at most ``MAX_CHUNK_BYTES`` (1 MiB) of IDs + sources;
* a small batch (one chunk, while the run span carries less than ``MAX_RUN_SPAN_BYTES``
  of records) rides on the run span itself;
* anything larger goes on **record chunk spans**: child spans of the run named
  ``mltrace.records``, carrying ``mltrace.records.run.id`` and one chunk each, so that no
  span is larger than about 1 MiB;
* after every ``FLUSH_BYTES`` (3 MiB) of chunk spans the tracer provider is flushed, so an
  OTLP export request stays under the 4 MiB default gRPC message limit (of otelcol and of
  most gRPC servers) and the batch span processor's queue (2,048 spans) never drops them:
  1,000,000 UUIDs (~40 MB) become ~100 spans sent in ~14 requests of ≤ 3 MiB.

Chunks carry ``index``/``total`` within one call; the collector indexes each
(record, run, output, source) once, whatever the order or duplication of chunks.

Example::

    with mlt.run("predict", inputs=[model, features]) as run:
        out = run.add_output("s3://bucket/predictions/2024-06-01.parquet")
        run.log_records(out, df["prediction_id"], sources=df["feature_row_id"])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from otel_mltrace import semconv

if TYPE_CHECKING:
    from otel_mltrace.run_view import RunView

MAX_IDS_PER_CHUNK = 10_000
MAX_CHUNK_BYTES = 1 << 20
MAX_RUN_SPAN_BYTES = 1 << 20
MAX_RUN_SPAN_CHUNKS = 16
FLUSH_BYTES = 3 << 20
MAX_ID_BYTES = 4096
_PER_VALUE_OVERHEAD = 6  # protobuf tags and lengths of one AnyValue string in an array


def _as_ids(name: str, values: Iterable[Any], allow_empty: bool) -> list[str]:
    if isinstance(values, str | bytes):
        raise TypeError(f"{name} must be a sequence of IDs, not one {type(values).__name__}")
    out = ["" if v is None and allow_empty else str(v) for v in values]
    for i, v in enumerate(out):
        if not v and not allow_empty:
            raise ValueError(f"{name}[{i}] is empty; record IDs must be non-empty strings")
        if len(v) > MAX_ID_BYTES:
            raise ValueError(
                f"{name}[{i}] is {len(v)} characters long; the limit is {MAX_ID_BYTES}: "
                "use a shorter key (e.g. a hash of the record)"
            )
    return out


def plan_chunks(
    ids: Sequence[str], sources: Sequence[str] | None
) -> Iterator[tuple[int, int, int]]:
    """``(start, end, bytes)`` slices of ``ids`` that respect both chunk limits.

    >>> [c[:2] for c in plan_chunks([str(i) for i in range(25_000)], None)]
    [(0, 10000), (10000, 20000), (20000, 25000)]
    """
    start, size = 0, 0
    for i, record_id in enumerate(ids):
        cost = len(record_id.encode()) + _PER_VALUE_OVERHEAD
        if sources is not None:
            cost += len(sources[i].encode()) + _PER_VALUE_OVERHEAD
        if i > start and (i - start >= MAX_IDS_PER_CHUNK or size + cost > MAX_CHUNK_BYTES):
            yield start, i, size
            start, size = i, 0
        size += cost
    if len(ids) > start or not ids:
        yield start, len(ids), size


def _chunk_attributes(
    output: str, index: int, total: int, ids: Sequence[str], sources: Sequence[str] | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        semconv.RECORDS_OUTPUT: output,
        semconv.RECORDS_CHUNK_INDEX: index,
        semconv.RECORDS_CHUNK_TOTAL: total,
        semconv.RECORDS_IDS: list(ids),
    }
    if sources is not None:
        attrs[semconv.RECORDS_SOURCES] = list(sources)
    return attrs


def _flush() -> None:
    from otel_mltrace.provider import current_configuration

    config = current_configuration()
    if config is not None:
        config.provider.force_flush()


def emit_records(
    run: RunView, output: str, ids: Iterable[Any], sources: Iterable[Any] | None = None
) -> int:
    """Send ``ids`` (and their ``sources``) for ``output`` of ``run``; returns the ID count.

    See the module docstring for how they are split. Raises ``ValueError`` naming the
    problem for empty IDs or sources of a different length.
    """
    id_list = _as_ids("ids", ids, allow_empty=False)
    if not id_list:
        return 0
    src_list = _as_ids("sources", sources, allow_empty=True) if sources is not None else None
    if src_list is not None and len(src_list) != len(id_list):
        raise ValueError(
            f"sources has {len(src_list)} entries but ids has {len(id_list)}: give one source "
            "per record (None or '' where a record has none)"
        )
    plan = list(plan_chunks(id_list, src_list))
    total = len(plan)
    span = run.span
    used = run._record_bytes
    if total == 1 and used[0] + plan[0][2] <= MAX_RUN_SPAN_BYTES and used[1] < MAX_RUN_SPAN_CHUNKS:
        span.add_event(semconv.RECORDS_EVENT, _chunk_attributes(output, 0, 1, id_list, src_list))
        used[0] += plan[0][2]
        used[1] += 1
        return len(id_list)
    from otel_mltrace.provider import get_tracer

    tracer = get_tracer()
    parent = trace.set_span_in_context(span)
    unflushed = 0
    for index, (start, end, size) in enumerate(plan):
        if unflushed and unflushed + size > FLUSH_BYTES:
            _flush()  # keeps each export request under FLUSH_BYTES of record IDs
            unflushed = 0
        chunk_span = tracer.start_span(
            semconv.RECORDS_SPAN_NAME, context=parent, attributes={semconv.RECORDS_RUN_ID: run.id}
        )
        sources_slice = src_list[start:end] if src_list is not None else None
        attrs = _chunk_attributes(output, index, total, id_list[start:end], sources_slice)
        chunk_span.add_event(semconv.RECORDS_EVENT, attrs)
        chunk_span.end()
        unflushed += size
    return len(id_list)
