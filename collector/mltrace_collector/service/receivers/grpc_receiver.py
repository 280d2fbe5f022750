"""OTLP/gRPC trace receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

Status codes follow the OTLP specification ("OTLP/gRPC Response", "Failures",
"OTLP/gRPC Throttling"):

- success → ``ExportTraceServiceResponse``; ``partial_success`` set only when the handler
  rejected spans or has a warning (``rejected_spans`` 0 + message, as the spec allows);
- bytes that are not an ``ExportTraceServiceRequest`` → ``INVALID_ARGUMENT`` with a
  ``google.rpc.BadRequest`` detail (not retryable). grpcio's own deserializer would answer
  ``INTERNAL``, so the method is registered with a lenient deserializer instead of
  ``add_TraceServiceServicer_to_server`` (same service and method name, same messages);
- ``Overloaded`` → ``UNAVAILABLE`` (retryable) with ``google.rpc.RetryInfo``, both in the
  standard ``grpc-status-details-bin`` trailer and in ``google.rpc.retryinfo-bin``, the
  trailer opentelemetry-python's exporter reads;
- message larger than ``max_body_bytes`` → ``RESOURCE_EXHAUSTED`` from grpc itself;
- ``Rejected`` (data the index cannot store) → ``INVALID_ARGUMENT``;
- missing/wrong bearer token → ``UNAUTHENTICATED``; handler bug → ``INTERNAL`` (logged).

Example::

    receiver = start_grpc_server(handler, "127.0.0.1:0", max_body_bytes=4 << 20)
    print(receiver.port)
    receiver.stop(grace=5.0)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from mltrace_collector.index.ingest import ExportHandler, Overloaded, Rejected

from .security import bearer_matches, grpc_server_credentials

__all__ = ["EXPORT_METHOD", "GrpcReceiver", "start_grpc_server"]

log = logging.getLogger("mltrace_collector.receivers")

SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"
EXPORT_METHOD = f"/{SERVICE_NAME}/Export"


class _Undecodable:
    """What the lenient deserializer returns for bytes that are not a request."""

    def __init__(self, error: str) -> None:
        self.error = error


def _lenient_parse(raw: bytes) -> tuple[ExportTraceServiceRequest, bytes] | _Undecodable:
    try:  # the bytes too: a decode worker takes them as they are, without re-encoding
        return ExportTraceServiceRequest.FromString(raw), raw
    except Exception as exc:  # DecodeError, or anything a broken message makes upb raise
        return _Undecodable(str(exc) or type(exc).__name__)


def _abort(
    context: Any,
    code: Any,
    message: str,
    detail: Message | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
) -> None:
    """Abort the RPC with ``code`` and a ``google.rpc.Status`` in the details trailer."""
    status = status_pb2.Status(code=code.value[0], message=message)
    if detail is not None:
        status.details.add().Pack(detail)
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()), *extra))
    context.abort(code, message)


class _TraceService:
    def __init__(self, handler: ExportHandler) -> None:
        self._handler = handler

    def export(
        self, received: tuple[ExportTraceServiceRequest, bytes] | _Undecodable, context: Any
    ) -> Any:
        if isinstance(received, _Undecodable):
            message = f"request is not an ExportTraceServiceRequest: {received.error}"
            log.warning("rejected OTLP/gRPC export from %s: %s", context.peer(), message)
            violation = error_details_pb2.BadRequest.FieldViolation(
                field="request", description=message
            )
            bad = error_details_pb2.BadRequest(field_violations=[violation])
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, message, bad)
            return None
        overloaded: Overloaded | None = None
        rejected: Rejected | None = None
        failed = False
        try:
            outcome = self._handler.export(*received)
        except Overloaded as exc:
            overloaded = exc
        except Rejected as exc:  # this request's data: not retryable as is
            rejected = exc
        except Exception:
            log.exception("OTLP/gRPC export from %s failed in the handler", context.peer())
            failed = True
        if overloaded is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(max(0.0, overloaded.retry_after_s) * 1e9))
            retry = error_details_pb2.RetryInfo(retry_delay=delay)
            log.info(
                "throttled OTLP/gRPC export from %s: UNAVAILABLE, retry after %.3fs",
                context.peer(),
                overloaded.retry_after_s,
            )
            extra = (("google.rpc.retryinfo-bin", retry.SerializeToString()),)
            _abort(context, grpc.StatusCode.UNAVAILABLE, str(overloaded), retry, extra)
            return None
        if rejected is not None:
            log.warning("rejected OTLP/gRPC export from %s: %s", context.peer(), rejected)
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(rejected)[:1000])
            return None
        if failed:
            _abort(context, grpc.StatusCode.INTERNAL, "internal error while storing spans")
            return None
        response = ExportTraceServiceResponse()
        if outcome.rejected_spans > 0 or outcome.error_message:
            response.partial_success.rejected_spans = outcome.rejected_spans
            response.partial_success.error_message = outcome.error_message
        return response


class _BearerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Server interceptor: ``authorization: Bearer <token>`` metadata or UNAUTHENTICATED."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._deny = grpc.unary_unary_rpc_method_handler(self._reject)

    @staticmethod
    def _reject(request: bytes, context: Any) -> None:
        metadata = dict(context.invocation_metadata())
        reason = "wrong bearer token" if metadata.get("authorization") else "no bearer token"
        log.warning("rejected OTLP/gRPC call from %s: UNAUTHENTICATED, %s", context.peer(), reason)
        message = "missing or invalid 'authorization: Bearer <token>' metadata"
        _abort(context, grpc.StatusCode.UNAUTHENTICATED, message)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED
        metadata = dict(handler_call_details.invocation_metadata or ())
        if bearer_matches(metadata.get("authorization"), self._token):
            return handler
        return self._deny


class GrpcReceiver:
    """A running OTLP/gRPC server; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, server: Any, address: str, port: int) -> None:
        self._server = server
        self._stopped = threading.Event()
        self.address = address
        self.port = port

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls, let in-flight calls finish for up to ``grace`` s. Idempotent.

        Example::

            receiver.stop(grace=10.0)
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.stop(grace).wait(grace + 5.0)


