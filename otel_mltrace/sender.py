"""Send one serialized OTLP ``ExportTraceServiceRequest`` to a collector, once, no retries.

The delivery worker decides what a failure means (spool it, or drop it when the collector
says the data itself is bad); the bytes are those kept in the spool, so a replay costs
no re-encoding. gRPC uses ``grpcio`` and OTLP/HTTP ``requests``: both already come with
the official OTLP exporters the SDK depends on.

Example::

    from otel_mltrace.sender import make_sender
    sender = make_sender("http://127.0.0.1:4317", "grpc", headers={}, timeout_s=10)
    outcome = sender.send(payload)
    if not outcome.ok and outcome.retryable: ...   # keep it for later
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlparse

from otel_mltrace.otlp_transport import Transport, transport_settings

_GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class SendOutcome(NamedTuple):
    ok: bool
    retryable: bool
    """False only when the collector rejects the data itself (it would never accept it)."""
    message: str
    rejected: int = 0
    """Accepted request, but this many spans refused (OTLP partial success); ``message`` why."""
    drop_reason: str = ""
    """Not retryable: the reason the spans are dropped under ("": rejected as invalid)."""
    too_large: bool = False
    """Refused for its size (HTTP 413, gRPC "larger than max"): nothing of it was accepted,
    so its halves may be sent instead (``otel_mltrace.request_split``)."""


def _accepted(body: bytes) -> SendOutcome:
    """An accepted request: read the OTLP partial success, if any."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    response = ExportTraceServiceResponse()
    try:
        response.ParseFromString(body)
    except Exception:  # a non-OTLP body from a proxy: the request was still accepted
        return SendOutcome(True, False, "")
    partial = response.partial_success
    return SendOutcome(True, False, partial.error_message, int(partial.rejected_spans))


class Sender(Protocol):
    def send(self, payload: bytes) -> SendOutcome: ...

    def close(self) -> None: ...

    def after_fork(self) -> None:
        """In a forked child: new connections (the parent's sockets are not ours)."""
        ...


def _gzip() -> bool:
    """The standard ``OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION``: ``gzip`` or ``none``."""
    for var in ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"):
        value = os.environ.get(var, "").strip().lower()
        if value in ("gzip", "none"):
            return value == "gzip"
        if value:
            raise ValueError(f"{var}={value!r} is not supported; use gzip or none")
    return False


def headers_from_env() -> dict[str, str]:
    """``MLTRACE_HEADERS``, else the standard ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS``."""
    from otel_mltrace.config import _parse_headers, resolve

    found: dict[str, str] | None = resolve("headers")
    if found:
        return found
    for var in ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        if os.environ.get(var):
            return _parse_headers(os.environ[var])
    return {}


class _Sender:
    """What both senders' constructors share: the export timeout and the TLS settings
    (``transport``, else resolved from the environment); ``_configure`` does the rest."""

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str],
        timeout_s: float,
        transport: Transport | None = None,
    ) -> None:
        self._transport = transport or transport_settings(timeout_s)
        self._timeout = timeout_s
        self._configure(endpoint, headers)

    def _configure(self, endpoint: str, headers: Mapping[str, str]) -> None:
        raise NotImplementedError


