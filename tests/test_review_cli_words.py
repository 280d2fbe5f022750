"""`otel-mltrace review` prints the tables that have rows and says in words which have
none, rather than an empty table with headers (which reads like a failed query).

Found in the issue-12 acceptance audit: with two flagged predictions ranked by run, the
components and code revisions tables came out empty, headers only.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.cli import main


def test_empty_rankings_are_said_in_words(tmp_path: Path) -> None:
    db = str(tmp_path / "index.db")
    mlt.configure(service_name="review-words", index=db)
    outputs = []
    try:
        for batch in (1, 2):
            with mlt.run("ingest", inputs=[f"s3://lake/wine.parquet@v:{batch}"]) as r:
                raw = r.add_output(f"mem://raw/{batch}", version="1")
            with mlt.run("predict", inputs=[raw]) as r:
                outputs.append(r.add_output(f"mem://preds/{batch}", version="1"))
        assert mlt.flush(30)
    finally:
        mlt.shutdown()
    runner = CliRunner()
    assert runner.invoke(main, ["--db", db, "flag", outputs[0]]).exit_code == 0
    result = runner.invoke(main, ["--db", db, "review"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "review: runs (flagged 1 / unflagged 1)" in lines  # the runs table, with rows
    assert "review: components: none over-represented" in lines
    assert "review: code revisions: none over-represented" in lines
    assert not [line for line in lines if line.startswith("review: components (")]
