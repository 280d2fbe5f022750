"""`otel-mltrace history/runs` columns and filters, and `otel-mltrace compare`, on a local index."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.cli import main
from tests.support_clean_step import clean_step


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """clean -> two train runs (rf/0.95 tagged nightly, lr/0.85); yields (db, [rf, lr])."""
    tmp = tmp_path_factory.mktemp("cli_runs")
    db, clean, model, _ = clean_step(tmp, "cli-runs")
    ids = []
    for name, acc, tags in (("rf", 0.95, ["nightly"]), ("lr", 0.85, [])):
        with mlt.run("train", inputs=[clean], params={"model": name}, tags=tags) as r:
            model.write_text(name)
            r.add_output(model)
            r.log_metric("accuracy", acc)
            ids.append(r.id)
    mlt.flush()
    mlt.shutdown()
    yield db, ids


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_history_shows_params_and_metrics_as_columns(index: tuple[str, list[str]]) -> None:
    db, (rf, lr) = index
    code, out = invoke("history", "train", "--db", db)
    assert code == 0
    header = next(line for line in out.splitlines() if "run_id" in line)
    assert "params.model" in header and "metrics.accuracy" in header and "tags" in header
    assert "0.95" in out and "0.85" in out and "nightly" in out
    code, out = invoke("history", "train", "--db", db, "--columns", "run_id,metrics.accuracy")
    header = next(line for line in out.splitlines() if "run_id" in line)
    assert "params.model" not in header and "metrics.accuracy" in header


def test_filters_and_sort(index: tuple[str, list[str]]) -> None:
    db, (rf, lr) = index

    def ids(*args: str) -> list[str]:
        code, out = invoke("--db", db, "--format", "json", *args)
        assert code == 0, out
        return [r["run_id"] for r in json.loads(out)]

    assert ids("history", "train", "--where", "params.model = rf") == [rf]
    assert ids("runs", "--where", "metrics.accuracy > 0.9", "--where", "params.model=rf") == [rf]
    assert ids("runs", "--tag", "nightly") == [rf]
    assert ids("runs", "--component", "train", "--sort", "metrics.accuracy asc") == [lr, rf]
    assert ids("runs", "--status", "error") == []
    assert len(ids("runs", "--since", "1h")) == 3 and ids("runs", "--until", "1h") == []


def test_no_match_is_said_in_words(index: tuple[str, list[str]]) -> None:
    db, _ = index
    code, out = invoke("history", "train", "--db", db, "--where", "params.model = xgb")
    assert (code, out) == (0, "train: no runs match\n")
    code, out = invoke("runs", "--db", db, "--status", "error", "--format", "json")
    assert (code, out.strip()) == (0, "[]")


def test_inspect_shows_tags(index: tuple[str, list[str]]) -> None:
    """Tags were in `history` and `--format json`, but not in `inspect`'s own view."""
    db, (rf, lr) = index
    code, out = invoke("inspect", rf, "--db", db)
    assert code == 0 and "\ntags    nightly\n" in out, out
    code, out = invoke("inspect", lr, "--db", db)
    assert code == 0 and "\ntags    -\n" in out, out


def test_bad_filters_name_the_expression_and_the_valid_fields(
    index: tuple[str, list[str]],
) -> None:
    db, _ = index
    code, out = invoke("history", "train", "--db", db, "--where", "acc > 1")
    assert code == 2
    assert "unknown field 'acc' in --where 'acc > 1'" in out and "params.<name>" in out
    code, out = invoke("runs", "--db", db, "--where", "metrics.accuracy")
    assert code == 2 and "malformed --where 'metrics.accuracy'" in out
    code, out = invoke("runs", "--db", db, "--sort", "metrics.accuracy sideways")
    assert code == 2 and "malformed --sort" in out
    code, out = invoke("runs", "--db", db, "--columns", "bogus")
    assert code == 2 and "unknown field 'bogus' in --columns" in out
    code, out = invoke("history", "train", "--db", db, "--status", "failed")
    assert code == 2
    assert "unknown status 'failed' in --status 'failed' (did you mean 'error'?)" in out
    code, out = invoke("history", "train", "--db", db, "--columns", "run_id,metrics.acc")
    assert code == 2
    assert "no run shown has metrics.acc (in --columns 'run_id,metrics.acc'); " in out
    assert "metrics there are: accuracy" in out
    code, out = invoke("runs", "--help")
    assert "only runs with this status: ok, error, running, abandoned" in " ".join(out.split())
    code, out = invoke("history", "train", "--db", db, "--where", "params.modle = rf")
    assert code == 2
    assert "no run of 'train' has params.modle (in --where 'params.modle = rf'); " in out
    assert "params there are: model" in out


def test_compare(index: tuple[str, list[str]]) -> None:
    db, (rf, lr) = index
    code, out = invoke("compare", rf, lr, "--db", db)
    assert code == 0, out
    model_row = next(line for line in out.splitlines() if " model " in line)
    assert "rf" in model_row and "lr" in model_row and "≠" in model_row
    assert "shared upstream runs: clean" in out
    code, out = invoke("compare", rf, lr, "--db", db, "--format", "json")
    result = json.loads(out)
    assert result["lineage"][0]["identical"] and not result["identical"]
    code, out = invoke("compare", rf, rf, "--db", db)
    assert code == 0 and "the same run compared with itself: no differences" in out
    code, out = invoke("compare", rf, "--db", db)
    assert code == 2 and "compare takes 2 to 20 run IDs, got 1" in out
    code, out = invoke("compare", rf, "no-such-run", "--db", db)
    assert code == 2 and "no run 'no-such-run'" in out
