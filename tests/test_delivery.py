"""Bursts and outages lose no run (issue 11): back-pressure into the embedded index, a
durable spool for OTLP, and a delivery report that counts every outcome.

Real components only: the embedded SQLite index, an ``otel-mltrace serve`` child process
(tests/serve_process.py) and separate Python processes for the "short pipeline step"."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

import otel_mltrace as mlt
from tests.serve_process import REPO_ROOT, ServeProcess
from tests.servers.ports import free_port
from tests.support_index import runs_in as _runs_in

OTLP_BURST = 100_000  # the burst: > 12x the 8,192-span queue


def _burst(n: int) -> None:
    for _ in range(n):
        with mlt.run("step", inputs=["s3://bucket/raw.csv"], outputs=["s3://bucket/f.parquet"]):
            pass


pytestmark = pytest.mark.usefixtures("no_start_records")  # exact span counts (conftest)


@pytest.fixture
def spool_dir(tmp_path: Path) -> str:
    return str(tmp_path / "spool")


def test_embedded_burst_of_100k_runs_is_fully_indexed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    db = tmp_path / "index.db"
    mlt.configure(service_name="burst", index=str(db))
    _burst(100_000)
    report = mlt.shutdown(timeout_s=120)
    assert report.mode == "embedded"
    assert (report.delivered, report.dropped, report.in_memory) == (100_000, 0, 0), report
    assert report
    assert _runs_in(db) == 100_000
    assert caplog.records == []  # no OpenTelemetry "Queue full", nothing to report at all


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    child = ServeProcess.start(str(tmp_path / "collector.db"), tmp_path / "serve.log")
    try:
        yield child
    finally:
        child.terminate()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_burst_overflowing_the_queue_arrives_whole(
    serve: ServeProcess, tmp_path: Path, spool_dir: str, protocol: str
) -> None:
    """100,000 runs overflow the 8,192-span queue many times; what overflows goes to the
    spool and is replayed by the flush, or by the next configure() of this endpoint.
    (~20 s gRPC, ~25 s HTTP at load 3.4 on 2 cores.)"""
    endpoint = serve.grpc_url if protocol == "grpc" else serve.http_url
    mlt.configure(service_name="burst", endpoint=endpoint, protocol=protocol, spool_dir=spool_dir)
    _burst(OTLP_BURST)
    report = mlt.shutdown(timeout_s=120)
    assert report.dropped == 0, report
    if report.pending_in_spool:  # flush ran out of time: the next process sends the rest
        mlt.configure(endpoint=endpoint, protocol=protocol, spool_dir=spool_dir)
        report = mlt.shutdown(timeout_s=120)
    assert report and report.dropped == 0 and report.pending_in_spool == 0, report
    db = tmp_path / "collector.db"
    deadline = time.monotonic() + 30
    while _runs_in(db) < OTLP_BURST and time.monotonic() < deadline:
        time.sleep(0.2)  # an acknowledged request is committed; this only absorbs reads lag
    assert _runs_in(db) == OTLP_BURST


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_standard_gzip_compression_setting_is_honoured(
    serve: ServeProcess, tmp_path: Path, spool_dir: str, protocol: str
) -> None:
    env = {"MLTRACE_ENDPOINT": serve.grpc_url if protocol == "grpc" else serve.http_url,
           "MLTRACE_PROTOCOL": protocol, "MLTRACE_SPOOL_DIR": spool_dir,
           "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}  # fmt: skip
    step = _pipeline_step(200, env, "report")
    assert json.loads(step.stdout.splitlines()[-1]) == {"spooled": 0, "replayed": 0, "pending": 0}
    assert _runs_in(tmp_path / "collector.db") == 200


_STEP = """
import json, sys, otel_mltrace as mlt
mlt.configure(service_name="cron-step")
for i in range(int(sys.argv[1])):
    with mlt.run("step", inputs=["s3://b/in.csv"], outputs=[f"s3://b/out-{i}.csv"]):
        pass
