"""What a ``grpc-encoding`` grpcio cannot decode does to a live ``otel-mltrace serve``.

A raw HTTP/2 client (the ``h2`` library, so the test does not need the OTel Collector
build) sends one OTLP/gRPC Export exactly as a gRPC client with that compression would:
``grpc-encoding`` header, compressed-flag message. ``gzip`` (control) is indexed; ``zstd``
and ``snappy`` are refused by gRPC core before Python runs — the client sees gRPC core's
``INTERNAL`` / stream error — and serve counts each refusal in ``/healthz`` and
``/metrics`` and logs the exporter setting to use (docs/compression.md).
"""

from __future__ import annotations

import gzip
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cramjam
import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import zstandard

from tests.otlp_builders import request, run_span
from tests.serve_process import ServeProcess, serving

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "snappy": lambda b: bytes(cramjam.snappy.compress_raw(b)),
}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(tmp_path_factory.mktemp("grpc-encoding")) as proc:
        yield proc


def raw_export(port: int, encoding: str, body: bytes) -> dict[str, str]:
    """One unary call over a fresh HTTP/2 connection; response headers + trailers, or
    ``{"reset": code}`` when the server reset the stream."""
    payload = COMPRESS[encoding](body)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn.initiate_connection()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", EXPORT),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-encoding", encoding),
            ("grpc-accept-encoding", "identity,gzip"),
        ]
        conn.send_headers(1, headers)
        conn.send_data(1, struct.pack(">BI", 1, len(payload)) + payload, end_stream=True)
        sock.sendall(conn.data_to_send())
        answer: dict[str, str] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    answer.update(
                        (k.decode() if isinstance(k, bytes) else k,
                         v.decode() if isinstance(v, bytes) else v)
                        for k, v in event.headers
                    )  # fmt: skip
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamReset):
                    answer["reset"] = str(event.error_code)
                    return answer
                if isinstance(event, h2.events.StreamEnded):
                    return answer
            sock.sendall(conn.data_to_send())
        return answer


def refused(serve: ServeProcess) -> int:
    health = httpx.get(serve.http_url + "/healthz", timeout=30).json()
    return int(health["refused_encodings"].get("grpc", {}).get("unsupported", 0))


def test_gzip_control_is_indexed(serve: ServeProcess) -> None:
    rid = f"raw-gzip-{os.urandom(4).hex()}"
    answer = raw_export(
        serve.grpc_port, "gzip", request([run_span("raw", run_id=rid)]).SerializeToString()
    )
    assert answer.get("grpc-status") == "0", answer
    assert httpx.get(f"{serve.http_url}/api/v1/runs/{rid}", timeout=30).status_code == 200


@pytest.mark.parametrize("encoding", ["zstd", "snappy"])
def test_unsupported_encoding_is_refused_counted_and_explained(
    serve: ServeProcess, encoding: str
) -> None:
    before = refused(serve)
    rid = f"raw-{encoding}-{os.urandom(4).hex()}"
    answer = raw_export(
        serve.grpc_port, encoding, request([run_span("raw", run_id=rid)]).SerializeToString()
    )
    # gRPC core's own answer (fixed text): INTERNAL, "Error parsing 'grpc-encoding' metadata"
    assert answer.get("grpc-status") == "13", answer
    assert "grpc-encoding" in answer.get("grpc-message", ""), answer
    deadline = time.monotonic() + 10
    while refused(serve) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refused(serve) == before + 1
    metrics = httpx.get(serve.http_url + "/metrics", timeout=30).text
    assert 'mltrace_receiver_refused_total{encoding="unsupported",transport="grpc"}' in metrics
    assert httpx.get(f"{serve.http_url}/api/v1/runs/{rid}", timeout=30).status_code == 404
    log = Path(serve.log).read_text("utf-8", "replace")
    assert "set 'compression: gzip'" in log
