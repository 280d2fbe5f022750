"""Type stub of the optional C extension ``mltrace_collector._otlp_fast`` (_otlp_fast.c)."""

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