if sys.argv[2:] == ["report"]:
    r = mlt.shutdown(timeout_s=60)
    print(json.dumps({"spooled": r.spooled, "replayed": r.replayed, "pending": r.pending_in_spool}))
"""


def _start_step(runs: int, env: Mapping[str, str], *extra: str) -> subprocess.Popen[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRACE_", "OTEL_"))}
    child_env["MLTRACE_ANNOUNCE_RUNS"] = "false"  # exact span counts (see no_start_records)
    child_env.update(env)
    child_env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_STEP), str(runs), *extra],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _pipeline_step(
    runs: int, env: Mapping[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    proc = _start_step(runs, env, *extra)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_runs_of_a_step_during_an_outage_arrive_with_the_next_step(
    tmp_path: Path, spool_dir: str
) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"MLTRACE_ENDPOINT": endpoint, "MLTRACE_SPOOL_DIR": spool_dir,
           "MLTRACE_EXPORT_TIMEOUT": "2"}  # fmt: skip
    first = _pipeline_step(1000, env)  # collector down: the process exits normally
    exit_lines = [line for line in first.stderr.splitlines() if "waiting in the spool" in line]
    assert len(exit_lines) == 1, first.stderr
    assert "1000 waiting in the spool" in exit_lines[0] and spool_dir in exit_lines[0]
    assert "Queue full" not in first.stderr

    db = tmp_path / "collector.db"
    serve = ServeProcess.start(
        str(db), tmp_path / "serve.log", extra_args=["--grpc-address", f"127.0.0.1:{port}"]
    )
    try:
        second = _pipeline_step(1, env)
        assert "waiting in the spool" not in second.stderr, second.stderr
        assert _runs_in(db) == 1001
    finally:
        serve.terminate()


def test_spool_over_its_cap_counts_the_dropped_runs(
    tmp_path: Path, spool_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nobody listens
    caplog.set_level(logging.WARNING, logger="otel_mltrace")
    mlt.configure(endpoint=endpoint, spool_dir=spool_dir, spool_max=64 * 1024, queue_size=100)
    _burst(2_000)
    report = mlt.shutdown(timeout_s=10)
    assert report.delivered == 0 and report.in_memory == 0
    assert report.dropped > 0 and report.spooled > 0, report
    assert report.spooled + report.dropped == 2_000
    assert report.pending_in_spool == report.spooled
    assert list(report.dropped_reasons) == ["spool full (65536 bytes, MLTRACE_SPOOL_MAX_BYTES)"]
    spooled_bytes = sum(p.stat().st_size for p in Path(spool_dir).rglob("*.otlp"))
    assert 0 < spooled_bytes <= 64 * 1024
    exit_line = caplog.records[-1].getMessage()
    assert f"{report.dropped} DROPPED (" in exit_line and "spool full" in exit_line
    assert f"{report.spooled} waiting in the spool {report.spool_dir}" in exit_line


def test_concurrent_steps_send_a_shared_spool_exactly_once(tmp_path: Path, spool_dir: str) -> None:
    """Three processes start together on the endpoint whose spool holds ~20 files: each file
    is claimed (flock) by one of them only, so the replays add up to exactly what was spooled."""
    port = free_port()
    env = {"MLTRACE_ENDPOINT": f"http://127.0.0.1:{port}", "MLTRACE_SPOOL_DIR": spool_dir,
           "MLTRACE_QUEUE_SIZE": "50", "MLTRACE_EXPORT_TIMEOUT": "2"}  # fmt: skip
    first = json.loads(_pipeline_step(1000, env, "report").stdout.splitlines()[-1])
    assert first == {"spooled": 1000, "replayed": 0, "pending": 1000}
    assert len(list(Path(spool_dir).rglob("*.otlp"))) >= 10

    db = tmp_path / "collector.db"
    serve = ServeProcess.start(
        str(db), tmp_path / "serve.log", extra_args=["--grpc-address", f"127.0.0.1:{port}"]
    )
    try:
        steps = [_start_step(1, env, "report") for _ in range(3)]
        reports = []
        for step in steps:
            out, err = step.communicate(timeout=120)
            assert step.returncode == 0, err
            reports.append(json.loads(out.splitlines()[-1]))
        assert sum(r["replayed"] for r in reports) == 1000, reports
        assert all(r["pending"] == 0 for r in reports), reports
        assert list(Path(spool_dir).rglob("*.otlp")) == []
        assert _runs_in(db) == 1003
    finally:
        serve.terminate()


def test_unusable_spool_directory_never_breaks_the_pipeline(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool directory should be")
    mlt.configure(endpoint=f"http://127.0.0.1:{free_port()}", spool_dir=str(blocker))
    _burst(10)  # no exception reaches the pipeline
    report = mlt.shutdown(timeout_s=5)
    assert report.dropped == 10
    [reason] = report.dropped_reasons
    assert str(blocker) in reason and "unusable" in reason


def test_bad_queue_size_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLTRACE_QUEUE_SIZE", "0")
    with pytest.raises(ValueError, match="MLTRACE_QUEUE_SIZE to at least 1"):
        mlt.configure(index=":memory:")


@pytest.mark.parametrize("mode", ["embedded", "grpc"])
def test_runs_refused_as_invalid_are_counted_not_hidden(
    tmp_path: Path, mode: str, request: pytest.FixtureRequest
) -> None:
    """A span carrying a run's attributes with a bad value is refused by the processor (the
    index's or the collector's); the report counts it instead of calling it delivered."""
    from otel_mltrace import semconv

    if mode == "embedded":
        mlt.configure(index=str(tmp_path / "index.db"))
    else:
        serve = request.getfixturevalue("serve")
        mlt.configure(endpoint=serve.grpc_url, spool_dir=str(tmp_path / "spool"))
    _burst(5)
    tracer = mlt.provider.get_tracer()
    bad = {semconv.COMPONENT: "step", semconv.RUN_ID: "r-1", semconv.METRIC_PREFIX + "loss": "x"}
    tracer.start_span("step", attributes=bad).end()
    report = mlt.shutdown(timeout_s=30)
    assert report.delivered == 5 and report.dropped == 1, report
    where = "index" if mode == "embedded" else "collector"
    assert report.dropped_reasons == {f"rejected as invalid by the {where}": 1}


def _child_runs(n: int) -> None:
    _burst(n)  # no flush: the child ends with os._exit, like every multiprocessing child


def _forked_child_runs(n: int) -> None:
    """``n`` runs in a forked multiprocessing child, which must end with status 0."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=_child_runs, args=(n,))
    child.start()
    child.join(120)
    assert child.exitcode == 0


