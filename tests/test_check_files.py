"""Checks on outputs and inputs given as file paths: the file is read, the check runs.

Issue: ``expect_range("proba", …)`` on a CSV output used to record ``error: cannot take
column 'proba' of a str`` while the run said ``ok`` and nothing was printed.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from opentelemetry.trace import StatusCode

import otel_mltrace as mlt
from mltrace_collector.index.decode.checks import check_failures
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import open_store
from otel_mltrace.checks import expect_null_ratio, expect_range, expect_rows, expect_schema
from otel_mltrace.cli import main

PROBA = [0.9, 0.7, 0.3, None]  # 0.3 is below the 0.5 bound; one null


def _write(path: Path) -> Path:
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "proba": PROBA})
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    elif suffix == ".npz":
        np.savez(path, id=frame["id"].to_numpy(), proba=frame["proba"].to_numpy(float))
    elif suffix == ".npy":
        np.save(path, frame["proba"].to_numpy(float))
    return path


def test_expect_rows_counts_lines_of_any_text_file(tmp_path: Path, spans: Any) -> None:
    """A log or text output has rows too: counted line by line, as before file checks."""
    log = tmp_path / "scored.log"
    log.write_text("a\nb\n\nc\n")
    with mlt.run("score", checks=[expect_rows(min=3, max=3)]) as run:
        run.add_output(str(log))
    assert [(r.status, r.message) for r in run.check_results] == [("pass", "rows scored.log=3")]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".npz", ".npy"])
def test_checks_read_file_outputs(tmp_path: Path, spans: Any, suffix: str) -> None:
    path = _write(tmp_path / f"preds{suffix}")
    col = None if suffix == ".npy" else "proba"
    checks = [
        expect_rows(min=1),
        expect_null_ratio(col, max=0.5),
        expect_range(col, min=0.5, max=1, on_fail="flag"),
    ]
    with mlt.run("predict", checks=checks) as run:
        run.add_output(str(path))
    got = [(r.name, r.status, r.message) for r in run.check_results]
    assert got[0] == ("rows", "pass", f"rows preds{suffix}=4")
    assert got[1] == (f"null_ratio[{col}]", "pass", f"null ratio preds{suffix}=0.25")
    assert got[2] == (f"range[{col}]", "fail", f"preds{suffix}[{col}] min 0.3 < 0.5")
    assert spans.get_finished_spans()[-1].status.status_code is StatusCode.OK  # on_fail=flag


def test_before_checks_read_input_files_and_schema(tmp_path: Path, spans: Any) -> None:
    path = _write(tmp_path / "features.csv")
    with pytest.raises(mlt.CheckFailed, match="features.csv has 4 rows > max 2"):
        with mlt.run("train", inputs=[path], checks=[expect_rows(max=2, phase="before")]):
            pytest.fail("the body must not run after a failed before-check")
    with mlt.run("train", inputs=[path], checks=[expect_schema(["id", "proba"], phase="before")]):
        pass


def test_a_check_that_cannot_run_warns_names_the_value_and_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = str(tmp_path / "index.db")
    weird = tmp_path / "preds.bin"
    weird.write_bytes(b"\x00\x01")
    mlt.configure(service_name="checks", index=index)
    try:
        with caplog.at_level(logging.WARNING, logger="otel_mltrace.checks"):
            with mlt.run("predict", checks=[expect_range("proba", max=1)]) as run:
                run.add_output(str(weird))
        mlt.flush()
    finally:
        mlt.shutdown()
    (result,) = run.check_results
    assert result.status == "error" and not result.evaluated
    assert "unknown file type .bin" in result.message and str(weird) in result.message
    warning = [r.getMessage() for r in caplog.records if r.name == "otel_mltrace.checks"]
    assert len(warning) == 1
    assert "check range[proba] (after) of run predict" in warning[0] and str(weird) in warning[0]
    store = open_store(index)
    try:
        assert check_failures(store) == [
            {"component": "predict", "check": "range[proba]", "failures": 1}
        ]
        assert LineageQueries(store).inspect(run.id)["status"] == "ok"
    finally:
        store.close()
    out = CliRunner().invoke(main, ["--db", index, "inspect", run.id])
    assert out.exit_code == 0, out.output
    assert "range[proba]: error" in out.output and "unknown file type .bin" in out.output


def test_policy_fail_turns_an_unevaluable_check_into_a_failed_run(
    tmp_path: Path, spans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "preds.csv")
    with pytest.raises(mlt.CheckFailed, match=r"range\[score\].*could not be evaluated.*score"):
        with mlt.run("predict", checks=[expect_range("score", max=1, on_error="fail")]) as run:
            run.add_output(str(path))
    assert spans.get_finished_spans()[-1].status.status_code is StatusCode.ERROR
    monkeypatch.setenv("MLTRACE_CHECK_ERRORS", "fail")
    with mlt.run("predict", checks=[expect_rows(min=1, on_fail="flag")]) as run:
        run.add_output(str(path))
        path.unlink()  # gone before the after-checks read it
    (result,) = run.check_results
    assert result.status == "fail" and "no such file" in result.message
    monkeypatch.setenv("MLTRACE_CHECK_ERRORS", "sometimes")
    with pytest.raises(ValueError, match="MLTRACE_CHECK_ERRORS='sometimes' is invalid"):
        expect_rows(min=1)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_without_pandas_files_are_read_by_the_standard_library_or_pyarrow(
    tmp_path: Path, spans: Any, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / f"preds{suffix}")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    checks = [expect_rows(min=1), expect_range("proba", min=0.5, on_fail="flag")]
    with mlt.run("predict", checks=checks) as run:
        run.add_output(str(path))
    got = [(r.status, r.message) for r in run.check_results]
    assert got == [
        ("pass", f"rows preds{suffix}=4"),
        ("fail", f"preds{suffix}[proba] min 0.3 < 0.5"),
    ]
