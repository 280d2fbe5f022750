"""Build OTLP trace requests by hand (run spans and plain spans) and send them over gRPC.

Used by the forwarding tests and ``benchmarks/bench_forwarding.py`` where the SDK would be
too slow or too indirect (exact trace IDs, exact timing, pre-encoded batches), and by the
tests of the C reader (``value``/``kvs`` from Python values, ``varint``/``tag``/``ld`` for
hand-written wire bytes).

Example::

    span = run_span("train", inputs=["s3://b/x@sha256:aa"], outputs=["s3://b/m@sha256:bb"])
    body = request([span], service="bench").SerializeToString()
    send_grpc("http://127.0.0.1:4317", body)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from mltrace_collector.service.exporters.forward_transport import EXPORT_METHOD
from otel_mltrace import semconv

if TYPE_CHECKING:
    from mltrace_collector.service.collector import Collector


def _kv(key: str, value: str | list[str]) -> KeyValue:
    if isinstance(value, list):
        array = ArrayValue(values=[AnyValue(string_value=v) for v in value])
        return KeyValue(key=key, value=AnyValue(array_value=array))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def value(v: Any) -> AnyValue:
    """Python -> AnyValue: bool, int, float, str, bytes, dict (kvlist), list (array), None."""
    if isinstance(v, AnyValue):
        return v
    if v is None:
        return AnyValue()
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=kvs(v)))
    if isinstance(v, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[value(x) for x in v]))
    return AnyValue(string_value=str(v))


def kvs(attrs: dict[str, Any] | Sequence[tuple[str, Any]]) -> list[KeyValue]:
    """Attributes from a dict or (key, value) pairs (duplicate keys kept, in order)."""
    items = attrs.items() if isinstance(attrs, dict) else attrs
    return [KeyValue(key=k, value=value(v)) for k, v in items]


# --- hand-written wire bytes (protobuf encoding) ------------------------------------------


def varint(n: int) -> bytes:
    """Base-128 varint; negative numbers as their 64-bit two's complement (as int64 is)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field: ``tag(field, 2)``, length, payload."""
    return tag(field, 2) + varint(len(payload)) + payload


def run_span(
    component: str,
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    start_ns: int | None = None,
    duration_ns: int = 1_000_000,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    run_id: str | None = None,
) -> Span:
    """One component run span (fresh random IDs unless given)."""
    start = time.time_ns() if start_ns is None else start_ns
    attrs = [_kv(semconv.COMPONENT, component)]
    attrs.append(_kv(semconv.RUN_ID, run_id or os.urandom(16).hex()))
    if inputs:
        attrs.append(_kv(semconv.INPUTS, list(inputs)))
    if outputs:
        attrs.append(_kv(semconv.OUTPUTS, list(outputs)))
    return Span(
        trace_id=trace_id or os.urandom(16),
        span_id=span_id or os.urandom(8),
        name=component,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ns,
        attributes=attrs,
    )


def plain_span(name: str, trace_id: bytes, parent: bytes | None = None) -> Span:
    """An ordinary (non-run) span: accepted, not indexed, still forwarded."""
    now = time.time_ns()
    return Span(
        trace_id=trace_id,
        span_id=os.urandom(8),
        parent_span_id=parent or b"",
        name=name,
        start_time_unix_nano=now,
        end_time_unix_nano=now + 1000,
    )


def chunk_span(
    run: Span, run_id: str, by_output: dict[str, list[str]], at_ns: int | None = None
) -> Span:
    """A record chunk span of ``run`` (as ``otel_mltrace.records`` sends one): one records
    event per output, at ``at_ns`` (the run span's start unless given).

    Example::

        chunk = chunk_span(run, "run-1", {"s3://b/model@v:1": ["a1", "a2"]})
    """
    at = run.start_time_unix_nano if at_ns is None else at_ns
    return Span(
        trace_id=run.trace_id,
        span_id=os.urandom(8),
        parent_span_id=run.span_id,
        name=semconv.RECORDS_SPAN_NAME,
        start_time_unix_nano=at,
        end_time_unix_nano=at,
        attributes=kvs({semconv.RECORDS_RUN_ID: run_id}),
        events=[
            Span.Event(
                name=semconv.RECORDS_EVENT,
                attributes=kvs({semconv.RECORDS_OUTPUT: out, semconv.RECORDS_IDS: ids}),
            )
            for out, ids in by_output.items()
        ],
    )


def request(spans: Sequence[Span], service: str = "forward-test") -> ExportTraceServiceRequest:
    """One request: one resource (``service.name``), one scope, ``spans``."""
    resource = Resource(attributes=[_kv(semconv.SERVICE_NAME, service)])
    scope = ScopeSpans(spans=list(spans))
    scope.scope.name = "tests.otlp_builders"
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[scope])]
    )


class GrpcSender:
    """Sends pre-serialized requests to an OTLP/gRPC endpoint (``http://host:port``)."""

    def __init__(self, endpoint: str) -> None:
        target = endpoint.split("://", 1)[-1]
        self._channel = grpc.insecure_channel(target)
        self._export = self._channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=lambda body: body,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )

    def send(self, body: bytes, timeout_s: float = 30.0) -> ExportTraceServiceResponse:
        response: ExportTraceServiceResponse = self._export(body, timeout=timeout_s)
        return response

    def close(self) -> None:
        self._channel.close()


def send_grpc(endpoint: str, body: bytes) -> ExportTraceServiceResponse:
    """One export over a fresh channel (raises ``grpc.RpcError`` on failure)."""
    sender = GrpcSender(endpoint)
    try:
        return sender.send(body)
    finally:
        sender.close()


def send_http(collector: Collector, req: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    """POST ``req`` to an in-process collector's OTLP/HTTP receiver; it must answer 200.

    Example::

        assert not send_http(service, request([span])).HasField("partial_success")
    """
    assert collector.http is not None
    got = httpx.post(
        f"http://127.0.0.1:{collector.http.port}/v1/traces",
        content=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert got.status_code == 200, got.text
    return ExportTraceServiceResponse.FromString(got.content)
