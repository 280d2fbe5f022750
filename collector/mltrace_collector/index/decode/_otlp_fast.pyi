"""Type stub of the optional C extension ``mltrace_collector.index.decode._otlp_fast``
(``_otlp_fast*.c`` here, units listed in ``_otlp_fast.h``)."""

from collections.abc import Callable
from typing import Any, TypeAlias

# (resource_index, scope_index, span_index, trace_id, span_id, parent_span_id,
#  start_time_unix_nano, end_time_unix_nano, status_code, status_message,
#  attributes (None: some value is not simple), safe (no NaN/inf double), has_events)
SpanTuple: TypeAlias = tuple[
    int, int, int, bytes, bytes, bytes, int, int, int, str, dict[str, Any] | None, bool, bool
]

def decode_spans(
    data: bytes | bytearray | memoryview, /
) -> tuple[list[dict[str, Any] | None], list[SpanTuple]] | None:
    """Walk a serialized ExportTraceServiceRequest that upb has already parsed.

    Returns one attribute dict per ResourceSpans (None when a value is not simple) and one
    SpanTuple per span in wire order, indices 0-based into
    ``request.resource_spans[r].scope_spans[s].spans[k]``. Simple values: str, bool, int,
    float and arrays of strings (list[str]). Returns None when the request needs the
    pure-Python path: protobuf merge semantics (a non-repeated message field twice, two
    AnyValue oneof members), wire-type mismatches, groups, truncation, invalid UTF-8.
    """

# (run_row, io_rows, artifacts) of one span handled in C (see prepare_plain):
#  run_row: writes._run_row(record), 20 items;
#  io_rows: writes.prepare([record]).io[record.run_id], (run_id, direction, artifact_id, uri,
#           versioned) tuples;
#  artifacts: (artifact_id, uri, version, seen_ns), writes.prepare([record]).artifacts in order.
RunRows: TypeAlias = tuple[
    tuple[Any, ...],
    list[tuple[str, str, str, str, int]],
    list[tuple[str, str, str | None, int]],
]

def prepare_plain(
    data: bytes | bytearray | memoryview,
    dumps_sorted: Callable[[Any], str],
    split_artifact_id: Callable[[str], tuple[str, str | None]],
    /,
) -> tuple[list[RunRows], list[tuple[int, int, int]], int] | None:
    """Store rows of the plain run spans of a serialized ExportTraceServiceRequest.

    Returns ``(done, todo, other_spans)``, or None exactly when ``decode_spans(data)`` does.
    ``done``: one RunRows per run span built in C, in wire order: component runs whose span
    and resource attributes are all simple and finite, without events, that the processor
    accepts (``processor._run_record`` raises no ``SpanRejected``). ``todo``: the
    ``(resource_index, scope_index, span_index)`` of every other span that is not merely
    counted, in wire order: the caller decodes them from the upb message. ``other_spans``:
    spans that are not runs nor record chunk spans (no ``mltrace.component`` and no
    ``mltrace.records.run.id``), counted only. JSON text comes from ``dumps_sorted``
    (``writes.dumps_sorted``), artifact IDs are split by ``split_artifact_id``
    (``writes._split_artifact_id``); exceptions they raise propagate.
    """
