"""SDK arguments and values that used to give wrong answers, from the user's side.

* ``log_metric("loss", nan)`` raised and failed the run; NaN/±inf are now values, kept
  through OTLP, the C and the pure-Python decode, SQLite and PostgreSQL, and shown in
  JSON as ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"`` (JSON has no NaN).
* ``log_records`` accepted any string as its output (a phantom artifact in the index).
* ``run(params=[("a", 1)])`` raised a bare ``AttributeError``.
* ``--format dot`` labels showed a literal ``\\n``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from mltrace_collector.index.decode import processor
from mltrace_collector.service.collector import Collector, CollectorSettings
from otel_mltrace.checks import expect_rows
from otel_mltrace.cli import main
from tests.backends import postgres_server, postgres_url  # noqa: F401  (fixtures)

SPECIAL = {"loss": math.nan, "grad": math.inf, "floor": -math.inf, "acc": 0.5}
AS_JSON = {"loss": "NaN", "grad": "Infinity", "floor": "-Infinity", "acc": 0.5}


def _strict(text: str) -> Any:
    """``json.loads`` that refuses the non-JSON NaN / Infinity tokens Python would accept."""

    def refuse(token: str) -> Any:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _log_special(run: mlt.Run) -> None:
    for key, value in SPECIAL.items():
        run.log_metric(key, value)


def test_nan_metrics_in_the_embedded_index_and_cli(tmp_path: Path) -> None:
    index = str(tmp_path / "index.db")
    mlt.configure(service_name="nan", index=index)
    try:
        with mlt.run("train") as run:
            _log_special(run)
        mlt.flush()
    finally:
        mlt.shutdown()
    out = CliRunner().invoke(main, ["--db", index, "inspect", run.id, "--format", "json"])
    assert out.exit_code == 0, out.output
    info = _strict(out.output)
    assert info["status"] == "ok" and info["metrics"] == AS_JSON
    out = CliRunner().invoke(main, ["--db", index, "history", "train", "--format", "json"])
    assert _strict(out.output)[0]["metrics"] == AS_JSON
    out = CliRunner().invoke(main, ["--db", index, "inspect", run.id])
    assert "'loss': 'NaN'" in out.output and "'floor': '-Infinity'" in out.output


@pytest.fixture(params=["sqlite-c", "sqlite-python", "postgres-c"])
def live(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Collector]:
    """An in-process collector (no decode workers, so the decode path is the one chosen)."""
    store, decode = request.param.split("-")
    if decode == "python":
        monkeypatch.setattr(processor, "walk_spans", None)
    elif processor.walk_spans is None:
        pytest.skip("C extension _otlp_fast is not built")
    db = request.getfixturevalue("postgres_url") if store == "postgres" else str(tmp_path / "c.db")
    settings = CollectorSettings.resolve(
        db=db, grpc_address="127.0.0.1:0", http_address="127.0.0.1:0", decode_workers=0
    )
    service = Collector(settings)
    service.start()
    yield service
    service.stop()


def test_nan_metrics_over_otlp_to_api_and_cli(live: Collector) -> None:
    mlt.configure(service_name="nan", endpoint=live.grpc_endpoint)
    try:
        with mlt.run("train") as run:
            _log_special(run)
            run.log_output("score", [math.nan, math.inf, 0.5, 0.7])
        mlt.flush()
    finally:
        mlt.shutdown()
    answer = httpx.get(f"{live.http_endpoint}/api/v1/runs/{run.id}", timeout=10)
    assert answer.status_code == 200, answer.text
    assert _strict(answer.text)["metrics"] == AS_JSON
    # Prometheus: run metrics are not series (run IDs are never labels); NaN / inf output
    # values are counted as the null and invalid shares of the output
    body = httpx.get(f"{live.http_endpoint}/metrics", timeout=10).text
    assert 'mltrace_output_null_ratio{component="train",output="score"} 0.25' in body
    assert 'mltrace_output_invalid_ratio{component="train",output="score"} 0.25' in body
    out = CliRunner().invoke(
        main, ["--server", live.http_endpoint, "inspect", run.id, "--format", "json"]
    )
    assert out.exit_code == 0 and _strict(out.output)["metrics"] == AS_JSON, out.output


def test_log_records_refuses_an_output_the_run_does_not_have(spans: Any, tmp_path: Path) -> None:
    path = tmp_path / "preds.csv"
    path.write_text("id\n1\n")
    with mlt.run("predict") as run:
        out = run.add_output(str(path))
        with pytest.raises(ValueError, match=r"'s3://typo/preds.csv' is not an output of run"):
            run.log_records("s3://typo/preds.csv", ["p1"])
        with pytest.raises(ValueError, match=r"declare it first: out = run.add_output"):
            run.log_records("preds-v2", ["p1"])
        with pytest.raises(TypeError, match="artifact ID add_output\\(\\) returned"):
            run.log_records(None, ["p1"])  # type: ignore[arg-type]
        assert run.log_records(out, ["p1"]) == 1
        assert run.log_records(str(path), ["p2"]) == 1  # the declared output, by its path
    events = [e for e in spans.get_finished_spans()[-1].events if e.name == "mltrace.records"]
    assert {e.attributes["mltrace.records.output"] for e in events} == {out}


def test_log_records_inside_component_for_an_output_argument(spans: Any, tmp_path: Path) -> None:
    @mlt.component("predict", outputs=["dest"])
    def predict(dest: str) -> int:
        Path(dest).write_text("id\np1\n")
        run = mlt.current_run()
        assert run is not None
        return run.log_records(dest, ["p1"])  # declared by the decorator after the body

    assert predict(str(tmp_path / "preds.csv")) == 1
    span = spans.get_finished_spans()[-1]
    (event,) = [e for e in span.events if e.name == "mltrace.records"]
    assert event.attributes is not None and span.attributes is not None
    assert list(span.attributes["mltrace.outputs"]) == [event.attributes["mltrace.records.output"]]


def test_wrong_argument_shapes_raise_type_error_naming_the_argument(spans: Any) -> None:
    with pytest.raises(TypeError, match=r"params must be a mapping.*params=dict\(\[\('a', 1\)\]\)"):
        mlt.run("train", params=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"checks must be a list.*checks=\[item\]"):
        mlt.run("train", checks=expect_rows(min=1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"inputs must be a list.*inputs=\[item\]"):
        mlt.component("train", inputs="features")
    with pytest.raises(TypeError, match=r"params must list argument names as str, got int 3"):
        mlt.component("train", params=[3])  # type: ignore[list-item]
    with mlt.run("train", params={"a": 1}) as run:
        pass
    assert run.component == "train"


def test_dot_labels_are_lines_not_backslash_text(tmp_path: Path) -> None:
    index = str(tmp_path / "index.db")
    model = tmp_path / "model.bin"
    mlt.configure(service_name="dot", index=index)
    try:
        with mlt.run("train") as run:
            model.write_bytes(b"w")
            run.add_output(str(model))
        mlt.flush()
    finally:
        mlt.shutdown()
    out = CliRunner().invoke(main, ["--db", index, "trace", str(model), "--format", "dot"])
    assert out.exit_code == 0, out.output
    (label,) = [line for line in out.output.splitlines() if "shape=box" in line]
    assert f'label="train\\n{run.id[:13]}\\nok"' in label  # dot's escape: one backslash
    assert "\\\\n" not in out.output
