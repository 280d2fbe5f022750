"""OTLP trace export of pre-serialized request bytes over gRPC or HTTP/protobuf.

The forwarder batches by concatenating serialized ``ExportTraceServiceRequest`` messages
(protobuf merges concatenated messages, appending the repeated ``resource_spans``), so a
transport sends bytes and classifies the outcome the way the OTLP spec asks:

- gRPC retryable: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE,
  DATA_LOSS, and RESOURCE_EXHAUSTED only when the server sent ``google.rpc.RetryInfo``;
  the RetryInfo delay is honoured.
- HTTP retryable: 429, 502, 503, 504 (and connection errors), honouring ``Retry-After``.
- Everything else is permanent: the batch is counted ``failed`` and not retried.

Example::

    t = open_transport("http://127.0.0.1:4317", "grpc")
    result = t.send(request.SerializeToString(), timeout_s=10)
    if result.retryable: ...
    t.close()
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import grpc
import httpx
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

log = logging.getLogger("mltrace_collector.forward")

EXPORT_METHOD = f"/{trace_service_pb2.DESCRIPTOR.services_by_name['TraceService'].full_name}/Export"
"""``/opentelemetry.proto.collector.trace.v1.TraceService/Export`` (what ``TraceServiceStub``
calls); we call it with a bytes pass-through serializer so batches are never re-parsed."""

PROTOCOLS = ("grpc", "http/protobuf")
_GRPC_RETRYABLE = {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}
_HTTP_RETRYABLE = {429, 502, 503, 504}


@dataclass(frozen=True)
class SendResult:
    """Outcome of one export call."""

    ok: bool
    retryable: bool = False
    retry_after_s: float | None = None
    """Server-requested delay (gRPC RetryInfo / HTTP Retry-After), if any."""
    rejected_spans: int = 0
    """OTLP partial success: spans the downstream refused (counted ``failed``)."""
    error: str = ""


class Transport(Protocol):
    """Sends one serialized ``ExportTraceServiceRequest``."""

    def send(self, body: bytes, timeout_s: float) -> SendResult: ...

    def close(self) -> None: ...


def _partial(raw: bytes) -> SendResult:
    try:
        response = ExportTraceServiceResponse.FromString(raw)
    except Exception:  # a body we cannot parse still means HTTP 200: accepted
        return SendResult(ok=True)
    rejected = response.partial_success.rejected_spans
    return SendResult(
        ok=True, rejected_spans=rejected, error=response.partial_success.error_message
    )


def grpc_retry_info(error: grpc.RpcError) -> float | None:
    """The ``google.rpc.RetryInfo`` delay in seconds from a failed call's trailers, if any."""
    trailers: Any = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return float(info.retry_delay.ToNanoseconds()) / 1e9
        if key == "google.rpc.retryinfo-bin":
            info = error_details_pb2.RetryInfo.FromString(value)
            return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


def _bad_endpoint(endpoint: str, problem: str, example: str) -> ValueError:
    """The error for an endpoint a transport cannot use: the value, what is wrong, a fix."""
    return ValueError(
        f"forward endpoint {endpoint!r} {problem}; use e.g. MLTRACE_FORWARD_ENDPOINT={example}"
    )


class GrpcTransport:
    """OTLP/gRPC. ``endpoint``: ``http://host:port`` (plaintext), ``https://host:port`` or
    ``host:port`` (TLS unless ``insecure``); ``ca_file`` overrides the system roots."""

    def __init__(
        self,
        endpoint: str,
        headers: dict[str, str] | None = None,
        insecure: bool = False,
        ca_file: str | None = None,
    ) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else "//" + endpoint)
        if not parts.hostname or not parts.port:
            raise _bad_endpoint(endpoint, "has no host:port", "http://127.0.0.1:4317")
        target = f"{parts.hostname}:{parts.port}"
        options = [
            ("grpc.enable_retries", 0),  # the forwarder retries; no hidden second layer
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if parts.scheme == "http" or (insecure and parts.scheme != "https"):
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            roots = Path(ca_file).read_bytes() if ca_file else None
            creds = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel = grpc.secure_channel(target, creds, options=options)
        self._metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self._export = self._channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=lambda body: body,
            response_deserializer=lambda raw: raw,
        )

    def send(self, body: bytes, timeout_s: float) -> SendResult:
        try:
            raw = self._export(body, timeout=timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            delay = grpc_retry_info(exc)
            retryable = code in _GRPC_RETRYABLE or (
                code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None
            )
            detail = exc.details() if hasattr(exc, "details") else ""
            return SendResult(False, retryable, delay, error=f"gRPC {code.name}: {detail}")
        return _partial(raw)

    def close(self) -> None:
        self._channel.close()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP-date; None if absent/invalid.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpTransport:
    """OTLP/HTTP with protobuf bodies. ``endpoint`` without a path gets ``/v1/traces``."""

    def __init__(
        self,
        endpoint: str,
        headers: dict[str, str] | None = None,
        insecure: bool = False,
        ca_file: str | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad_endpoint(
                endpoint, "is not an http(s) URL", "http://127.0.0.1:4318/v1/traces"
            )
        self.url = endpoint if parts.path not in ("", "/") else endpoint.rstrip("/") + "/v1/traces"
        verify: bool | str = ca_file or not insecure
        self._client = httpx.Client(
            verify=verify,
            headers={"Content-Type": "application/x-protobuf", **(headers or {})},
        )

    def send(self, body: bytes, timeout_s: float) -> SendResult:
        try:
            response = self._client.post(self.url, content=body, timeout=timeout_s)
        except httpx.HTTPError as exc:  # connection refused, reset, timeout: retryable
            return SendResult(False, True, error=f"HTTP {type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return _partial(response.content)
        code = response.status_code
        retryable = code in _HTTP_RETRYABLE
        delay = parse_retry_after(response.headers.get("Retry-After")) if retryable else None
        return SendResult(False, retryable, delay, error=f"HTTP {code}: {response.text[:200]}")

    def close(self) -> None:
        self._client.close()


def open_transport(
    endpoint: str,
    protocol: str,
    headers: dict[str, str] | None = None,
    insecure: bool = False,
    ca_file: str | None = None,
) -> Transport:
    """The transport for ``protocol`` (``grpc`` or ``http/protobuf``)."""
    if protocol == "grpc":
        return GrpcTransport(endpoint, headers, insecure, ca_file)
    if protocol in ("http/protobuf", "http"):
        return HttpTransport(endpoint, headers, insecure, ca_file)
    raise ValueError(
        f"MLTRACE_FORWARD_PROTOCOL={protocol!r} is not supported; use one of {PROTOCOLS}"
    )
