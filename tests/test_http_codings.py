"""Every Content-Encoding an OpenTelemetry Collector's otlphttp exporter sends, against a live
``otel-mltrace serve``: real bodies compressed by the codec libraries, stored verbatim;
compression bombs (zstd, snappy block and framed, lz4, gzip) answered 413 without the
memory; corrupt and truncated bodies answered 400 naming the coding; unknown codings 415
with ``Accept-Encoding`` and counted in ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cramjam
import httpx
import lz4.frame  # type: ignore[import-untyped]
import pytest
import zstandard
from google.rpc import status_pb2

from tests.otlp_builders import request, run_span
from tests.serve_process import ServeProcess

MAX_BODY = 1 << 20
PB = {"Content-Type": "application/x-protobuf"}

COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # the zlib format, as Go's compress/zlib (OTel's "deflate")
    "zlib": zlib.compress,
    "zstd": lambda b: zstandard.ZstdCompressor(write_checksum=True).compress(b),
    "snappy": lambda b: bytes(cramjam.snappy.compress_raw(b)),  # block format
    "x-snappy-framed": lambda b: bytes(cramjam.snappy.compress(b)),
    "lz4": lambda b: bytes(lz4.frame.compress(b)),
}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    base = tmp_path_factory.mktemp("codings")
    proc = ServeProcess.start(
        str(base / "c.db"), base / "serve.log", extra_args=["--max-body-bytes", str(MAX_BODY)]
    )
    try:
        yield proc
        assert proc.terminate() == 0
    finally:
        proc.kill()


def post(serve: ServeProcess, body: bytes, coding: str) -> httpx.Response:
    headers = {**PB, "Content-Encoding": coding}
    return httpx.post(serve.http_url + "/v1/traces", content=body, headers=headers, timeout=60)


def message(resp: httpx.Response) -> str:
    return str(status_pb2.Status.FromString(resp.content).message)


def run_body(component: str) -> tuple[str, bytes]:
    rid = f"{component}-{os.urandom(6).hex()}"
    inputs = [f"s3://bucket/{component}/{i}.parquet@sha256:{'ab' * 32}" for i in range(50)]
    return rid, request([run_span(component, run_id=rid, inputs=inputs)]).SerializeToString()


def stored_run(serve: ServeProcess, rid: str) -> Any:
    resp = httpx.get(f"{serve.http_url}/api/v1/runs/{rid}", timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("coding", [*COMPRESS, "snappy-framed-as-snappy", "x-gzip"])
def test_each_coding_is_stored(serve: ServeProcess, coding: str) -> None:
    rid, body = run_body("codings")
    if coding == "snappy-framed-as-snappy":  # what OTel Collectors before v0.125 sent
        wire, coding = COMPRESS["x-snappy-framed"](body), "snappy"
    elif coding == "x-gzip":
        wire = gzip.compress(body)
    else:
        wire = COMPRESS[coding](body)
    assert wire != body
    resp = post(serve, wire, coding)
    assert resp.status_code == 200, (coding, resp.status_code, resp.content)
    run = stored_run(serve, rid)
    assert run["run_id"] == rid and len(run["inputs"]) == 50


@pytest.mark.parametrize("coding", ["zstd", "snappy", "x-snappy-framed", "lz4", "gzip", "zlib"])
def test_compression_bombs_get_413(serve: ServeProcess, coding: str) -> None:
    bomb = COMPRESS[coding](b"\x00" * (MAX_BODY * 16))  # 16 MiB of zeros
    assert len(bomb) < MAX_BODY  # fits on the wire, only its inflated size is over
    resp = post(serve, bomb, coding)
    assert resp.status_code == 413, (coding, resp.status_code)
    assert str(MAX_BODY) in message(resp) and "decompressed" in message(resp)
    assert serve.healthy()


@pytest.mark.parametrize("coding", [c for c in COMPRESS if c != "snappy"])
def test_truncated_bodies_get_400(serve: ServeProcess, coding: str) -> None:
    _, body = run_body("truncated")
    resp = post(serve, COMPRESS[coding](body)[:-9], coding)
    assert resp.status_code == 400, (coding, resp.status_code)
    assert f"Content-Encoding {coding}" in message(resp) and "truncated" in message(resp)


@pytest.mark.parametrize("coding", list(COMPRESS))
def test_garbage_gets_400_naming_the_coding(serve: ServeProcess, coding: str) -> None:
    resp = post(serve, b"\x07this is not compressed at all" * 20, coding)
    assert resp.status_code == 400, (coding, resp.status_code)
    assert f"Content-Encoding {coding}" in message(resp)


def test_unknown_coding_is_refused_and_counted(serve: ServeProcess) -> None:
    before = httpx.get(serve.http_url + "/healthz", timeout=30).json()["refused_encodings"]
    _, body = run_body("brotli")
    for _ in range(2):
        resp = post(serve, body, "br")
        assert resp.status_code == 415
        assert "zstd" in message(resp) and "lz4" in message(resp)
        accepted = resp.headers["Accept-Encoding"]
        assert all(c in accepted for c in COMPRESS)
    after = httpx.get(serve.http_url + "/healthz", timeout=30).json()["refused_encodings"]
    assert after["http"]["br"] == before.get("http", {}).get("br", 0) + 2
    metrics = httpx.get(serve.http_url + "/metrics", timeout=30).text
    line = 'mltrace_receiver_refused_total{encoding="br",transport="http"}'
    assert any(m.startswith(line) and float(m.split()[-1]) >= 2 for m in metrics.splitlines())


def test_log_names_refusals(serve: ServeProcess) -> None:
    log = Path(serve.log).read_text("utf-8", "replace")
    assert "415 unsupported Content-Encoding 'br'" in log


def _refused(serve: ServeProcess) -> dict[str, int]:
    health = httpx.get(serve.http_url + "/healthz", timeout=30).json()
    return dict(health["refused_requests"].get("http", {}))


def test_too_large_bodies_are_counted_as_too_large_not_invalid(serve: ServeProcess) -> None:
    """A body over the limit and a compression bomb are counted under ``too_large`` in
    /healthz and /metrics, apart from data that is not OTLP (``invalid``)."""
    before = _refused(serve)
    bomb = gzip.compress(b"\x00" * (MAX_BODY * 16))
    assert post(serve, bomb, "gzip").status_code == 413
    big = httpx.post(serve.http_url + "/v1/traces", content=b"\0" * (MAX_BODY + 1), headers=PB)
    assert big.status_code == 413
    assert post(serve, b"\x07not gzip at all" * 20, "gzip").status_code == 400
    after = _refused(serve)
    assert after.get("too_large", 0) == before.get("too_large", 0) + 2, (before, after)
    assert after.get("invalid", 0) == before.get("invalid", 0) + 1, (before, after)
    metrics = httpx.get(serve.http_url + "/metrics", timeout=30).text
    line = 'mltrace_receiver_requests_refused_total{reason="too_large",transport="http"}'
    assert any(m.startswith(line) and float(m.split()[-1]) >= 2 for m in metrics.splitlines())
