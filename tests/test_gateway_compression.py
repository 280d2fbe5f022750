"""The real OpenTelemetry Collector as a gateway in front of ``otel-mltrace serve``, with its
OTLP exporters set to every compression they offer.

One collector process (the build ``scripts/bootstrap.sh`` makes) runs one pipeline per
(exporter, compression): its own OTLP/HTTP receiver on a free loopback port, no processor,
one ``otlp_grpc`` or ``otlp_http`` exporter pointed at the same ``serve`` process. A run
span sent to a pipeline's receiver must then be

* indexed by ``serve`` — every OTLP/HTTP compression, and gRPC gzip/none;
* or, for a gRPC compression grpcio cannot decode (zstd, snappy), refused by gRPC core and
  counted as ``mltrace_receiver_refused_total{transport="grpc"}`` in ``/metrics`` and under
  ``refused_encodings`` in ``/healthz``, with a warning naming the fix in serve's log
  (docs/compression.md). The refusal is an OTel-documented permanent error, so the gateway
  drops the batch: the counted event is what tells an operator.

Skips (saying why) only when the collector build is missing.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.otlp_builders import request, run_span
from tests.serve_process import ServeProcess, serving
from tests.servers.otelcol import OtelcolServer, OtelcolUnavailable, find_otelcol, load_gateway_yaml
from tests.servers.ports import free_port

HTTP_CODINGS = ["none", "gzip", "zstd", "zlib", "deflate", "snappy", "x-snappy-framed", "lz4"]
GRPC_INDEXED = ["none", "gzip"]  # otlp_grpc refuses to start with "deflate"
GRPC_REFUSED = ["zstd", "snappy"]
ROUTES = [("http", c) for c in HTTP_CODINGS] + [("grpc", c) for c in GRPC_INDEXED + GRPC_REFUSED]
WAIT_S = 20.0


def _name(transport: str, coding: str) -> str:
    return f"{transport}-{coding}"


def gateway(serve: ServeProcess) -> dict[str, Any]:
    cfg = load_gateway_yaml()  # the shipped file: extensions and telemetry as deployed
    cfg["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{free_port()}"
    prom = cfg["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    prom["prometheus"].update(host="127.0.0.1", port=free_port())
    cfg["processors"] = {}
    receivers: dict[str, Any] = {}
    exporters: dict[str, Any] = {}
    pipelines: dict[str, Any] = {}
    for transport, coding in ROUTES:
        name = _name(transport, coding)
        receiver = "otlp" if name == "http-none" else f"otlp/{name}"  # OtelcolServer reads otlp
        receivers[receiver] = {
            "protocols": {
                "http": {"endpoint": f"127.0.0.1:{free_port()}"},
                "grpc": {"endpoint": f"127.0.0.1:{free_port()}"},
            }
        }
        if transport == "http":
            exporter: dict[str, Any] = {"endpoint": serve.http_url}
        else:
            exporter = {"endpoint": f"127.0.0.1:{serve.grpc_port}", "tls": {"insecure": True}}
        exporter.update(compression=coding, retry_on_failure={"enabled": False}, timeout="5s")
        exporters[f"otlp_{transport}/{coding}"] = exporter
        pipelines[f"traces/{name}"] = {
            "receivers": [receiver],
            "exporters": [f"otlp_{transport}/{coding}"],
        }
    cfg.update(receivers=receivers, exporters=exporters)
    cfg["service"]["pipelines"] = pipelines
    return cfg


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(tmp_path_factory.mktemp("gateway-compression")) as proc:
        yield proc


@pytest.fixture(scope="module")
def otelcol(serve: ServeProcess) -> Iterator[OtelcolServer]:
    try:
        find_otelcol()
    except OtelcolUnavailable as exc:
        pytest.skip(str(exc))
    with OtelcolServer.start(gateway(serve)) as gw:
        yield gw


def send(gw: OtelcolServer, transport: str, coding: str, rid: str) -> None:
    receiver = "otlp" if _name(transport, coding) == "http-none" else f"otlp/{transport}-{coding}"
    endpoint = gw.config["receivers"][receiver]["protocols"]["http"]["endpoint"]
    body = request([run_span("gateway", run_id=rid)]).SerializeToString()
    req = urllib.request.Request(
        f"http://{endpoint}/v1/traces", body, {"Content-Type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def grpc_refusals(serve: ServeProcess) -> int:
    health = httpx.get(serve.http_url + "/healthz", timeout=30).json()
    return int(sum(health["refused_encodings"].get("grpc", {}).values()))


def metric(serve: ServeProcess, prefix: str) -> float:
    text = httpx.get(serve.http_url + "/metrics", timeout=30).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


@pytest.mark.parametrize(
    "transport,coding", [r for r in ROUTES if r[1] not in GRPC_REFUSED or r[0] == "http"]
)
def test_every_run_is_indexed(
    serve: ServeProcess, otelcol: OtelcolServer, transport: str, coding: str
) -> None:
    rid = f"gw-{transport}-{coding}-{os.urandom(4).hex()}"
    send(otelcol, transport, coding, rid)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        resp = httpx.get(f"{serve.http_url}/api/v1/runs/{rid}", timeout=30)
        if resp.status_code == 200:
            assert resp.json()["run_id"] == rid
            return
        time.sleep(0.1)
    pytest.fail(f"{transport}/{coding}: run not indexed; gateway log:\n{otelcol.log_tail()}")


@pytest.mark.parametrize("coding", GRPC_REFUSED)
def test_grpc_compressions_grpcio_cannot_serve_are_counted(
    serve: ServeProcess, otelcol: OtelcolServer, coding: str
) -> None:
    before = grpc_refusals(serve)
    rid = f"gw-grpc-{coding}-{os.urandom(4).hex()}"
    send(otelcol, "grpc", coding, rid)
    deadline = time.monotonic() + WAIT_S
    while grpc_refusals(serve) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert grpc_refusals(serve) > before, f"refusal not counted; log:\n{otelcol.log_tail()}"
    prefix = 'mltrace_receiver_refused_total{encoding="unsupported",transport="grpc"}'
    assert metric(serve, prefix) >= 1
    assert httpx.get(f"{serve.http_url}/api/v1/runs/{rid}", timeout=30).status_code == 404
    # the gateway names the refusal too (its log line may trail our count a little)
    deadline = time.monotonic() + WAIT_S
    while "grpc-encoding" not in otelcol.log.read_text("utf-8", "replace"):
        assert time.monotonic() < deadline, f"gateway log:\n{otelcol.log_tail()}"
        time.sleep(0.1)
    serve_log = Path(serve.log).read_text("utf-8", "replace")
    assert "compression: gzip" in serve_log  # the warning says which setting to use