def test_runs_of_a_forked_multiprocessing_child_are_indexed(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    mlt.configure(index=str(db))
    _burst(100)  # the parent has its worker and its connection before the fork
    _forked_child_runs(500)
    _burst(100)
    report = mlt.shutdown(timeout_s=60)
    assert report and report.delivered == 200
    assert _runs_in(db) == 700


def test_forked_child_over_otlp_http_uses_its_own_connection(
    serve: ServeProcess, tmp_path: Path, spool_dir: str
) -> None:
    mlt.configure(endpoint=serve.http_url, protocol="http/protobuf", spool_dir=spool_dir)
    _burst(100)
    assert mlt.flush(timeout_s=30)  # the parent's kept-alive connection exists before the fork
    _forked_child_runs(300)
    _burst(100)
    report = mlt.shutdown(timeout_s=30)
    assert report and (report.delivered, report.total_delivered) == (100, 200)  # flushed 100
    assert _runs_in(tmp_path / "collector.db") == 500


def test_embedded_shutdown_waits_for_an_index_that_makes_progress(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    mlt.configure(index=str(db))
    _burst(20_000)  # ends with up to a full queue (8,192 spans) still to index
    report = mlt.shutdown(timeout_s=0.2)  # far less than indexing the queue takes
    assert (report.delivered, report.dropped, report.in_memory) == (20_000, 0, 0), report
    assert _runs_in(db) == 20_000


def test_batches_larger_than_the_collectors_receive_limit_are_split(
    tmp_path: Path, spool_dir: str
) -> None:
    """Runs with large attributes overflow a 4 MiB receive limit per batch: requests are
    split under it (sent and spooled alike), so nothing is refused again and again."""
    child = ServeProcess.start(
        str(tmp_path / "limited.db"), tmp_path / "limited.log",
        env={"MLTRACE_MAX_BODY_BYTES": str(4 << 20)},
    )  # fmt: skip
    try:
        mlt.configure(service_name="big", endpoint=child.grpc_url, spool_dir=spool_dir)
        for i in range(1500):
            with mlt.run("big", outputs=[f"s3://b/{i}"], params={"blob": "x" * 20_000}):
                pass
        report = mlt.shutdown(timeout_s=120)
        assert report and report.dropped == 0 and report.pending_in_spool == 0, report
        assert _runs_in(tmp_path / "limited.db") == 1500
    finally:
        child.terminate()


def test_each_report_says_what_happened_since_the_previous_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One refused run made every later ``flush()`` report false forever; now a report
    covers what happened since the previous one, and ``total_*`` keeps the totals."""
    from otel_mltrace import semconv

    caplog.set_level(logging.WARNING, logger="otel_mltrace")
    mlt.configure(index=str(tmp_path / "index.db"))
    _burst(3)
    tracer = mlt.provider.get_tracer()
    bad = {semconv.COMPONENT: "step", semconv.RUN_ID: "r-1", semconv.METRIC_PREFIX + "loss": "x"}
    tracer.start_span("step", attributes=bad).end()
    first = mlt.flush(timeout_s=30)
    assert not first and (first.delivered, first.dropped, first.total_dropped) == (3, 1, 1), first
    assert first.dropped_reasons == {"rejected as invalid by the index": 1}

    _burst(4)
    second = mlt.flush(timeout_s=30)
    assert second, second.summary()
    assert (second.delivered, second.dropped, second.dropped_reasons) == (4, 0, {}), second
    assert (second.total_delivered, second.total_dropped) == (7, 1), second
    assert second.total_dropped_reasons == {"rejected as invalid by the index": 1}
    assert "1 dropped in all since configure()" in second.summary()

    third = mlt.flush(timeout_s=30)  # nothing new: an empty, true report
    assert third and (third.delivered, third.dropped, third.total_delivered) == (0, 0, 7), third

    final = mlt.shutdown(timeout_s=30)
    assert final and final.dropped == 0 and final.total_dropped == 1, final
    exit_line = caplog.records[-1].getMessage()  # the drop is not forgotten at exit
    assert "1 dropped in all since configure() (1 rejected as invalid by the index)" in exit_line


def test_runs_over_the_collectors_body_limit_are_split_not_dropped(tmp_path: Path) -> None:
    """An OTLP/HTTP collector whose MLTRACE_MAX_BODY_BYTES is below the SDK's requests
    answers 413: the SDK sends the request again in halves, and no run is lost (more in
    tests/test_delivery_split.py)."""
    serve = ServeProcess.start(
        str(tmp_path / "c.db"), tmp_path / "serve.log", extra_args=["--max-body-bytes", "2048"]
    )
    try:
        mlt.configure(endpoint=serve.http_url, protocol="http/protobuf",
                      spool_dir=str(tmp_path / "spool"))  # fmt: skip
        _burst(300)
        report = mlt.shutdown(timeout_s=30)
        assert report and report.delivered == 300 and report.split >= 1, report
        assert _runs_in(tmp_path / "c.db") == 300
        refused = httpx.get(serve.http_url + "/healthz", timeout=30).json()["refused_requests"]
        assert refused["http"].get("too_large", 0) >= 1 and "invalid" not in refused["http"]
    finally:
        serve.terminate()
