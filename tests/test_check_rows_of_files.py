"""``expect_rows`` on file outputs counts rows, never lines of bytes that are not rows.

Found in the issue-12 acceptance audit: a ``train`` run with
``checks=[expect_rows(min=1)]`` and outputs ``model.pkl`` and ``preds.json`` (a JSON array
of 100 records) passed with ``rows model.pkl=2, preds.json=1``: every file that was not
Parquet/NumPy was counted line by line, so a pickle "had" 2 rows and a one-line JSON
array 1. Now a ``.json`` file is read (array of records, or object of columns), text
formats are still counted by lines, and a file of unknown type is a check ``error`` that
names the file and the fix (warned, counted, ``inspect`` shows it) — as for
``expect_range``.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.checks import expect_range, expect_rows
from otel_mltrace.cli import main


def test_json_arrays_are_read_and_pickles_are_not_counted_by_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = str(tmp_path / "index.db")
    model, preds, cols = tmp_path / "model.pkl", tmp_path / "preds.json", tmp_path / "cols.json"
    model.write_bytes(pickle.dumps({"w": list(range(50))}) + b"\n\n")
    preds.write_text(json.dumps([{"wine_id": f"w{i}", "proba": 0.5 + i / 250} for i in range(100)]))
    cols.write_text(json.dumps({"proba": [0.9, 0.2]}))
    mlt.configure(service_name="rows", index=index)
    try:
        with mlt.run("predict", checks=[expect_rows(min=1), expect_range("proba", min=0.5)]) as r:
            r.add_output(str(preds))
        assert [(c.status, c.message) for c in r.check_results] == [
            ("pass", "rows preds.json=100"),
            ("pass", "preds.json in [0.5, 0.896]"),
        ]
        with mlt.run("score", checks=[expect_range("proba", min=0.5, on_fail="flag")]) as r:
            r.add_output(str(cols))
        assert [(c.status, c.message) for c in r.check_results] == [
            ("fail", "cols.json[proba] min 0.2 < 0.5")
        ]
        with caplog.at_level(logging.WARNING, logger="otel_mltrace.checks"):
            with mlt.run("train", checks=[expect_rows(min=1)]) as train:
                train.add_output(str(model))
        assert mlt.flush(30)
    finally:
        mlt.shutdown()
    (result,) = train.check_results
    assert result.status == "error", result.message
    assert "unknown file type .pkl" in result.message and "target=" in result.message
    assert any("check rows (after) of run train" in r.getMessage() for r in caplog.records)
    out = CliRunner().invoke(main, ["--db", index, "inspect", train.id])
    assert out.exit_code == 0 and "rows: error" in out.output, out.output


def test_text_files_are_still_counted_by_lines(tmp_path: Path, spans: Any) -> None:
    notes = tmp_path / "scored.txt"
    notes.write_text("a\nb\n")
    with mlt.run("score", checks=[expect_rows(min=2, max=2)]) as r:
        r.add_output(str(notes))
    assert [(c.status, c.message) for c in r.check_results] == [("pass", "rows scored.txt=2")]