class GrpcSender(_Sender):
    def _configure(self, endpoint: str, headers: Mapping[str, str]) -> None:
        import grpc

        self._grpc = grpc
        parsed = urlparse(endpoint)
        if parsed.scheme in ("http", "https") and parsed.netloc:
            target, secure = parsed.netloc, parsed.scheme == "https"
        else:  # host:port, as the official exporter accepts it: TLS unless ..._INSECURE
            target, secure = endpoint, not self._transport.insecure
        self._target, self._secure = target, secure
        self._open()
        self._metadata = tuple((k.lower(), v) for k, v in headers.items())
        self._compression = grpc.Compression.Gzip if _gzip() else None
        self._retryable = {
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.ABORTED,
            grpc.StatusCode.OUT_OF_RANGE,
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DATA_LOSS,
            grpc.StatusCode.UNKNOWN,
            grpc.StatusCode.INTERNAL,
            # kept, not dropped: a wrong token is fixed by configuration, then replayed
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.PERMISSION_DENIED,
        }

    def _open(self) -> None:
        grpc = self._grpc
        if self._secure:
            t = self._transport
            pair = t.client_pair()
            creds = grpc.ssl_channel_credentials(
                Path(t.certificate).read_bytes() if t.certificate else None,
                Path(pair[1]).read_bytes() if pair else None,
                Path(pair[0]).read_bytes() if pair else None,
            )
            self._channel = grpc.secure_channel(self._target, creds)
        else:
            self._channel = grpc.insecure_channel(self._target)
        self._call = self._channel.unary_unary(_GRPC_METHOD)  # bytes in, bytes out

    def after_fork(self) -> None:
        self._open()

    def send(self, payload: bytes) -> SendOutcome:
        try:
            body = self._call(
                payload,
                timeout=self._timeout,
                metadata=self._metadata,
                compression=self._compression,
            )
        except self._grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            name = code.name if code is not None else "error"
            # RESOURCE_EXHAUSTED is also "message larger than max": resending cannot help,
            # sending it in smaller pieces does
            too_large = "larger than max" in (details or "")
            retry = code in self._retryable and not too_large
            return SendOutcome(False, retry, f"gRPC {name}: {details}", too_large=too_large)
        except Exception as exc:  # a grpc bug must not surface in a pipeline
            return SendOutcome(False, True, f"{type(exc).__name__}: {exc}")
        return _accepted(body)

    def close(self) -> None:
        self._channel.close()


class HttpSender(_Sender):
    def _configure(self, endpoint: str, headers: Mapping[str, str]) -> None:
        import requests

        self._requests = requests
        trimmed = endpoint.rstrip("/")
        self._url = trimmed if trimmed.endswith("/v1/traces") else trimmed + "/v1/traces"
        self._headers = {"Content-Type": "application/x-protobuf", **headers}
        self._verify: bool | str = self._transport.certificate or True
        self._cert = self._transport.client_pair()
        self._gzip = _gzip()
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self.after_fork()

    def after_fork(self) -> None:
        self._session = self._requests.Session()
        self._session.headers.update(self._headers)

    def send(self, payload: bytes) -> SendOutcome:
        try:
            body = gzip.compress(payload, compresslevel=6) if self._gzip else payload
            resp = self._session.post(
                self._url, data=body, timeout=self._timeout, verify=self._verify, cert=self._cert
            )
        except Exception as exc:  # connection refused, timeout, TLS: all worth a retry
            return SendOutcome(False, True, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= resp.status_code < 300:
            return _accepted(resp.content)
        message = f"HTTP {resp.status_code}: {_error_text(resp)[:200]}"
        # the data is fine; the collector's body limit is lower. The OTel Collector answers
        # 400 with Go's MaxBytesReader error for a body over its max_request_body_size
        if resp.status_code == 413 or (
            resp.status_code == 400 and "request body too large" in resp.text
        ):
            return SendOutcome(False, False, message, too_large=True)
        return SendOutcome(False, resp.status_code not in (400, 415), message)

    def close(self) -> None:
        self._session.close()


def _error_text(resp: Any) -> str:
    """The message of an OTLP/HTTP error: a protobuf ``google.rpc.Status`` by the spec
    (shown as text it starts with the message's tag bytes), else the body as text."""
    if resp.headers.get("Content-Type", "").startswith("application/x-protobuf"):
        from google.protobuf.message import DecodeError
        from google.rpc.status_pb2 import Status  # comes with the OTLP exporters

        try:
            status = Status.FromString(resp.content)
        except DecodeError:
            return str(resp.text)
        return str(status.message) or str(resp.text)
    return str(resp.text)


def make_sender(
    endpoint: str,
    protocol: str,
    headers: Mapping[str, str] | None,
    timeout_s: float | None = None,
    transport: Transport | None = None,
) -> Sender:
    """A sender to ``endpoint``; ``transport`` (default: resolved from the environment,
    ``otel_mltrace.otlp_transport``) sets TLS and, unless ``timeout_s`` is given, the
    timeout of one export."""
    transport = transport or transport_settings(timeout_s)
    timeout = transport.timeout_s if timeout_s is None else timeout_s
    if protocol == "grpc":
        return GrpcSender(endpoint, headers or {}, timeout, transport)
    if protocol in ("http/protobuf", "http"):
        return HttpSender(endpoint, headers or {}, timeout, transport)
    raise ValueError(f"protocol {protocol!r} is not supported; use 'grpc' or 'http/protobuf'")
