"""Embedded mode's decode: ended SDK spans -> the ``DecodedBatch`` the collector would make.

``decode_request(encode_spans(spans))`` is what the collector does with the OTLP request
the SDK would send; in embedded mode that protobuf round trip was ~80 % of the index
worker's CPU, taken from the user's process (issue 11). :func:`decode_spans` reads the
common span (a run or a plain span whose attribute values are strings, bools, 64-bit ints,
floats or string arrays, with no events) straight from the ``ReadableSpan`` and builds its
``RunRecord`` with the processor's own ``_run_record``; every other span (events: outputs,
records, checks; record chunk spans; start records; anything the OTLP encoder would
change or drop) still takes the round trip, one stretch of such spans at a time, so the
result is identical, in the same order (tests/test_embedded_direct.py compares both).

Example::

    batch = decode_spans(spans)      # == decode_request(encode_spans(spans))
    store.ingest(batch.runs, batch.record_chunks, batch.run_starts)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from mltrace_collector.index.decode import processor
from mltrace_collector.index.decode.span_checks import SpanRejected
from mltrace_collector.index.model import DecodedBatch, Rejection
from otel_mltrace import semconv

_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = 2**64
_NOT_RUN_BUT_READ = (semconv.RECORDS_RUN_ID, semconv.RUN_START_RUN_ID)


def _utf8(text: str) -> bool:
    """Whether protobuf can encode ``text`` (a lone surrogate makes the encoder drop it)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(attributes: Mapping[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """``otlp_values._span_attributes`` of what the OTLP encoder would make of
    ``attributes``; None if any value is of a kind left to the round trip."""
    attrs: dict[str, Any] = {}
    safe = True
    low, high = _INT64
    for key, value in attributes.items():
        # (isascii first: the common case without a call)
        if type(key) is not str or not (key.isascii() or _utf8(key)):
            return None
        kind = type(value)
        if kind is str:
            if not (value.isascii() or _utf8(value)):
                return None
        elif kind is int:
            if not low <= value <= high:
                return None
        elif kind is float:
            safe = safe and math.isfinite(value)
        elif kind is tuple or kind is list:
            for item in value:
                if type(item) is not str or not (item.isascii() or _utf8(item)):
                    return None
            value = list(value)
        elif kind is not bool:
            return None
        attrs[key] = value
    return attrs, safe


def _grouped(spans: Sequence[ReadableSpan]) -> list[tuple[ReadableSpan, int]]:
    """``spans`` in the order ``encode_spans`` puts them (by resource, then scope), each
    with its resource's index. Equal resources group together as in the encoder; each
    resource object is hashed once (``Resource.__hash__`` serializes its attributes)."""
    by_resource: dict[Any, dict[Any, list[ReadableSpan]]] = {}
    scopes_of: dict[int, dict[Any, list[ReadableSpan]]] = {}
    group_of: dict[tuple[int, int], list[ReadableSpan]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope or None
        group = group_of.get((id(resource), id(scope)))
        if group is None:
            scopes = scopes_of.get(id(resource))
            if scopes is None:
                scopes = scopes_of[id(resource)] = by_resource.setdefault(resource, {})
            group = group_of[(id(resource), id(scope))] = scopes.setdefault(scope, [])
        group.append(span)
    return [
        (span, r)
        for r, scopes in enumerate(by_resource.values())
        for group in scopes.values()
        for span in group
    ]


def _merge(batch: DecodedBatch, part: DecodedBatch) -> None:
    batch.runs.extend(part.runs)
    batch.rejections.extend(part.rejections)
    batch.other_spans += part.other_spans
    batch.record_chunks.extend(part.record_chunks)
    batch.run_starts.extend(part.run_starts)


def decode_spans(spans: Sequence[ReadableSpan]) -> DecodedBatch:
    """``decode_request(encode_spans(spans))``, without the round trip for common spans."""
    batch = DecodedBatch()
    ordered = _grouped(spans)
    resources: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    stretch: list[ReadableSpan] = []  # consecutive spans left to the round trip
    for span, r in ordered:
        if r not in resources:  # the resource exactly as encoded and decoded
            encoded = encode_spans([span]).resource_spans[0].resource.attributes
            attrs = processor.attributes(encoded)
            resources[r] = attrs, processor._resource_attributes(attrs)
        plain = None if span.events else _plain(span.attributes or {})
        context, status = span.get_span_context(), span.status
        start, end = span.start_time, span.end_time
        if (
            plain is None
            or context is None
            or start is None
            or end is None
            or (status is not None and not _utf8(status.description or ""))
            or not 0 <= start < _UINT64
            or not 0 <= end < _UINT64
            or (
                semconv.COMPONENT not in plain[0]
                and any(key in plain[0] for key in _NOT_RUN_BUT_READ)
            )
        ):
            stretch.append(span)
            continue
        if stretch:
            _merge(batch, processor.decode_request(encode_spans(stretch)))
            stretch = []
        attrs, safe = plain
        if semconv.COMPONENT not in attrs:
            batch.other_spans += 1
            continue
        trace = context.trace_id.to_bytes(16, "big")
        span_id = context.span_id.to_bytes(8, "big")
        parent = span.parent.span_id.to_bytes(8, "big") if span.parent else b""
        code, message = (status.status_code.value, status.description or "") if status else (0, "")
        try:
            batch.runs.append(
                processor._run_record(
                    attrs,
                    safe,
                    (trace, span_id, parent),
                    (start, end),
                    (code, message),
                    *resources[r],
                    None,
                )
            )
        except SpanRejected as exc:
            batch.rejections.append(Rejection(trace.hex(), span_id.hex(), str(exc)))
    if stretch:
        _merge(batch, processor.decode_request(encode_spans(stretch)))
    return batch