def start_grpc_server(
    handler: ExportHandler,
    address: str = "127.0.0.1:4317",
    *,
    max_body_bytes: int = 64 * 1024 * 1024,
    auth_token: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    max_workers: int = 16,
) -> GrpcReceiver:
    """Start the OTLP/gRPC trace receiver on ``address`` (``host:port``; port 0 = any free).

    Raises ``OSError`` when the address cannot be bound, ``ValueError`` for half a TLS pair.

    Example::

        receiver = start_grpc_server(handler, "0.0.0.0:4317", auth_token="s3cret",
                                     tls_cert="/etc/c.pem", tls_key="/etc/k.pem")
        ...
        receiver.stop(grace=5.0)
    """
    credentials = grpc_server_credentials(tls_cert, tls_key)
    service = _TraceService(handler)
    method = grpc.unary_unary_rpc_method_handler(
        service.export,
        request_deserializer=_lenient_parse,
        response_serializer=ExportTraceServiceResponse.SerializeToString,
    )
    generic = grpc.method_handlers_generic_handler(SERVICE_NAME, {"Export": method})
    interceptors = [_BearerInterceptor(auth_token)] if auth_token else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="otlp-grpc"),
        handlers=[generic],
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", max_body_bytes),
            ("grpc.so_reuseport", 0),  # a second server on a busy port must fail, not share
        ],
    )
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen for OTLP/gRPC on {address}: {exc}") from None
    if not port:
        raise OSError(f"cannot listen for OTLP/gRPC on {address}")
    server.start()
    log.info("OTLP/gRPC receiver listening on %s (port %d)", address, port)
    return GrpcReceiver(server, address, port)
