"""OTLP/HTTP trace receiver: ``POST /v1/traces``, binary protobuf or JSON, compressed or not.

Responses follow the OTLP specification ("OTLP/HTTP Response", "Failures", "Bad Data",
"OTLP/HTTP Throttling"); every 4xx/5xx body is a ``google.rpc.Status`` in the request's
encoding (protobuf unless the request was JSON):

- 200 + ``ExportTraceServiceResponse`` (``partial_success`` when spans were rejected);
- 400 undecodable protobuf, invalid JSON / OTLP JSON, corrupt compressed data (with
  ``BadRequest``);
- 401 + ``WWW-Authenticate: Bearer`` without the configured token (RFC 6750 §3);
- 413 body over ``max_body_bytes`` — announced by Content-Length, streamed, or after
  decompression (spec: the limit applies "including after decompression");
- 415 Content-Type other than protobuf/JSON, or a content coding other than those of
  ``codings.SUPPORTED`` — the OTel Collector's set: gzip, deflate, zlib, zstd, snappy
  (block or framed), x-snappy-framed, lz4 — (RFC 9110 §15.5.16 + ``Accept-Encoding`` per
  §12.5.3), counted in ``refusals.REFUSALS``;
- 503 + ``Retry-After`` (whole seconds) when the handler raises ``Overloaded``;
- 400 when the handler raises ``Rejected`` (data the index cannot store);
- 500 when the handler fails unexpectedly (not retryable, like gRPC ``INTERNAL``).

Every refusal is counted by reason in ``refusals.REQUESTS`` (413: ``too_large``, not
``invalid``), shown in ``/healthz`` and ``/metrics``.

Example::

    app = FastAPI()
    app.router.routes.append(otlp_traces_route(handler, max_body_bytes=20 << 20))
    server = start_http_server(app, "127.0.0.1:4318")
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from typing import Any

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from mltrace_collector.index.ingest import ExportHandler, Overloaded, Rejected

from . import codings
from .otlp_json import parse_otlp_json, status_payload, to_otlp_json
from .refusals import REFUSALS, REQUESTS
from .security import bearer_matches, unauthenticated_response, uvicorn_ssl_kwargs

__all__ = ["HttpServer", "create_otlp_http_app", "otlp_traces_route", "start_http_server"]

log = logging.getLogger("mltrace_collector.receivers")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# gRPC code numbers carried in Status.code (informative only, per the spec).
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _INTERNAL, _UNAVAILABLE = 3, 8, 13, 14


class _Reject(Exception):
    """A failure answered with ``status`` and a google.rpc.Status body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int = _INVALID_ARGUMENT,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = message if len(message) <= 500 else message[:500] + "..."  # no body echo
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.field, self.headers = field, headers or {}


def _too_large(limit: int, what: str) -> _Reject:
    return _Reject(413, f"{what} exceeds the limit of {limit} bytes", code=_RESOURCE_EXHAUSTED)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _content_coding(header: str | None) -> str | None:
    try:
        return codings.content_coding(header)
    except codings.Unsupported as exc:
        REFUSALS.add("http", header or "")
        raise _Reject(415, str(exc), headers={"Accept-Encoding": codings.ACCEPT_ENCODING}) from None


async def _read_body(request: Request, coding: str | None, limit: int) -> bytes:
    announced = request.headers.get("content-length")
    if announced is not None:
        if not announced.strip().isdigit():
            raise _Reject(400, f"invalid Content-Length {announced!r}")
        if int(announced) > limit:
            raise _too_large(limit, f"body of {int(announced)} bytes (Content-Length)")
    decoder = codings.decoder_for(coding, limit) if coding else None
    parts: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _too_large(limit, "body")
            if decoder is not None:
                decoder.feed(chunk)
            else:
                parts.append(chunk)
        if decoder is None:
            return b"".join(parts)
        if coding in codings.BUFFERED:  # the whole body at once: off the event loop
            return await run_in_threadpool(decoder.finish)
        return decoder.finish()
    except codings.TooLarge:
        raise _too_large(limit, "decompressed body") from None
    except codings.BadData as exc:
        raise _Reject(400, f"Content-Encoding {coding}: {exc}", field="body") from None


def _decode(body: bytes, as_json: bool) -> ExportTraceServiceRequest:
    if as_json:
        try:
            return parse_otlp_json(body)
        except ValueError as exc:
            raise _Reject(400, str(exc), field="body") from None
    try:
        return ExportTraceServiceRequest.FromString(body)
    except Exception as exc:  # DecodeError, or whatever a malformed message makes upb raise
        message = f"body is not a protobuf ExportTraceServiceRequest: {exc}"
        raise _Reject(400, message, field="body") from None


async def _export(
    handler: ExportHandler, request: ExportTraceServiceRequest, raw: bytes | None
) -> Any:
    try:
        return await run_in_threadpool(handler.export, request, raw)
    except Overloaded as exc:
        retry_after = str(max(0, math.ceil(exc.retry_after_s)))
        raise _Reject(
            503, str(exc), code=_UNAVAILABLE, headers={"Retry-After": retry_after}
        ) from None
    except Rejected as exc:  # this request's data: the sender must not retry it as is
        log.warning("rejected an OTLP/HTTP export: %s", exc)
        raise _Reject(400, str(exc), field="body") from None
    except Exception:
        log.exception("OTLP/HTTP export failed in the handler")
        raise _Reject(500, "internal error while storing spans", code=_INTERNAL) from None


