"""A check with ``on_fail="flag"`` that fails says so when the run ends.

Found in the issue-12 acceptance audit: ``checks=[expect_range("proba", min=0.5,
on_fail="flag")]`` on a batch with a probability of 0.3 ended the run ``ok`` without a
word; the flag appeared only in ``otel-mltrace flags``. A data-quality gate that fires
must be seen where the pipeline runs (its log), like a check that cannot be evaluated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.checks import expect_range, expect_rows
from otel_mltrace.cli import main


def test_a_flagging_check_that_fails_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = str(tmp_path / "index.db")
    preds = tmp_path / "preds.csv"
    preds.write_text("wine_id,proba\nwine-0001,0.9\nwine-0002,0.3\n")
    mlt.configure(service_name="flag-warning", index=index)
    checks = [expect_rows(min=1), expect_range("proba", min=0.5, max=1, on_fail="flag")]
    try:
        with caplog.at_level(logging.WARNING, logger="otel_mltrace.checks"):
            with mlt.run("predict", checks=checks) as run:
                run.add_output(str(preds))
        assert mlt.flush(30)
    finally:
        mlt.shutdown()
    warnings = [r.getMessage() for r in caplog.records if r.name == "otel_mltrace.checks"]
    assert warnings == [
        f"check range[proba] (after) of run predict {run.id} failed: "
        "preds.csv[proba] min 0.3 < 0.5; the run's outputs are flagged "
        "(`otel-mltrace flags`, `otel-mltrace review`)"
    ]
    out = CliRunner().invoke(main, ["--db", index, "flags", "--format", "json"])
    assert out.exit_code == 0 and "check 'range[proba]' failed" in out.output, out.output


@pytest.mark.parametrize("on_error", ["warn", "fail"])
def test_a_missing_column_names_the_columns_there_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, spans: object, on_error: str
) -> None:
    """It said ``KeyError: 'nope'`` (and, with on_error="fail", "could not be evaluated:
    could not be evaluated: …")."""
    preds = tmp_path / "preds.csv"
    preds.write_text("wine_id,proba\nwine-0001,0.9\n")
    check = expect_range("nope", min=0.5, on_fail="flag", on_error=on_error)
    with caplog.at_level(logging.WARNING, logger="otel_mltrace.checks"):
        with mlt.run("predict", checks=[check]) as run:
            run.add_output(str(preds))
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "otel_mltrace.checks"]
    said = "LookupError: no column 'nope'; the columns are 'wine_id', 'proba'"
    assert said in warning and warning.count("could not be evaluated") == 1, warning
    assert run.check_results[0].message.endswith(said)
