"""No run lost to a collector's body limit: requests refused as too large are split.

A collector with a body limit below the SDK's request cap (``otel-mltrace serve`` with a
small ``MLTRACE_MAX_BODY_BYTES``, an OTel Collector with a small receive limit) answers
HTTP 413 / gRPC ``RESOURCE_EXHAUSTED`` "larger than max"; the SDK dropped every such batch.
It now sends the halves (recursively), learns the limit, and drops only a single span that
is larger than the limit alone, saying so. Real components: ``otel-mltrace serve`` child
processes (tests/serve_process.py) and the OpenTelemetry Collector build.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import otel_mltrace as mlt
from otel_mltrace.metricdefs import INGEST_SPANS
from otel_mltrace.request_split import SizeLimit, limit_from_message, split_request
from tests.otlp_builders import chunk_span, request, run_span
from tests.serve_process import ServeProcess
from tests.servers.otelcol import OtelcolServer, OtelcolUnavailable, find_otelcol, load_gateway_yaml
from tests.servers.ports import free_port
from tests.support_index import runs_in

pytestmark = pytest.mark.usefixtures("no_start_records")  # exact span counts (conftest)

LIMIT = 2048  # bytes: a handful of run spans per request
PROTOCOLS = ["grpc", "http/protobuf"]


def _runs(n: int, blob: int = 0, start: int = 0) -> None:
    for i in range(start, start + n):
        params = {"blob": "x" * blob} if blob else {}
        with mlt.run("step", outputs=[f"s3://bucket/{i}.parquet"], params=params):
            pass


def _limited(tmp_path: Path, ports: tuple[int, int] | None = None) -> ServeProcess:
    return ServeProcess.start(
        str(tmp_path / "c.db"), tmp_path / "serve.log",
        env={"MLTRACE_MAX_BODY_BYTES": str(LIMIT)}, ports=ports,
    )  # fmt: skip


def _endpoint(serve: ServeProcess, protocol: str) -> str:
    return serve.grpc_url if protocol == "grpc" else serve.http_url


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_batch_over_the_collectors_body_limit_arrives_split(
    tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """200 runs in one batch, refused whole: all of them indexed, the report says split."""
    caplog.set_level(logging.WARNING, logger="otel_mltrace")
    serve = _limited(tmp_path)
    try:
        mlt.configure(endpoint=_endpoint(serve, protocol), protocol=protocol,
                      spool_dir=str(tmp_path / "spool"))  # fmt: skip
        _runs(200)
        first = mlt.flush(timeout_s=60)
        assert first and (first.delivered, first.dropped, first.spooled) == (200, 0, 0), first
        assert first.split >= 1, first
        n = first.split
        said = f"{n} requests split since configure() ({n} since the previous report) to fit"
        assert said in first.summary(), first.summary()
        warned = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
        assert len(warned) == 1 and "MLTRACE_MAX_BODY_BYTES" in warned[0], warned

        # the limit is learned: the next batch is cut to fit before it is sent
        _runs(200, start=200)
        second = mlt.shutdown(timeout_s=60)
        assert second and (second.delivered, second.dropped, second.split) == (200, 0, 0), second
        exit_line = caplog.records[-1].getMessage()  # a setting to fix: said at exit too
        assert f"{first.split} requests split since configure() to fit" in exit_line, exit_line
        assert runs_in(tmp_path / "c.db") == 400
        assert _spans_received(serve) == 400  # no piece sent twice
    finally:
        serve.terminate()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_only_a_single_span_over_the_limit_is_dropped_and_named(
    tmp_path: Path, protocol: str
) -> None:
    serve = _limited(tmp_path)
    try:
        mlt.configure(endpoint=_endpoint(serve, protocol), protocol=protocol,
                      spool_dir=str(tmp_path / "spool"))  # fmt: skip
        _runs(30)
        _runs(1, blob=3 * LIMIT, start=30)  # larger than the limit on its own
        _runs(30, start=31)
        report = mlt.shutdown(timeout_s=60)
        assert (report.delivered, report.dropped, report.pending_in_spool) == (60, 1, 0), report
        (reason,) = report.dropped_reasons
        assert f"a single span larger than its limit of {LIMIT} bytes" in reason, reason
        assert "MLTRACE_MAX_BODY_BYTES" in reason and "max_recv_msg_size_mib" in reason
        assert reason in report.summary()
        assert runs_in(tmp_path / "c.db") == 60
    finally:
        serve.terminate()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_oversized_spooled_request_is_replayed_split(tmp_path: Path, protocol: str) -> None:
    """Runs spooled while the collector was down (one request of 200 runs) reach a collector
    with a small body limit once it is up: split on replay, each piece sent once."""
    ports = (free_port(), free_port())
    endpoint = f"http://127.0.0.1:{ports[0] if protocol == 'grpc' else ports[1]}"
    spool = str(tmp_path / "spool")
    mlt.configure(endpoint=endpoint, protocol=protocol, spool_dir=spool)
    _runs(200)
    down = mlt.shutdown(timeout_s=10)
    assert (down.delivered, down.pending_in_spool, down.dropped) == (0, 200, 0), down
    files = list((tmp_path / "spool").glob("*/*.otlp"))
    assert len(files) == 1 and files[0].stat().st_size > 10 * LIMIT, files

    serve = _limited(tmp_path, ports=ports)
    try:
        mlt.configure(endpoint=endpoint, protocol=protocol, spool_dir=spool)
        report = mlt.shutdown(timeout_s=60)
        assert report and (report.delivered, report.replayed, report.dropped) == (200, 200, 0)
        assert report.split >= 1 and report.pending_in_spool == 0, report
        assert not list((tmp_path / "spool").glob("*/*.otlp"))
        assert runs_in(tmp_path / "c.db") == 200
        # each piece sent exactly once: serve counts spans it received, duplicates included
        assert _spans_received(serve) == 200
    finally:
        serve.terminate()


def _spans_received(serve: ServeProcess) -> float:
    """Spans serve received, every outcome (a duplicate counts again)."""
    text = httpx.get(serve.http_url + "/metrics", timeout=30).text
    prefix = INGEST_SPANS + "_total{"
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(prefix))


def _otelcol_in_front(serve: ServeProcess) -> dict[str, Any]:
    """A plain OTel Collector: its otlp receiver limited to 1 MiB (gRPC) and 1 MiB (HTTP
    body), forwarding to ``serve`` unlimited."""
    cfg = load_gateway_yaml()
    cfg["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{free_port()}"
    prom = cfg["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    prom["prometheus"].update(host="127.0.0.1", port=free_port())
    cfg["processors"] = {}
    cfg["receivers"] = {
        "otlp": {
            "protocols": {
                "grpc": {"endpoint": f"127.0.0.1:{free_port()}", "max_recv_msg_size_mib": 1},
                "http": {"endpoint": f"127.0.0.1:{free_port()}", "max_request_body_size": 1 << 20},
            }
        }
    }
    cfg["exporters"] = {
        "otlp_grpc/serve": {
            "endpoint": f"127.0.0.1:{serve.grpc_port}",
            "tls": {"insecure": True},
            "retry_on_failure": {"enabled": False},
            "timeout": "10s",
        }
    }
    cfg["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "exporters": ["otlp_grpc/serve"]}
    }
    return cfg


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_otel_collector_with_a_small_receive_limit_gets_every_run(
    tmp_path: Path, protocol: str
) -> None:
    """A third-party peer: the OTel Collector refuses a 2.5 MiB request over its 1 MiB
    limit; the SDK splits it and every run arrives (through it) in the index."""
    try:
        find_otelcol()
    except OtelcolUnavailable as exc:
        pytest.skip(str(exc))
    serve = ServeProcess.start(str(tmp_path / "c.db"), tmp_path / "serve.log")
    try:
        with OtelcolServer.start(_otelcol_in_front(serve)) as gw:
            endpoint = gw.grpc_endpoint if protocol == "grpc" else gw.http_endpoint
            mlt.configure(endpoint=endpoint, protocol=protocol, spool_dir=str(tmp_path / "sp"))
            _runs(200, blob=12_000)  # about 2.5 MiB in one request: under the SDK's 3 MiB
            report = mlt.shutdown(timeout_s=60)
            assert report and (report.delivered, report.dropped) == (200, 0), report
            assert report.split >= 1, report
            deadline = time.monotonic() + 30  # the gateway forwards asynchronously
            while runs_in(tmp_path / "c.db") < 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert runs_in(tmp_path / "c.db") == 200
            assert _spans_received(serve) == 200  # the third party got each piece once
    finally:
        serve.terminate()


def test_halves_keep_every_span_under_its_own_resource_and_scope() -> None:
    """A run span and its record chunk spans may land in different halves: each keeps its
    resource and scope, and together the halves are the request, in order."""
    runs = [run_span("a", run_id=f"r{i}") for i in range(3)]
    first = request([runs[0], chunk_span(runs[0], "r0", {"s3://b/o": ["1", "2"]})], "svc-a")
    second = request(runs[1:], "svc-b")
    whole = first.__class__()
    whole.resource_spans.extend([*first.resource_spans, *second.resource_spans])
    halves = split_request(whole.SerializeToString())
    assert [n for _, n in halves] == [2, 2]
    spans: list[tuple[str, str, bytes]] = []
    for payload, _ in halves:
        part = whole.__class__.FromString(payload)
        for rs in part.resource_spans:
            service = rs.resource.attributes[0].value.string_value
            for ss in rs.scope_spans:
                assert ss.scope.name == "tests.otlp_builders"
                spans += [(service, sp.name, sp.span_id) for sp in ss.spans]
    expected = [
        (rs.resource.attributes[0].value.string_value, sp.name, sp.span_id)
        for rs in whole.resource_spans
        for ss in rs.scope_spans
        for sp in ss.spans
    ]
    assert spans == expected
    one = request(runs[:1]).SerializeToString()
    assert split_request(one) == [(one, 1)]


def test_the_learned_limit_only_goes_down_and_has_a_floor() -> None:
    assert limit_from_message("gRPC RESOURCE_EXHAUSTED: Received message larger than max "
                              "(55755 vs. 2048)") == 2048  # fmt: skip
    assert limit_from_message("HTTP 413: body of 9 bytes exceeds the limit of 4096 bytes") == 4096
    assert limit_from_message("HTTP 400: http: request body too large") is None
    limit = SizeLimit()
    assert limit.bytes(3 << 20) == 3 << 20 and not limit.learned
    limit.refused(10_000)  # named nothing: just under what was refused
    assert limit.bytes(3 << 20) == 9_999
    limit.refused(50_000, named=40_000)  # a larger refusal does not raise it
    assert limit.bytes(3 << 20) == 9_999
    limit.refused(5_000, named=100)
    assert limit.bytes(3 << 20) == 1024 and limit.named == 100  # the floor


def test_record_chunks_split_from_their_runs_are_all_indexed(tmp_path: Path) -> None:
    serve = _limited(tmp_path)
    try:
        mlt.configure(endpoint=serve.grpc_url, spool_dir=str(tmp_path / "spool"))
        for i in range(20):
            with mlt.run("step") as run:
                out = run.add_output(f"s3://bucket/{i}.csv")
                run.log_records(out, [f"{i}-{k}" for k in range(40)])
        report = mlt.shutdown(timeout_s=60)
        assert report and report.dropped == 0 and report.split >= 1, report
    finally:
        serve.terminate()
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 800
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 20


def test_an_unreadable_oversized_spool_file_is_dropped_with_its_reason(tmp_path: Path) -> None:
    """A damaged spool file the collector refuses as too large cannot be split: dropped
    and counted under its own reason, not retried forever, not called a span."""
    from otel_mltrace.spool import Spool

    serve = _limited(tmp_path)
    try:
        spool = Spool.for_endpoint(
            str(tmp_path / "spool"), serve.http_url, "http/protobuf", 1 << 20
        )
        assert spool.put(b"\xff" * (4 * LIMIT), spans=2)
        mlt.configure(endpoint=serve.http_url, protocol="http/protobuf",
                      spool_dir=str(tmp_path / "spool"))  # fmt: skip
        _runs(3)
        report = mlt.shutdown(timeout_s=60)
        assert (report.delivered, report.dropped, report.pending_in_spool) == (3, 2, 0), report
        assert report.dropped_reasons == {
            "too large for the collector, and not a readable OTLP request to split": 2
        }
    finally:
        serve.terminate()


def test_an_http_refusal_is_reported_by_its_message_not_its_protobuf_bytes(
    tmp_path: Path,
) -> None:
    """OTLP/HTTP error bodies are a protobuf ``google.rpc.Status``: shown as text, the
    reason read "HTTP 413: D" + the message (the tag and length bytes of its field)."""
    from otel_mltrace.otlp_transport import transport_settings
    from otel_mltrace.sender import HttpSender

    with _limited(tmp_path) as serve:
        sender = HttpSender(serve.http_url, {}, 10.0, transport_settings(None))
        big = sender.send(request([run_span("step") for _ in range(60)]).SerializeToString())
        assert big.too_large and big.message.startswith("HTTP 413: body of "), big.message
        assert big.message.isprintable(), big.message
        bad = sender.send(b"\xff\x00 not a request")
        assert bad.message.startswith("HTTP 400: ") and bad.message.isprintable(), bad.message
        sender.close()
