"""The OTLP/HTTP receiver on a real uvicorn server and its OTLP/JSON codec, driven by the
official OTLP HTTP exporter and raw HTTP clients: protobuf and JSON bodies, gzip, status
bodies for bad requests, body limits, throttling with Retry-After, bearer auth (the
middleware too), TLS and a graceful stop that drains in-flight requests.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mltrace_collector.index.ingest import ExportOutcome
from mltrace_collector.service.receivers import (
    BearerAuthMiddleware,
    create_otlp_http_app,
    parse_otlp_json,
    start_http_server,
    to_otlp_json,
)
from tests import support_receivers
from tests.support_receivers import RecordingHandler, pb_body, shutdown

PB = {"content-type": "application/x-protobuf"}
JS = {"content-type": "application/json"}
TRACE_HEX = "5B8EFFF798038103D269B633813FC60C"
SPAN_HEX = "EEE19B7EC3C1B174"

# Shared with the other receiver tests (tests/support_receivers.py); bound here so that this
# module's `spans` (module-scoped ReadableSpans) overrides conftest's SDK-level `spans`.
handler, spans, tls_files = (
    support_receivers.handler,
    support_receivers.spans,
    support_receivers.tls_files,
)


@pytest.fixture
def http_url(handler: RecordingHandler) -> Iterator[Callable[..., str]]:
    """Starts the OTLP/HTTP app under a real uvicorn; returns the /v1/traces URL."""
    stops: list[Callable[[], None]] = []

    def start(tls: tuple[str, str] | None = None, **kwargs: Any) -> str:
        app = create_otlp_http_app(handler, **kwargs)
        cert, key = tls or (None, None)
        server = start_http_server(app, "127.0.0.1:0", tls_cert=cert, tls_key=key)
        stops.append(lambda: server.stop(1.0))
        scheme = "https" if tls else "http"
        return f"{scheme}://127.0.0.1:{server.port}/v1/traces"

    yield start
    for stop in stops:
        stop()


def assert_http_serving(url: str, spans: list[ReadableSpan]) -> None:
    assert httpx.post(url, content=pb_body(spans), headers=PB).status_code == 200


def status_of(response: httpx.Response) -> Any:
    if response.headers["content-type"].startswith("application/json"):
        return json.loads(response.content)
    return status_pb2.Status.FromString(response.content)


def otlp_json_body(**span: Any) -> bytes:
    base = {"traceId": TRACE_HEX, "spanId": SPAN_HEX, "name": "train", "kind": 1}
    base.update(span)
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [base]}], "futureField": 1}]}
    return json.dumps(body).encode()


# --- OTLP/JSON codec ---------------------------------------------------------------------


def test_json_round_trip_uses_hex_ids(spans: list[ReadableSpan]) -> None:
    request = encode_spans(spans)
    encoded = to_otlp_json(request)
    first = json.loads(encoded)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    ctx = spans[0].context
    assert ctx is not None
    assert first["traceId"] == format(ctx.trace_id, "032x")
    assert first["spanId"] == format(ctx.span_id, "016x")
    assert isinstance(first["kind"], int)
    assert parse_otlp_json(encoded) == request


def test_json_accepts_enum_names_unknown_fields_and_string_ints() -> None:
    link = {"traceId": TRACE_HEX.lower(), "spanId": SPAN_HEX, "unknown": True}
    request = parse_otlp_json(
        otlp_json_body(
            kind="SPAN_KIND_SERVER", startTimeUnixNano="1700000000000000001", links=[link]
        )
    )
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == TRACE_HEX.lower()
    assert span.links[0].span_id.hex() == SPAN_HEX.lower()
    assert span.kind == 2 and span.start_time_unix_nano == 1700000000000000001
    assert span.parent_span_id == b""


@pytest.mark.parametrize(
    ("span", "needle"),
    [
        ({"traceId": "zz" * 16}, "traceId"),
        ({"spanId": "abcd"}, "16 hex digits"),
        ({"parentSpanId": "ab cd ef 01 23 45 67 89"}, "parentSpanId"),
        ({"traceId": 12}, "hex string"),
        ({"links": [{"spanId": "00" * 9}]}, "links[0].spanId"),
        ({"startTimeUnixNano": "soon"}, "startTimeUnixNano"),
    ],
)
def test_json_rejects_bad_ids_with_the_field_named(span: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_otlp_json(otlp_json_body(**span))
    assert needle in str(info.value)


# --- OTLP/HTTP ---------------------------------------------------------------------------


def test_http_official_exporter_gzip_and_partial_success(
    http_url: Callable[..., str], handler: RecordingHandler, spans: list[ReadableSpan]
) -> None:
    url = http_url()
    exporter = HttpExporter(endpoint=url, timeout=3, compression=Compression.Gzip)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    shutdown(exporter)
    assert len(handler.spans()) == len(spans)
    ok = httpx.post(url, content=pb_body(spans), headers=PB)
    assert ok.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(ok.content).HasField("partial_success")
    handler.outcome = ExportOutcome(rejected_spans=2, error_message="2 spans lack a run id")
    response = httpx.post(url, content=pb_body(spans), headers=PB)
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert (response.status_code, partial.rejected_spans) == (200, 2)
    response = httpx.post(url, content=to_otlp_json(encode_spans(spans)), headers=JS)
    assert response.headers["content-type"] == "application/json"
    assert response.status_code == 200 and response.json() == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "2 spans lack a run id"}
    }


def test_http_otlp_json_with_hex_ids(
    http_url: Callable[..., str], handler: RecordingHandler
) -> None:
    url = http_url()
    headers = {"content-type": "application/json; charset=utf-8"}
    response = httpx.post(url, content=otlp_json_body(parentSpanId=""), headers=headers)
    assert response.status_code == 200 and response.json() == {}
    span = handler.spans()[0]
    assert (span.trace_id.hex(), span.span_id.hex()) == (TRACE_HEX.lower(), SPAN_HEX.lower())
    gz = {**JS, "content-encoding": "gzip"}
    assert httpx.post(url, content=gzip.compress(otlp_json_body()), headers=gz).status_code == 200
    assert httpx.post(url, content=b"{}", headers=JS).status_code == 200  # empty is success
    assert len(handler.spans()) == 2


@pytest.mark.parametrize(
    ("content", "headers", "status", "needle"),
    [
        (b"this is not protobuf", PB, 400, "not a protobuf"),
        (b"truncated", PB, 400, "not a protobuf"),
        (b"{not json", JS, 400, "not valid JSON"),
        (b"[1, 2]", JS, 400, "JSON object"),
        (otlp_json_body(traceId="XYZ"), JS, 400, "traceId"),
        (b"{}", {"content-type": "text/plain"}, 415, "Content-Type"),
        (b"", {}, 415, "Content-Type"),
        (b"{}", {**JS, "content-encoding": "br"}, 415, "Content-Encoding"),
        (b"not gzip", {**PB, "content-encoding": "gzip"}, 400, "compressed"),
        (gzip.compress(b"{}")[:-12], {**JS, "content-encoding": "gzip"}, 400, "truncated"),
    ],
)
def test_http_bad_requests_get_status_bodies(
    http_url: Callable[..., str],
    spans: list[ReadableSpan],
    content: bytes,
    headers: dict[str, str],
    status: int,
    needle: str,
) -> None:
    url = http_url()
    if content == b"truncated":
        content = pb_body(spans)[:-7]
    response = httpx.post(url, content=content, headers=headers)
    assert response.status_code == status
    body = status_of(response)
    assert needle in (body["message"] if isinstance(body, dict) else body.message)
    if status == 415 and "content-encoding" in headers:
        assert "gzip" in response.headers["accept-encoding"]
    assert_http_serving(url, spans)


def test_http_body_limits(http_url: Callable[..., str], spans: list[ReadableSpan]) -> None:
    url = http_url(max_body_bytes=64 * 1024)
    big = b"\0" * 100_000
    assert httpx.post(url, content=big, headers=PB).status_code == 413  # Content-Length

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"\0" * 10_000

    assert httpx.post(url, content=chunks(), headers=PB).status_code == 413  # chunked
    bomb = gzip.compress(b"\0" * 10_000_000)  # ~10 KB on the wire, 10 MB inflated
    response = httpx.post(url, content=bomb, headers={**PB, "content-encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed" in status_pb2.Status.FromString(response.content).message
    assert_http_serving(url, spans)


def test_http_overloaded_and_handler_failure(
    http_url: Callable[..., str], handler: RecordingHandler, spans: list[ReadableSpan]
) -> None:
    url = http_url()
    handler.overload_times, handler.retry_after_s = 1, 7.5
    response = httpx.post(url, content=pb_body(spans), headers=PB)
    assert (response.status_code, response.headers["retry-after"]) == (503, "8")
    handler.fail_next = True
    response = httpx.post(url, content=b"{}", headers=JS)
    assert response.status_code == 500 and "internal" in response.json()["message"]
    # The official exporter waits Retry-After (rounded up to 1 s) and retries.
    handler.overload_times, handler.retry_after_s = 1, 0.2
    exporter = HttpExporter(endpoint=url, timeout=5)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    shutdown(exporter)
    assert handler.calls == 4 and len(handler.requests) == 1


def test_http_bearer_token(
    http_url: Callable[..., str], handler: RecordingHandler, spans: list[ReadableSpan]
) -> None:
    url = http_url(auth_token="s3cret")
    for auth in ({}, {"authorization": "Bearer nope"}, {"authorization": "Basic s3cret"}):
        response = httpx.post(url, content=pb_body(spans), headers={**PB, **auth})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert status_pb2.Status.FromString(response.content).code == 16
    denied = HttpExporter(endpoint=url, timeout=3)
    assert denied.export(spans) == SpanExportResult.FAILURE
    allowed = HttpExporter(endpoint=url, timeout=3, headers={"authorization": "Bearer s3cret"})
    assert allowed.export(spans) == SpanExportResult.SUCCESS
    shutdown(denied)
    shutdown(allowed)
    assert handler.calls == 1


def test_http_tls(
    http_url: Callable[..., str],
    handler: RecordingHandler,
    spans: list[ReadableSpan],
    tls_files: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override the exporter's session.verify.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    url = http_url(tls=tls_files)
    exporter = HttpExporter(endpoint=url, timeout=3, certificate_file=tls_files[0])
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    shutdown(exporter)
    assert len(handler.spans()) == len(spans)


def test_http_stop_drains_in_flight_requests(
    handler: RecordingHandler, spans: list[ReadableSpan]
) -> None:
    server = start_http_server(create_otlp_http_app(handler), "127.0.0.1:0")
    handler.gate = threading.Event()
    results: list[int] = []
    url = f"http://127.0.0.1:{server.port}/v1/traces"
    client = threading.Thread(
        target=lambda: results.append(
            httpx.post(url, content=pb_body(spans), headers=PB).status_code
        )
    )
    client.start()
    assert handler.entered.wait(5)
    stopper = threading.Thread(target=server.stop, args=(5.0,))
    stopper.start()
    time.sleep(0.2)
    handler.gate.set()
    client.join(10)
    stopper.join(10)
    assert results == [200] and not stopper.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, content=pb_body(spans), headers=PB)


def test_bearer_middleware_guards_everything_but_exempt_paths() -> None:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/healthz", ok), Route("/api/v1/runs", ok)])
    client = TestClient(BearerAuthMiddleware(app, token="s3cret"))
    assert client.get("/healthz").status_code == 200
    denied = client.get("/api/v1/runs", headers={"authorization": "Bearer nope"})
    assert denied.status_code == 401 and denied.json()["message"] == "invalid bearer token"
    assert 'error="invalid_token"' in denied.headers["www-authenticate"]
    allowed = client.get("/api/v1/runs", headers={"authorization": "bearer s3cret"})
    assert allowed.status_code == 200
    assert TestClient(BearerAuthMiddleware(app, token=None)).get("/api/v1/runs").status_code == 200
