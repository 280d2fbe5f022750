"""`run.log_metric(name, value, step, timestamp)` keeps the series, bounded; `inspect` shows
last / min / max / count, `--format json` the series. Through the embedded index and over
OTLP into a real collector (the conftest `collector` fixture)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from mltrace_collector.service.collector import Collector
from otel_mltrace import query
from otel_mltrace.cli import main
from otel_mltrace.metric_series import SeriesSet

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _train(epochs: int) -> str:
    with mlt.run("train", params={"lr": 0.1}) as run:
        for epoch in range(epochs):
            run.log_metric(
                "loss", 1.0 / (epoch + 1), step=epoch * 10, timestamp=T0.timestamp() + epoch
            )
        run.log_metric("accuracy", 0.9)  # logged once: a plain metric, no series
        return run.id


def test_series_in_the_embedded_index_and_the_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "index.db")
    mlt.configure(service_name="series", index=db)
    run_id = _train(100)
    mlt.shutdown()
    info = query.connect(db=db).inspect(run_id)
    assert info.metrics == {"loss": 0.01, "accuracy": 0.9}  # the last value, as before
    loss = info.data["metric_series"]["loss"]
    assert (loss["count"], loss["min"], loss["max"], loss["last"]) == (100, 0.01, 1.0, 0.01)
    assert loss["steps"] == list(range(0, 1000, 10)) and loss["thinned"] == 0
    assert loss["timestamps_ns"][1] - loss["timestamps_ns"][0] == 1_000_000_000
    assert loss["values"][:2] == [1.0, 0.5] and set(info.metric_series) == {"loss"}
    assert "series loss</td><td>last=0.01 min=0.01 max=1 count=100" in info._repr_html_()
    out = CliRunner().invoke(main, ["inspect", run_id, "--db", db]).output
    assert "series loss: last=0.01 min=0.01 max=1 count=100" in out
    out = CliRunner().invoke(main, ["inspect", run_id, "--db", db, "--format", "json"]).output
    assert json.loads(out)["metric_series"]["loss"]["steps"][-1] == 990


def test_a_diverged_series_shows_in_inspect(tmp_path: Path) -> None:
    """A loss that ends in NaN (a diverged training): inspect used to fail formatting it."""
    db = str(tmp_path / "index.db")
    mlt.configure(service_name="series", index=db)
    with mlt.run("train") as run:
        for step, loss in enumerate((2.0, 0.5, float("inf"), float("nan"))):
            run.log_metric("loss", loss, step=step)
    mlt.shutdown()
    result = CliRunner().invoke(main, ["inspect", run.id, "--db", db])
    assert result.exit_code == 0, result.output
    assert "series loss: last=NaN min=0.5 max=Infinity count=4" in result.output


def test_series_is_bounded_and_thinned_evenly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLTRACE_METRIC_SERIES_POINTS", "10")
    db = str(tmp_path / "index.db")
    mlt.configure(service_name="series", index=db)
    run_id = _train(1000)
    mlt.shutdown()
    loss = query.connect(db=db).inspect(run_id).data["metric_series"]["loss"]
    assert loss["count"] == 1000 and loss["min"] == 0.001 and loss["max"] == 1.0
    assert len(loss["values"]) <= 11 and len(loss["values"]) + loss["thinned"] == 1000
    assert loss["steps"][0] == 0 and loss["steps"][-1] == 9990  # first and newest kept
    assert loss["steps"] == sorted(loss["steps"]) and loss["steps"][-2] >= 5000  # spread out


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 65, 1001])
def test_thinning_accounts_for_every_point(n: int) -> None:
    series = SeriesSet(8)
    for i in range(n):
        series.add("m", float(i), None, 0)
    data = json.loads(series.to_json() or "{}")
    if n == 1:
        assert data == {}
        return
    m = data["m"]
    assert m["count"] == n and len(m["values"]) + m["thinned"] == n and len(m["values"]) <= 9
    assert m["values"][-1] == n - 1 and m["values"][0] == 0 and m["steps"] == m["values"]


def test_all_series_of_a_run_share_one_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("otel_mltrace.metric_series.MAX_POINTS_PER_RUN", 100)
    series = SeriesSet(80)
    for i in range(300):
        for name in ("a", "b", "c"):
            series.add(name, float(i), None, 0)
    data = json.loads(series.to_json() or "{}")
    assert sum(len(d["values"]) for d in data.values()) <= 100
    for d in data.values():
        assert d["count"] == 300 and len(d["values"]) + d["thinned"] == 300
        assert d["values"][-1] == 299 and d["steps"] == d["values"]


def test_bad_step_and_timestamp_name_the_metric(tmp_path: Path) -> None:
    mlt.configure(service_name="series", index=str(tmp_path / "index.db"))
    with mlt.run("train") as run:
        with pytest.raises(TypeError, match="metric 'loss': step must be an int >= 0, got -1"):
            run.log_metric("loss", 1.0, step=-1)
        with pytest.raises(TypeError, match="timestamp must be a datetime or Unix seconds"):
            run.log_metric("loss", 1.0, timestamp="yesterday")
    mlt.shutdown()


def test_series_over_otlp_into_the_collector(collector: Collector) -> None:
    mlt.configure(service_name="series", endpoint=collector.http_endpoint, protocol="http/protobuf")
    run_id = _train(50)
    assert mlt.flush()
    mlt.shutdown()
    loss = collector.queries.inspect(run_id)["metric_series"]["loss"]
    assert loss["count"] == 50 and loss["steps"][-1] == 490 and loss["min"] == 0.02
