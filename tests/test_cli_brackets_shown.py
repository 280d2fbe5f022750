"""Text the user logged is shown as written by the CLI's tables and trees, brackets
included: rich read ``[proba]`` as a markup tag and dropped it.

Found in the issue-12 acceptance audit: `otel-mltrace flags` showed the reason of a check
flag as "check 'range' failed: preds.csv min 0.3 < 0.5" (stored: "check 'range[proba]'
failed: preds.csv[proba] min 0.3 < 0.5"); the same happened to a component, a param
value or an error message holding ``[word]``.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.checks import expect_range
from otel_mltrace.cli import main


def cli(db: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["--db", db, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_brackets_survive_in_tables_trees_and_inspect(tmp_path: Path) -> None:
    db = str(tmp_path / "index.db")
    preds = tmp_path / "preds.csv"
    preds.write_text("id,proba\n1,0.3\n")
    mlt.configure(service_name="brackets", index=db)
    try:
        check = expect_range("proba", min=0.5, on_fail="flag")
        with mlt.run("predict[rf]", params={"act": "[relu]"}, checks=[check]) as run:
            run.add_output(str(preds))
        try:
            with mlt.run("score[b]") as failed:
                raise KeyError("[proba] missing")
        except KeyError:
            pass
        assert mlt.flush(30)
    finally:
        mlt.shutdown()
    flags = cli(db, "flags")
    assert "range[proba]" in flags and "preds.csv[proba]" in flags, flags
    history = cli(db, "history", "predict[rf]")
    assert "[relu]" in history, history
    tree = cli(db, "trace", str(preds))
    assert "run predict[rf] " in tree, tree
    details = cli(db, "inspect", failed.id)
    assert "score[b]" in details and "[proba] missing" in details, details
    assert "range[proba]" in cli(db, "inspect", run.id)
