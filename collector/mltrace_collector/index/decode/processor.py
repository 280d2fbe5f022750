"""Lineage processor: OTLP trace export request -> ``RunRecord``s (or named rejections).

The same code serves the collector and the SDK's embedded index. Input is untrusted: a
span with a wrong-typed ``mltrace.*`` attribute is rejected with a reason (OTLP partial
success), never half-stored; spans that are not component runs are counted and left alone.

Example::

    batch = decode_request(ExportTraceServiceRequest.FromString(body))
    store.ingest(batch.runs)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from mltrace_collector.index.decode.checks import decode_check
from mltrace_collector.index.decode.isolation import MAX_STORE_INT, timestamp_problem
from mltrace_collector.index.decode.otlp_values import _json_safe as _json_safe
from mltrace_collector.index.decode.otlp_values import _span_attributes as _span_attributes
from mltrace_collector.index.decode.otlp_values import _text as _text
from mltrace_collector.index.decode.otlp_values import any_value as any_value
from mltrace_collector.index.decode.otlp_values import attributes as attributes

# span_checks is shared with store/run_starts.py, which can't import us
from mltrace_collector.index.decode.span_checks import (
    MAX_COMPONENT_LENGTH,
    MAX_RUN_ID_LENGTH,
    SpanRejected,
    _string,
)
from mltrace_collector.index.model import (
    CheckRecord,
    DecodedBatch,
    OutputRecord,
    RecordChunk,
    Rejection,
    RunRecord,
)
from mltrace_collector.index.store import run_starts
from otel_mltrace import semconv
from otel_mltrace.distributions import from_event_attributes

if TYPE_CHECKING:
    from mltrace_collector.index.decode._otlp_fast import SpanTuple

WalkSpans = Callable[[bytes], "tuple[list[dict[str, Any] | None], list[SpanTuple]] | None"]
walk_spans: WalkSpans | None
try:  # the optional C walk of serialized requests (_otlp_fast*.c); pure Python without it
    from mltrace_collector.index.decode._otlp_fast import decode_spans as walk_spans
except ImportError:  # pragma: no cover - a build without a C compiler
    walk_spans = None

MAX_ARTIFACT_ID_LENGTH = 8192
_STATUS: dict[int, str] = {Status.STATUS_CODE_UNSET: "unset", Status.STATUS_CODE_OK: "ok"}
_STATUS[Status.STATUS_CODE_ERROR] = "error"
_PARAM_OR_METRIC = (semconv.PARAM_PREFIX, semconv.METRIC_PREFIX)
_NO_TAGS: list[str] = []  # never mutated: the default of a span without mltrace.tags
_CODE_KEYS = (
    semconv.SERVICE_NAME,
    semconv.VCS_REVISION,
    semconv.VCS_REPOSITORY,
    semconv.CODE_FUNCTION,
    semconv.CODE_FILE,
)


def _artifact_list(attrs: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = attrs.get(key)
    if value is None:
        return ()
    if type(value) is list:  # fast path: one pass; any doubt -> the checks below name it
        for v in value:
            if type(v) is not str or not v or "\x00" in v or len(v) > MAX_ARTIFACT_ID_LENGTH:
                break
        else:
            return tuple(dict.fromkeys(value))  # ordered de-duplication
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpanRejected(f"{key} must be an array of strings (artifact IDs)")
    for v in value:
        if not v or "\x00" in v:
            raise SpanRejected(f"{key} contains an empty artifact ID or a NUL character")
        if len(v) > MAX_ARTIFACT_ID_LENGTH:
            raise SpanRejected(
                f"{key} has an artifact ID of {len(v)} characters; the limit is "
                f"{MAX_ARTIFACT_ID_LENGTH}"
            )
    return tuple(dict.fromkeys(value))  # ordered de-duplication


def _params_metrics(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    for key in [k for k in attrs if k.startswith(_PARAM_OR_METRIC)]:
        value = attrs[key]
        if key.startswith(semconv.PARAM_PREFIX):
            if isinstance(value, list | dict):
                raise SpanRejected(f"{key} must be a scalar, got an array or map")
            params[key[len(semconv.PARAM_PREFIX) :]] = _json_safe(value)
        elif key.startswith(semconv.METRIC_PREFIX):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpanRejected(f"{key} must be a number, got {type(value).__name__}")
            metrics[key[len(semconv.METRIC_PREFIX) :]] = float(value)
    return params, metrics


def _records(event_attrs: Mapping[str, Any]) -> RecordChunk:
    output = event_attrs.get(semconv.RECORDS_OUTPUT)
    ids = event_attrs.get(semconv.RECORDS_IDS)
    index = event_attrs.get(semconv.RECORDS_CHUNK_INDEX, 0)
    total = event_attrs.get(semconv.RECORDS_CHUNK_TOTAL, 1)
    sources = event_attrs.get(semconv.RECORDS_SOURCES)
    if not isinstance(output, str) or not output:
        raise SpanRejected(f"{semconv.RECORDS_EVENT} event needs {semconv.RECORDS_OUTPUT}")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise SpanRejected(f"{semconv.RECORDS_IDS} must be an array of non-empty strings")
    if not isinstance(index, int) or not isinstance(total, int) or not 0 <= index < total:
        raise SpanRejected(f"record chunk index {index!r} of {total!r} is out of range")
    if sources is not None and (
        not isinstance(sources, list)
        or len(sources) != len(ids)
        or not all(isinstance(s, str) for s in sources)
    ):
        raise SpanRejected(f"{semconv.RECORDS_SOURCES} must be strings parallel to the IDs")
    return RecordChunk(output, index, total, tuple(ids), tuple(sources) if sources else None)


def _events(span: Span) -> tuple[tuple[OutputRecord, ...], tuple[RecordChunk, ...]]:
    outputs: dict[str, OutputRecord] = {}
    chunks: list[RecordChunk] = []
    for event in span.events:
        if event.name == semconv.OUTPUT_EVENT:
            ev_attrs = attributes(event.attributes)
            try:
                summary = from_event_attributes(ev_attrs)
            except (ValueError, TypeError) as exc:
                raise SpanRejected(f"{semconv.OUTPUT_EVENT} event: {exc}") from None
            outputs[summary.name] = OutputRecord(
                name=summary.name,
                kind=summary.kind,
                count=summary.count,
                null_count=summary.null_count,
                invalid_count=summary.invalid_count,
                sum=summary.sum,
                min=summary.min,
                max=summary.max,
                summary=summary.to_json(),
            )
        elif event.name == semconv.RECORDS_EVENT:
            chunks.append(_records(attributes(event.attributes)))
    return tuple(outputs.values()), tuple(chunks)


def _checks(span: Span) -> tuple[CheckRecord, ...]:
    try:
        return tuple(
            decode_check(attributes(e.attributes))
            for e in span.events
            if e.name == semconv.CHECK_EVENT
        )
    except ValueError as exc:
        raise SpanRejected(f"{semconv.CHECK_EVENT} event: {exc}") from None


def record_span_chunks(span: Span) -> list[RecordChunk]:
    """Record chunks of a *record chunk span* (``mltrace.records.run.id``); [] for others."""
    run_id = next((kv.value for kv in span.attributes if kv.key == semconv.RECORDS_RUN_ID), None)
    if run_id is None:
        return []
    if run_id.WhichOneof("value") != "string_value" or not run_id.string_value:
        raise SpanRejected(f"{semconv.RECORDS_RUN_ID} must be a non-empty string")
    if len(run_id.string_value) > MAX_RUN_ID_LENGTH:
        raise SpanRejected(f"{semconv.RECORDS_RUN_ID} is longer than {MAX_RUN_ID_LENGTH}")
    ids = (span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex() or None)
    return [
        replace(
            _records(attributes(e.attributes)),
            run_id=run_id.string_value,
            trace_id=ids[0],
            span_id=ids[1],
            parent_span_id=ids[2],
        )
        for e in span.events
        if e.name == semconv.RECORDS_EVENT
    ]


def _resource_attributes(resource: Mapping[str, Any]) -> dict[str, Any]:
    """Resource attributes as stored with each run: ``resource.``-prefixed, JSON-safe."""
    return {f"resource.{k}": _json_safe(v) for k, v in resource.items()}


def decode_span(
    span: Span, resource: Mapping[str, Any], stored_resource: Mapping[str, Any] | None = None
) -> RunRecord | None:
    """One OTLP span -> a ``RunRecord``, ``None`` if it is not a run; ``SpanRejected`` if bad.

    ``stored_resource``: ``_resource_attributes(resource)``, computed once per resource by
    ``decode_request`` instead of once per span.
    """
    attrs, safe = _span_attributes(span.attributes)
    if semconv.COMPONENT not in attrs:
        return None
    if stored_resource is None:
        stored_resource = _resource_attributes(resource)
    status = span.status
    return _run_record(
        attrs,
        safe,
        (span.trace_id, span.span_id, span.parent_span_id),
        (int(span.start_time_unix_nano), int(span.end_time_unix_nano)),
        (status.code, status.message),
        resource,
        stored_resource,
        span if span.events else None,
    )


def _run_record(
    attrs: dict[str, Any],
    safe: bool,
    ids: tuple[bytes, bytes, bytes],
    times: tuple[int, int],
    status: tuple[int, str],
    resource: Mapping[str, Any],
    stored_resource: Mapping[str, Any],
    with_events: Span | None,
) -> RunRecord:
    """The ``RunRecord`` of a span whose attributes name a component (``decode_span``)."""
    component = _string(attrs, semconv.COMPONENT, MAX_COMPONENT_LENGTH)
    if component is None:  # the key with an empty AnyValue
        raise SpanRejected(f"{semconv.COMPONENT} must be a non-empty string, got no value")
    raw_trace, raw_span, raw_parent = ids
    if len(raw_trace) != 16 or len(raw_span) != 8:
        raise SpanRejected("trace_id must be 16 bytes and span_id 8 bytes")
    trace_id, span_id = raw_trace.hex(), raw_span.hex()
    # Without an explicit run ID the span identity is the run identity: retries stay idempotent.
    run_id = _string(attrs, semconv.RUN_ID, MAX_RUN_ID_LENGTH) or f"{trace_id}-{span_id}"
    tags = attrs.get(semconv.TAGS, _NO_TAGS)
    if tags is not _NO_TAGS and (
        not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
    ):
        raise SpanRejected(f"{semconv.TAGS} must be an array of strings")
    start, end = times
    if start > MAX_STORE_INT or end > MAX_STORE_INT:  # would fail the whole group commit
        field, value = ("start", start) if start > MAX_STORE_INT else ("end", end)
        raise SpanRejected(str(timestamp_problem(f"{field}_time_unix_nano", value)))
    params, metrics = _params_metrics(attrs)
    if with_events is not None:
        outputs, chunks = _events(with_events)
        checks = _checks(with_events)
    else:
        outputs, chunks, checks = (), (), ()
    service, revision, repository, function, file = [
        _text(v) if isinstance(v := attrs.get(key, resource.get(key)), str) else None
        for key in _CODE_KEYS
    ]
    return RunRecord(
        run_id=run_id,
        component=component,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=raw_parent.hex() or None,
        service=service,
        start_ns=start,
        end_ns=max(end, start),
        status=_STATUS.get(status[0], "unset"),
        status_message=_text(status[1]) or None,
        inputs=_artifact_list(attrs, semconv.INPUTS),
        outputs=_artifact_list(attrs, semconv.OUTPUTS),
        params=params,
        metrics=metrics,
        tags=tuple(tags),
        code_revision=revision,
        code_repository=repository,
        code_function=function,
        code_file=file,
        attributes={**stored_resource, **(attrs if safe else _json_safe(attrs))},
        output_summaries=outputs,
        record_chunks=chunks,
        checks=checks,
    )


def _decode_into(
    batch: DecodedBatch,
    span: Span,
    resource: Mapping[str, Any],
    stored_resource: Mapping[str, Any],
) -> None:
    """Decode one upb span into ``batch`` (a run, record chunks, a rejection or a count)."""
    try:
        record = decode_span(span, resource, stored_resource)
        if record is None:
            batch.record_chunks.extend(record_span_chunks(span))
            if any(kv.key == semconv.RUN_START_RUN_ID for kv in span.attributes):
                attrs = attributes(span.attributes)
                if run_starts.is_start_record(
                    attrs
                ):  # see mltrace_collector.index.store.run_starts
                    batch.run_starts.append(
                        run_starts.decode_start(
                            attrs, span.parent_span_id, int(span.start_time_unix_nano),
                            span.trace_id, resource,
                        )
                    )  # fmt: skip
    except SpanRejected as exc:
        batch.rejections.append(Rejection(span.trace_id.hex(), span.span_id.hex(), str(exc)))
        return
    if record is None:
        batch.other_spans += 1
    else:
        batch.runs.append(record)


def decode_request(request: ExportTraceServiceRequest, raw: bytes | None = None) -> DecodedBatch:
    """Every span of ``request``: runs decoded, bad runs rejected with a reason, others counted.

    ``raw``: ``request`` serialized (as received), read by the C walk when it is built; the
    result is the same either way (tests/test_processor_fast.py compares the two paths).
    """
    if walk_spans is not None:
        walked = walk_spans(request.SerializeToString() if raw is None else raw)
        if walked is not None:
            return _decode_walked(request, *walked)
    batch = DecodedBatch()
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        stored_resource = _resource_attributes(resource)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                _decode_into(batch, span, resource, stored_resource)
    return batch


def _decode_walked(
    request: ExportTraceServiceRequest,
    resources: list[dict[str, Any] | None],
    spans: list[SpanTuple],
) -> DecodedBatch:
    """``decode_request`` from the C walk's plain values; the few spans it leaves to Python
    (events, non-simple attribute values) are decoded from their upb message."""
    batch = DecodedBatch()
    resource_attrs = [
        attributes(request.resource_spans[i].resource.attributes) if attrs is None else attrs
        for i, attrs in enumerate(resources)
    ]
    stored = [_resource_attributes(attrs) for attrs in resource_attrs]
    runs = batch.runs
    for r, s, k, trace, span_id, parent, start, end, code, msg, attrs, safe, events in spans:
        if (
            attrs is None
            or events
            or (
                semconv.COMPONENT not in attrs
                and (semconv.RECORDS_RUN_ID in attrs or semconv.RUN_START_RUN_ID in attrs)
            )
        ):
            span = request.resource_spans[r].scope_spans[s].spans[k]
            _decode_into(batch, span, resource_attrs[r], stored[r])
        elif semconv.COMPONENT not in attrs:
            batch.other_spans += 1
        else:
            try:
                runs.append(
                    _run_record(
                        attrs,
                        safe,
                        (trace, span_id, parent),
                        (start, end),
                        (code, msg),
                        resource_attrs[r],
                        stored[r],
                        None,
                    )
                )
            except SpanRejected as exc:
                batch.rejections.append(Rejection(trace.hex(), span_id.hex(), str(exc)))
    return batch


def rejection_message(rejections: list[Rejection], limit: int = 5) -> str:
    """The OTLP partial-success ``error_message``: the first few reasons, with span IDs."""
    parts = [f"span {r.span_id or '?'} (trace {r.trace_id or '?'}): {r.reason}" for r in rejections]
    more = len(parts) - limit
    text = "; ".join(parts[:limit])
    return text + (f"; and {more} more" if more > 0 else "")
