"""What the OTLP receiver tests (test_receivers_grpc.py, test_receivers_http.py) share:
a recording export handler behind a real receiver, the spans the official exporters send,
a self-signed TLS certificate, and small helpers.

Usage (fixtures are bound in the test module, so they override conftest's ``spans``)::

    from tests import support_receivers
    from tests.support_receivers import RecordingHandler, pb_body

    handler, spans, tls_files = (
        support_receivers.handler, support_receivers.spans, support_receivers.tls_files
    )
"""

from __future__ import annotations

import subprocess
import threading
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mltrace_collector.index.ingest import ExportOutcome, Overloaded


class RecordingHandler:
    """ExportHandler that records requests; can throttle, fail or block on demand."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.calls = 0
        self.outcome = ExportOutcome()
        self.overload_times = 0
        self.retry_after_s = 0.05
        self.fail_next = False
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def export(self, request: ExportTraceServiceRequest, raw: bytes | None = None) -> ExportOutcome:
        # the bytes a receiver passes along are the request it decoded, nothing else
        assert raw is None or ExportTraceServiceRequest.FromString(raw) == request
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        with self._lock:
            self.calls += 1
            if self.overload_times > 0:
                self.overload_times -= 1
                raise Overloaded(self.retry_after_s)
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("boom")
            self.requests.append(request)
        return self.outcome

    def spans(self) -> list[Any]:
        return [
            span
            for req in self.requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


@pytest.fixture(scope="module")
def spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("train"):
        with tracer.start_as_current_span("featurize"):
            pass
        with tracer.start_as_current_span("fit"):
            pass
    return list(memory.get_finished_spans())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Self-signed certificate for 127.0.0.1/localhost (``cryptography`` is not installed)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=local"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


def shutdown(exporter: Any) -> None:
    """Exporter ``shutdown`` (untyped in opentelemetry-exporter-otlp-proto-http)."""
    exporter.shutdown()


def pb_body(spans: list[ReadableSpan]) -> bytes:
    body: bytes = encode_spans(spans).SerializeToString()
    return body