async def _receive(
    request: Request, handler: ExportHandler, limit: int, auth_token: str | None
) -> Response:
    content_type = request.headers.get("content-type")
    media = _media_type(content_type)
    as_json = media == JSON
    peer = f"{request.client.host}:{request.client.port}" if request.client else "?"
    authorization = request.headers.get("authorization")
    if auth_token is not None and not bearer_matches(authorization, auth_token):
        REQUESTS.add("http", 401)
        reason = "wrong bearer token" if authorization else "no bearer token"
        log.warning("rejected OTLP/HTTP export from %s: 401 %s", peer, reason)
        return unauthenticated_response(authorization, content_type)
    try:
        if media not in (PROTOBUF, JSON):
            raise _Reject(
                415,
                f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}",
                headers={"Accept-Post": f"{PROTOBUF}, {JSON}"},
            )
        coding = _content_coding(request.headers.get("content-encoding"))
        body = await _read_body(request, coding, limit)
        outcome = await _export(handler, _decode(body, as_json), None if as_json else body)
    except _Reject as rej:
        REQUESTS.add("http", rej.status)
        level = logging.INFO if rej.status == 503 else logging.WARNING
        log.log(level, "rejected OTLP/HTTP export from %s: %d %s", peer, rej.status, rej.message)
        return Response(
            status_payload(rej.code, rej.message, as_json=as_json, field=rej.field),
            status_code=rej.status,
            headers=rej.headers,
            media_type=JSON if as_json else PROTOBUF,
        )
    except ClientDisconnect:
        log.info("OTLP/HTTP client %s disconnected before sending the whole body", peer)
        return Response(status_code=400)
    response = ExportTraceServiceResponse()
    if outcome.rejected_spans > 0 or outcome.error_message:
        response.partial_success.rejected_spans = outcome.rejected_spans
        response.partial_success.error_message = outcome.error_message
    if as_json:
        return Response(to_otlp_json(response), media_type=JSON)
    return Response(response.SerializeToString(), media_type=PROTOBUF)


def otlp_traces_route(
    handler: ExportHandler,
    *,
    max_body_bytes: int = 64 * 1024 * 1024,
    auth_token: str | None = None,
    path: str = "/v1/traces",
) -> Route:
    """The ``POST /v1/traces`` route, to add to a Starlette/FastAPI app.

    It checks ``auth_token`` itself, so it is safe with or without ``BearerAuthMiddleware``.

    Example::

        app = FastAPI()
        app.router.routes.append(otlp_traces_route(handler, auth_token="s3cret"))
    """

    async def otlp_traces(request: Request) -> Response:
        return await _receive(request, handler, max_body_bytes, auth_token)

    return Route(path, otlp_traces, methods=["POST"], name="otlp_traces")


def create_otlp_http_app(
    handler: ExportHandler,
    *,
    max_body_bytes: int = 64 * 1024 * 1024,
    auth_token: str | None = None,
) -> Starlette:
    """A Starlette app serving only ``POST /v1/traces`` (standalone receiver, tests).

    Example::

        server = start_http_server(create_otlp_http_app(handler), "127.0.0.1:4318")
    """
    route = otlp_traces_route(handler, max_body_bytes=max_body_bytes, auth_token=auth_token)
    return Starlette(routes=[route])


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


class HttpServer:
    """An ASGI app served by uvicorn on a background thread; ``port`` is the bound port."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, port: int) -> None:
        self._server, self._thread, self.port = server, thread, port

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting connections; let in-flight requests finish for up to ``grace`` s.

        Example::

            server.stop(grace=10.0)
        """
        self._server.config.timeout_graceful_shutdown = max(1, math.ceil(grace))
        self._server.should_exit = True
        self._thread.join(grace + 5.0)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5.0)


def _tcp_listener(host: str, port: int, family: socket.AddressFamily) -> socket.socket:
    """A listening socket whose connections get ``TCP_NODELAY``. asyncio sets it only on
    sockets made with ``proto=IPPROTO_TCP``; ``socket.create_server`` makes proto 0, and
    then every response after the first on a kept-alive connection waited ~40 ms (Nagle
    holding the body behind the headers until the client's delayed ACK)."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name == "posix":  # as create_server: on Windows it would allow port theft
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def start_http_server(
    app: ASGIApp,
    address: str = "127.0.0.1:4318",
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    access_log: bool = False,
    startup_timeout: float = 10.0,
) -> HttpServer:
    """Serve ``app`` with uvicorn on ``address`` (port 0 = any free) in a daemon thread.

    The socket is bound here, so a busy port raises ``OSError`` in the caller.

    Example::

        server = start_http_server(app, "0.0.0.0:4318", tls_cert=cert, tls_key=key)
        print(server.port)
        server.stop()
    """
    host, port = _split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = _tcp_listener(host, port, family)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=access_log,
        **uvicorn_ssl_kwargs(tls_cert, tls_key),  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="otlp-http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"HTTP server on {address} did not start (see the log)")
        time.sleep(0.01)
    bound = sock.getsockname()[1]
    log.info("OTLP/HTTP receiver listening on %s (port %d)", address, bound)
    return HttpServer(server, thread, bound)
