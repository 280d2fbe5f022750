"""Where run spans go: embedded index, a real collector through the official OTLP
exporters (gRPC and HTTP), and an unreachable collector (never raises, logs once)."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

import otel_mltrace as mlt
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import open_store
from mltrace_collector.service.collector import Collector


def _two_step_pipeline(tmp_path: Path) -> str:
    raw = tmp_path / "raw.csv"
    raw.write_text("x\n1\n2\n")
    clean = tmp_path / "clean.csv"
    model = tmp_path / "model.bin"
    with mlt.run("clean", inputs=[raw]) as r:
        clean.write_text("x\n1\n")
        r.add_output(clean)
    with mlt.run("train", inputs=[clean], params={"C": 0.5}) as r:
        model.write_bytes(b"weights")
        model_id = r.add_output(model)
        r.log_metric("accuracy", 0.9)
    return model_id


def _assert_lineage(queries: LineageQueries, model_id: str, tmp_path: Path) -> None:
    graph = queries.trace(model_id)
    components = sorted(r["component"] for r in graph["runs"].values())
    assert components == ["clean", "train"]
    raw = [a for a in graph["artifacts"].values() if a["raw"]]
    assert [a["uri"] for a in raw] == [f"file://{(tmp_path / 'raw.csv').resolve()}"]


def test_embedded_index_without_any_server(tmp_path: Path) -> None:
    index = tmp_path / "index.db"
    cfg = mlt.configure(service_name="embedded-test", index=str(index))
    assert cfg.mode == "embedded" and cfg.destination == str(index)
    model_id = _two_step_pipeline(tmp_path)
    assert mlt.flush()
    mlt.shutdown()
    store = open_store(str(index))
    try:
        _assert_lineage(LineageQueries(store), model_id, tmp_path)
        train = store.history("train")[0]
        assert train["params"] == {"C": 0.5} and train["metrics"] == {"accuracy": 0.9}
        assert train["attributes"]["resource.service.name"] == "embedded-test"
    finally:
        store.close()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_official_otlp_exporter_into_collector(
    collector: Collector, tmp_path: Path, protocol: str
) -> None:
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    mlt.configure(service_name="otlp-test", endpoint=endpoint, protocol=protocol)
    model_id = _two_step_pipeline(tmp_path)
    assert mlt.flush()
    mlt.shutdown()
    _assert_lineage(collector.queries, model_id, tmp_path)
    assert collector.pipeline.stats["runs_committed"] == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.usefixtures("no_start_records")  # the spool's span count is asserted exactly
def test_unreachable_collector_never_raises_and_logs_once(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
) -> None:
    monkeypatch.setenv("MLTRACE_EXPORT_TIMEOUT", "1")
    monkeypatch.setenv("MLTRACE_SPOOL_DIR", str(tmp_path / "spool"))
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    mlt.configure(service_name="down", endpoint=endpoint, protocol=protocol)
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    for batch in range(3):
        with mlt.run(f"step{batch}") as r:
            r.log_metric("i", batch)
        report = mlt.flush(timeout_s=5)  # returns, whatever the outcome
        assert report.pending_in_spool == batch + 1 and report.dropped == 0, report
    elapsed = time.monotonic() - started
    mlt.shutdown()
    ours = [r for r in caplog.records if "otel-mltrace: could not export" in r.getMessage()]
    assert len(ours) == 1, [r.getMessage() for r in caplog.records]
    assert endpoint in ours[0].getMessage()
    otlp_noise = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert otlp_noise == []
    # each export is bounded by the 1 s exporter timeout (plus connection set-up)
    assert elapsed < 3 * 5


def test_disabled_runs_execute_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLTRACE_DISABLED", "true")
    db = tmp_path / "index.db"
    cfg = mlt.configure(service_name="off", index=str(db))
    assert cfg.mode == "disabled"
    with mlt.run("step", outputs=["mem://x"], params={"a": 1}) as run:
        run.log_metric("m", 1.0)
    report = mlt.shutdown()
    assert report.mode == "none" and report.delivered == 0 and report
    assert not db.exists()


def test_every_reconfiguration_indexes_its_runs(tmp_path: Path) -> None:
    """configure() again and again (as tests and notebooks do): each new provider gets the
    export path, even when it is allocated where a collected one was (same id())."""
    import gc

    for i in range(30):
        db = tmp_path / f"index-{i}.db"
        mlt.configure(service_name="again", index=str(db))
        with mlt.run("step", outputs=[f"mem://again/{i}"]):
            pass
        report = mlt.shutdown()
        gc.collect()  # frees the previous provider: the next may reuse its address
        assert report.delivered == 1 and db.exists(), (i, report)
