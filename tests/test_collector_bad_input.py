"""Hostile and broken input against a live `otel-mltrace serve` process, over HTTP and gRPC.

Each case checks the OTLP answer (status code, or partial success naming the problem), that
valid data is stored verbatim, and that the collector keeps serving (``/healthz`` and a good
export that is then found in the index). Runs on SQLite and on a real PostgreSQL. The
back-pressure case holds the SQLite write lock from another connection (a slow store) and
checks 503 + Retry-After / UNAVAILABLE + RetryInfo, and that nothing acknowledged is lost.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from click.testing import CliRunner
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from mltrace_collector.index.store import Store, open_store
from mltrace_collector.service.receivers.otlp_json import to_otlp_json
from otel_mltrace import semconv
from otel_mltrace.cli import main as cli_main
from tests.backends import backend_database
from tests.otlp_builders import GrpcSender, request, run_span
from tests.serve_process import ServeProcess

PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
MAX_BODY = 2 << 20  # 2 MiB: small enough to exceed cheaply, large enough for 10,000 inputs
HOSTILE = [
    'quote"double',
    "quote'single",
    "100%_done%s%(x)s%%",
    "semi;colon; DROP TABLE runs; --",
    "line1\nline2\r\nline3",
    "' OR 1=1 --",
    "back\\slash and ? placeholder",
    "tab\there ünïcödé 🚀",
]


@dataclass
class Live:
    backend: str
    db: str
    serve: ServeProcess
    grpc: GrpcSender


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    base = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    with backend_database(request, base / "collector.db") as db:
        serve = ServeProcess.start(
            db, base / "serve.log", extra_args=["--max-body-bytes", str(MAX_BODY)]
        )
        sender = GrpcSender(serve.grpc_url)
        try:
            yield Live(request.param, db, serve, sender)
            assert serve.terminate() == 0
        finally:
            sender.close()
            serve.kill()


def post(live: Live, body: bytes, headers: dict[str, str] = PB) -> httpx.Response:
    return httpx.post(live.serve.http_url + "/v1/traces", content=body, headers=headers, timeout=60)


def api(live: Live, path: str, **params: Any) -> Any:
    resp = httpx.get(live.serve.http_url + "/api/v1" + path, params=params, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def counts(live: Live) -> dict[str, int]:
    health = httpx.get(live.serve.http_url + "/healthz", timeout=30).json()
    return {"runs": health["runs"]}


def assert_still_serving(live: Live) -> None:
    """``/healthz`` answers and a good export over each transport is stored."""
    assert httpx.get(live.serve.http_url + "/healthz", timeout=30).status_code == 200
    for transport in ("http", "grpc"):
        rid = f"alive-{transport}-{os.urandom(6).hex()}"
        body = request([run_span("alive", run_id=rid)]).SerializeToString()
        if transport == "http":
            assert post(live, body).status_code == 200
        else:
            live.grpc.send(body)
        assert api(live, f"/runs/{rid}")["run_id"] == rid


def status(resp: httpx.Response) -> Any:
    if resp.headers["content-type"].startswith("application/json"):
        return json.loads(resp.content)
    return status_pb2.Status.FromString(resp.content)


def grpc_code(live: Live, body: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        live.grpc.send(body)
    return info.value


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def s(text: str) -> AnyValue:
    return AnyValue(string_value=text)


def arr(*texts: str) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=[s(t) for t in texts]))


# -- undecodable ---------------------------------------------------------------------------
def test_garbage_and_truncated_bodies(live: Live) -> None:
    garbage = b"\xff\xfe\x00garbage\x07" * 50
    good = request([run_span("trunc", inputs=["s3://b/x@sha256:aa"] * 1)]).SerializeToString()
    truncated = good[: len(good) // 2 + 3]
    with pytest.raises(Exception):  # noqa: B017 - the premise: protobuf refuses it too
        ExportTraceServiceRequest.FromString(truncated)
    before = counts(live)
    for body in (garbage, truncated):
        resp = post(live, body)
        assert resp.status_code == 400
        assert "not a protobuf ExportTraceServiceRequest" in status(resp).message
        err = grpc_code(live, body)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    resp = post(live, gzip.compress(good)[:-8], {**PB, "Content-Encoding": "gzip"})
    assert resp.status_code == 400  # corrupt gzip
    assert counts(live) == before
    assert_still_serving(live)


def test_wrong_content_type_and_invalid_json(live: Live) -> None:
    good = request([run_span("ctype")]).SerializeToString()
    resp = post(live, good, {"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert "application/x-protobuf" in resp.headers["Accept-Post"]
    assert post(live, good, {}).status_code == 415  # no content type at all
    for body in (b'{"resourceSpans": [', b"\xff\xfe", b'{"resourceSpans": 5}', b"[1, 2]"):
        resp = post(live, body, JSON)
        assert resp.status_code == 400, body
        assert resp.headers["content-type"].startswith("application/json")
        assert status(resp)["message"]
    bad_id = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00", "name": "x"}]}]}
        ]
    }
    resp = post(live, json.dumps(bad_id).encode(), JSON)
    assert resp.status_code == 400 and "traceId" in status(resp)["message"]
    assert_still_serving(live)


def test_oversized_bodies(live: Live) -> None:
    big = request([run_span("big", inputs=["x" * 8000] * 300)]).SerializeToString()
    assert len(big) > MAX_BODY
    resp = post(live, big)
    assert resp.status_code == 413
    assert str(MAX_BODY) in status(resp).message
    bomb = gzip.compress(b"\x00" * (MAX_BODY * 4))  # small on the wire, huge inflated
    assert len(bomb) < MAX_BODY
    resp = post(live, bomb, {**PB, "Content-Encoding": "gzip"})
    assert resp.status_code == 413
    err = grpc_code(live, big)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(live)


# -- partial success -----------------------------------------------------------------------
def bad_typed_spans() -> list[tuple[str, Span]]:
    """(expected words in the rejection, span) for each wrong-typed mltrace attribute."""
    cases = [
        ("mltrace.inputs must be an array of strings", [kv(semconv.INPUTS, s("a-single-id"))]),
        ("mltrace.outputs must be an array of strings",
         [kv(semconv.OUTPUTS, AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=3)])))]),
        ("mltrace.metric.loss must be a number", [kv("mltrace.metric.loss", s("low"))]),
        ("mltrace.param.layers must be a scalar", [kv("mltrace.param.layers", arr("a", "b"))]),
        ("mltrace.run.id must be a non-empty string",
         [kv(semconv.RUN_ID, AnyValue(bool_value=True))]),
        ("mltrace.tags must be an array of strings", [kv(semconv.TAGS, s("one-tag"))]),
    ]  # fmt: skip
    spans = []
    for words, attrs in cases:
        span = run_span("typed")
        del span.attributes[:]
        span.attributes.extend([kv(semconv.COMPONENT, s("typed")), *attrs])
        spans.append((words, span))
    component = run_span("typed")
    del component.attributes[:]
    component.attributes.append(kv(semconv.COMPONENT, AnyValue(int_value=7)))
    spans.append(("mltrace.component must be a non-empty string", component))
    return spans


@pytest.mark.parametrize("transport", ["http-protobuf", "http-json", "grpc"])
def test_wrong_typed_attributes_are_partial_success(live: Live, transport: str) -> None:
    cases = bad_typed_spans()
    good_id = f"typed-good-{transport}-{os.urandom(4).hex()}"
    good = run_span("typed", run_id=good_id, outputs=["s3://b/typed@sha256:01"])
    req = request([good] + [span for _, span in cases])
    if transport == "grpc":
        response = live.grpc.send(req.SerializeToString())
    elif transport == "http-json":
        resp = post(live, to_otlp_json(req), JSON)
        assert resp.status_code == 200
        data = json.loads(resp.content)["partialSuccess"]
        response = ExportTraceServiceResponse()
        response.partial_success.rejected_spans = int(data["rejectedSpans"])
        response.partial_success.error_message = data["errorMessage"]
    else:
        resp = post(live, req.SerializeToString())
        assert resp.status_code == 200
        response = ExportTraceServiceResponse.FromString(resp.content)
    assert response.partial_success.rejected_spans == len(cases)
    message = response.partial_success.error_message
    for words, span in cases[:5]:  # the message names the first five, then "and N more"
        assert words in message, (words, message)
        assert span.span_id.hex() in message
    assert f"and {len(cases) - 5} more" in message
    assert api(live, f"/runs/{good_id}")["outputs"] == ["s3://b/typed@sha256:01"]
    assert_still_serving(live)


# -- big and hostile, stored verbatim ------------------------------------------------------
def test_ten_thousand_inputs_on_one_span(live: Live) -> None:
    inputs = [f"s3://lake/wide/part-{i:05d}.parquet@sha256:{i:064x}" for i in range(10_000)]
    rid = f"wide-{os.urandom(4).hex()}"
    body = request([run_span("wide", run_id=rid, inputs=inputs)]).SerializeToString()
    assert len(body) < MAX_BODY
    resp = post(live, body)
    assert resp.status_code == 200
    assert not ExportTraceServiceResponse.FromString(resp.content).HasField("partial_success")
    info = api(live, f"/runs/{rid}")
    assert [i["artifact_id"] for i in info["inputs"]] == sorted(inputs)
    assert all(i["producer_run_id"] is None for i in info["inputs"])
    graph = api(live, "/trace", id=rid)
    assert len(graph["artifacts"]) == 10_000 and len(graph["edges"]) == 10_000
    assert_still_serving(live)


def _cli_json(args: list[str]) -> Any:
    result = CliRunner().invoke(cli_main, [*args, "--format", "json"], env={"MLTRACE_DB": None})
    assert result.exit_code == 0, f"{args}: {result.output}{result.exception!r}"
    return json.loads(result.stdout)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_hostile_artifact_ids_are_stored_verbatim(live: Live, transport: str) -> None:
    tag = f"{transport}-{os.urandom(3).hex()}"
    ids = [f"s3://weird/{tag}/{h}@sha256:{i:04x}" for i, h in enumerate(HOSTILE)]
    ids += [f"{h} {tag}" for h in HOSTILE]  # unversioned, not even URI-shaped
    producer, consumer = f"hostile-p-{tag}' OR 1=1 --", f'hostile-c-{tag}";--%'
    spans = [
        run_span(
            f"hostile; DROP TABLE runs; -- {tag}", run_id=producer, outputs=ids, start_ns=10**18
        ),
        run_span(f"hostile' OR 1=1 -- {tag}", run_id=consumer, inputs=ids, start_ns=10**18 + 10**9),
    ]
    before = counts(live)["runs"]
    body = request(spans).SerializeToString()
    if transport == "http":
        assert post(live, body).status_code == 200
    else:
        live.grpc.send(body)
    assert counts(live)["runs"] == before + 2
    info = api(live, f"/runs/{consumer}")
    assert info["run_id"] == consumer and info["component"] == f"hostile' OR 1=1 -- {tag}"
    assert {i["artifact_id"]: i["producer_run_id"] for i in info["inputs"]} == dict.fromkeys(
        ids, producer
    )
    assert sorted(api(live, f"/runs/{producer}")["outputs"]) == sorted(ids)
    for aid in (ids[3], ids[4], ids[5], ids[13]):  # ';' / newlines / ' OR 1=1 --
        graph = api(live, "/trace", id=aid)
        assert graph["root"]["id"] == aid and list(graph["runs"]) == [producer]
        down = api(live, "/downstream", id=aid)
        assert set(down["runs"]) == {consumer}
        for where in (["--server", live.serve.http_url], ["--db", live.db]):
            cli = _cli_json(["trace", aid, *where])
            assert cli["root"]["id"] == aid and list(cli["runs"]) == [producer]
    history = api(live, f"/components/hostile; DROP TABLE runs; -- {tag}/history")
    assert [r["run_id"] for r in history] == [producer]
    # The tables are intact: every earlier run is still there and queries still work.
    assert {c["component"] for c in api(live, "/components")} >= {
        "alive",
        f"hostile' OR 1=1 -- {tag}",
    }
    assert_still_serving(live)


def test_duplicate_batch_is_idempotent(live: Live) -> None:
    rid = f"dup-{os.urandom(4).hex()}"
    spans = [
        run_span("dup", run_id=rid, outputs=["s3://b/dup@sha256:d0"]),
        run_span("dup-reader", run_id=rid + "-r", inputs=["s3://b/dup@sha256:d0"]),
    ]
    body = request(spans).SerializeToString()
    assert post(live, body).status_code == 200
    first = counts(live)
    graph = api(live, "/downstream", id=rid)
    for _ in range(2):
        assert post(live, body).status_code == 200
        live.grpc.send(body)
    assert counts(live) == first
    assert api(live, "/downstream", id=rid) == graph
    assert len(api(live, "/components/dup/history")) == 1


# -- back-pressure -------------------------------------------------------------------------
def test_back_pressure_with_a_locked_store(tmp_path: Path) -> None:
    """A store that cannot commit (another connection holds the SQLite write lock) fills the
    tiny queue: exports beyond it get 503 + Retry-After or UNAVAILABLE + RetryInfo; the ones
    acknowledged are all in the index afterwards."""
    db = tmp_path / "locked.db"
    serve = ServeProcess.start(str(db), tmp_path / "serve.log", extra_args=["--max-inflight", "1"])
    sender = GrpcSender(serve.grpc_url)
    try:
        assert httpx.get(serve.http_url + "/healthz").status_code == 200
        blocker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(5.0, blocker.execute, args=("COMMIT",))
        release.start()
        outcomes: list[tuple[str, str, Any]] = []

        def export(n: int) -> None:
            rid = f"bp-{n}"
            body = request([run_span("bp", run_id=rid)]).SerializeToString()
            if n % 2:
                try:
                    sender.send(body, timeout_s=60)
                    outcomes.append((rid, "ok", None))
                except grpc.RpcError as err:
                    outcomes.append((rid, err.code().name, err.trailing_metadata()))
            else:
                resp = httpx.post(
                    serve.http_url + "/v1/traces", content=body, headers=PB, timeout=60
                )
                ok = "ok" if resp.status_code == 200 else str(resp.status_code)
                outcomes.append((rid, ok, resp.headers.get("Retry-After")))

        with ThreadPoolExecutor(12) as pool:
            list(pool.map(export, range(12)))
        release.join()
        blocker.close()
        statuses = sorted({o[1] for o in outcomes})
        assert "ok" in statuses and "503" in statuses and "UNAVAILABLE" in statuses, outcomes
        assert set(statuses) <= {"ok", "503", "UNAVAILABLE"}, outcomes
        for _, code, extra in outcomes:
            if code == "503":
                assert extra is not None and int(extra) >= 1
            if code == "UNAVAILABLE":
                details = dict(extra)["grpc-status-details-bin"]
                st = status_pb2.Status.FromString(details)
                info = error_details_pb2.RetryInfo()
                assert any(d.Unpack(info) for d in st.details)
                assert info.retry_delay.seconds + info.retry_delay.nanos > 0
        acked = {rid for rid, code, _ in outcomes if code == "ok"}
        assert httpx.get(serve.http_url + "/healthz").status_code == 200
        assert serve.terminate() == 0
    finally:
        sender.close()
        serve.kill()
    store: Store = open_store(str(db), migrate=False)
    try:
        stored = {r["run_id"] for r in store.query("SELECT run_id FROM runs")}
    finally:
        store.close()
    assert acked <= stored
