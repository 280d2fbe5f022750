"""The OTLP/gRPC receiver on a real loopback server, driven by the official OTLP gRPC
exporter and raw gRPC calls: partial success, bad data, size limit, throttling with RetryInfo,
bearer auth, TLS and a graceful stop that drains in-flight calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from mltrace_collector.index.ingest import ExportOutcome
from mltrace_collector.service.receivers import GrpcReceiver, start_grpc_server
from mltrace_collector.service.receivers.grpc_receiver import EXPORT_METHOD
from tests import support_receivers
from tests.support_receivers import RecordingHandler, pb_body, shutdown

# Shared with the other receiver tests (tests/support_receivers.py); bound here so that this
# module's `spans` (module-scoped ReadableSpans) overrides conftest's SDK-level `spans`.
handler, spans, tls_files = (
    support_receivers.handler,
    support_receivers.spans,
    support_receivers.tls_files,
)


@pytest.fixture
def grpc_rx(handler: RecordingHandler) -> Iterator[Callable[..., GrpcReceiver]]:
    started: list[GrpcReceiver] = []

    def start(**kwargs: Any) -> GrpcReceiver:
        started.append(start_grpc_server(handler, "127.0.0.1:0", **kwargs))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop(0)


def grpc_exporter(port: int, **kwargs: Any) -> GrpcExporter:
    kwargs.setdefault("insecure", True)
    return GrpcExporter(endpoint=f"127.0.0.1:{port}", timeout=3, **kwargs)


def raw_call(port: int, payload: bytes, metadata: Any = None) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(EXPORT_METHOD)
        return ExportTraceServiceResponse.FromString(call(payload, timeout=5, metadata=metadata))


def grpc_error(port: int, payload: bytes, metadata: Any = None) -> Any:
    with pytest.raises(grpc.RpcError) as info:
        raw_call(port, payload, metadata)
    return info.value


# --- OTLP/gRPC ---------------------------------------------------------------------------


def test_grpc_official_exporter_and_partial_success(
    grpc_rx: Callable[..., GrpcReceiver], handler: RecordingHandler, spans: list[ReadableSpan]
) -> None:
    receiver = grpc_rx()
    exporter = grpc_exporter(receiver.port, compression=grpc.Compression.Gzip)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    shutdown(exporter)
    ctx = spans[0].context
    assert ctx is not None
    assert {s.span_id for s in handler.spans()} == {
        s.context.span_id.to_bytes(8, "big") for s in spans if s.context
    }
    assert handler.spans()[0].trace_id == ctx.trace_id.to_bytes(16, "big")
    assert not raw_call(receiver.port, pb_body(spans)).HasField("partial_success")
    handler.outcome = ExportOutcome(rejected_spans=2, error_message="2 spans lack a run id")
    response = raw_call(receiver.port, pb_body(spans))
    assert response.partial_success.rejected_spans == 2
    assert response.partial_success.error_message == "2 spans lack a run id"


def test_grpc_bad_data_internal_error_and_size_limit(
    grpc_rx: Callable[..., GrpcReceiver], handler: RecordingHandler, spans: list[ReadableSpan]
) -> None:
    receiver = grpc_rx(max_body_bytes=4096)
    error = grpc_error(receiver.port, b"\x0a\x05ab")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    assert (
        status_pb2.Status.FromString(details).details[0].Is(error_details_pb2.BadRequest.DESCRIPTOR)
    )
    assert grpc_error(receiver.port, b"x" * 10_000).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    handler.fail_next = True
    assert grpc_error(receiver.port, pb_body(spans)).code() == grpc.StatusCode.INTERNAL
    assert raw_call(receiver.port, pb_body(spans)) == ExportTraceServiceResponse()


def test_grpc_overloaded_is_unavailable_with_retry_info(
    grpc_rx: Callable[..., GrpcReceiver], handler: RecordingHandler, spans: list[ReadableSpan]
) -> None:
    receiver = grpc_rx()
    handler.overload_times, handler.retry_after_s = 1, 7.5
    error = grpc_error(receiver.port, pb_body(spans))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    status = status_pb2.Status.FromString(
        dict(error.trailing_metadata())["grpc-status-details-bin"]
    )
    retry = error_details_pb2.RetryInfo()
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0] and status.details[0].Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (7, 500_000_000)
    # The official exporter honours RetryInfo (50 ms, not its 1 s backoff) and then succeeds.
    handler.overload_times, handler.retry_after_s = 1, 0.05
    exporter = grpc_exporter(receiver.port)
    started = time.monotonic()
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert time.monotonic() - started < 0.75
    shutdown(exporter)
    assert handler.calls == 3


def test_grpc_bearer_token(
    grpc_rx: Callable[..., GrpcReceiver], handler: RecordingHandler, spans: list[ReadableSpan]
) -> None:
    receiver = grpc_rx(auth_token="s3cret")
    for metadata in (None, [("authorization", "Bearer wrong")], [("authorization", "s3cret")]):
        error = grpc_error(receiver.port, pb_body(spans), metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    denied = grpc_exporter(receiver.port)
    assert denied.export(spans) == SpanExportResult.FAILURE
    shutdown(denied)
    allowed = grpc_exporter(receiver.port, headers={"authorization": "Bearer s3cret"})
    assert allowed.export(spans) == SpanExportResult.SUCCESS
    shutdown(allowed)
    assert handler.calls == 1


def test_grpc_tls(
    grpc_rx: Callable[..., GrpcReceiver],
    handler: RecordingHandler,
    spans: list[ReadableSpan],
    tls_files: tuple[str, str],
) -> None:
    receiver = grpc_rx(tls_cert=tls_files[0], tls_key=tls_files[1])
    credentials = grpc.ssl_channel_credentials(Path(tls_files[0]).read_bytes())
    exporter = grpc_exporter(receiver.port, insecure=False, credentials=credentials)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    shutdown(exporter)
    assert len(handler.spans()) == len(spans)


def test_grpc_stop_drains_in_flight_calls(
    grpc_rx: Callable[..., GrpcReceiver], handler: RecordingHandler, spans: list[ReadableSpan]
) -> None:
    receiver = grpc_rx()
    handler.gate = threading.Event()
    with grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as channel:
        future = channel.unary_unary(EXPORT_METHOD).future(pb_body(spans), timeout=10)
        assert handler.entered.wait(5)
        stopper = threading.Thread(target=receiver.stop, args=(5.0,))
        stopper.start()
        time.sleep(0.2)
        handler.gate.set()
        assert future.result() == b""  # an empty ExportTraceServiceResponse
        stopper.join(10)
    assert len(handler.requests) == 1
