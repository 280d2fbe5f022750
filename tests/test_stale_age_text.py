"""`otel-mltrace stale --older-than` names ages and the threshold in units a user reads.

Found in the issue-12 acceptance audit: `stale --older-than 1s` (or `15m`, `6h`) gave
"input … is 0.0 days old (threshold 0.0 days)" — every age under a few hours read 0.0.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.cli import main


def _one_ingest(tmp_path: Path) -> tuple[str, str]:
    """An embedded index holding one ingest run that read raw data: its path, the run ID."""
    db = str(tmp_path / "index.db")
    mlt.configure(service_name="ages", index=db)
    try:
        with mlt.run("ingest", inputs=["s3://lake/wine.parquet@v:1"]) as run:
            run.add_output("mem://raw/wine")
        assert mlt.flush(30)
    finally:
        mlt.shutdown()
    return db, run.id


def test_ages_and_threshold_are_in_readable_units(tmp_path: Path) -> None:
    db, run_id = _one_ingest(tmp_path)
    time.sleep(1.2)
    result = CliRunner().invoke(
        main, ["--db", db, "stale", "--older-than", "1s", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["run_id"] == run_id and row["stale"]
    (reason,) = row["reasons"]
    assert re.fullmatch(
        r"input s3://lake/wine\.parquet@v:1 is \d+(\.\d+)? s old \(threshold 1 s\)", reason
    ), reason
    result = CliRunner().invoke(main, ["--db", db, "stale", "--older-than", "2h"])
    assert result.exit_code == 0, result.output
    assert (
        result.output.split()
        == (  # said in words, not an empty table
            "nothing is stale: 1 live run(s), none with a newer input version, an input older "
            "than 2 h or a stale run upstream"
        ).split()
    )
    result = CliRunner().invoke(main, ["--db", db, "stale", "--older-than", "2h", "--all"])
    assert result.exit_code == 0 and "ingest" in result.output, result.output


def test_an_overwritten_unversioned_input_reads_plainly(tmp_path: Path) -> None:
    """It read "has a newer version (an unversioned write) (written by make run …)"."""
    db = str(tmp_path / "index.db")
    mlt.configure(service_name="overwritten", index=db)
    try:
        with mlt.run("make", outputs=["mem://v/out"]):
            pass
        with mlt.run("use", inputs=["mem://v/out"], outputs=["mem://v/used"]) as use:
            pass
        with mlt.run("make", outputs=["mem://v/out"]) as again:
            pass
        assert mlt.flush(30)
    finally:
        mlt.shutdown()
    result = CliRunner().invoke(main, ["--db", db, "stale", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = [r for r in json.loads(result.output) if r["stale"]]
    assert row["run_id"] == use.id
    assert row["reasons"] == [
        f"input mem://v/out has a newer version (overwritten by make run {again.id} at "
        + row["reasons"][0].rsplit(" at ", 1)[1]
    ]
    assert "(an unversioned write)" not in row["why"]


def test_an_age_just_under_a_thousand_days_is_not_in_exponent_notation(tmp_path: Path) -> None:
    """`--older-than 23990h` (999.6 days) read "older than 1e+03 days"."""
    db, _ = _one_ingest(tmp_path)
    result = CliRunner().invoke(main, ["--db", db, "stale", "--older-than", "23990h"])
    assert result.exit_code == 0, result.output
    assert "older than 1000 days" in " ".join(result.output.split()), result.output
