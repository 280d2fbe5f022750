"""The `otel-mltrace` CLI on an embedded index: output formats, errors and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.cli import main, parse_duration
from tests.support_clean_step import clean_step


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """An embedded index with raw -> clean -> model; yields (db, model path, train run ID)."""
    db, clean, model, _ = clean_step(tmp_path, "cli-test")
    with mlt.run("train", inputs=[clean], params={"C": 2}) as r:
        model.write_bytes(b"w")
        r.add_output(model)
        r.log_metric("acc", 0.75)
        train_id = r.id
    mlt.flush()
    mlt.shutdown()
    yield db, str(model), train_id


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_trace_formats(index: tuple[str, str, str]) -> None:
    db, model, train_id = index
    code, out = invoke("trace", model, "--db", db)
    assert code == 0 and "run train" in out and "run clean" in out and "(raw)" in out
    code, out = invoke("--db", db, "--format", "json", "trace", model)
    graph = json.loads(out)
    assert sorted(r["component"] for r in graph["runs"].values()) == ["clean", "train"]
    assert train_id in graph["runs"]
    code, out = invoke("trace", model, "--db", db, "--format", "dot")
    assert out.startswith("digraph lineage {") and out.count("->") == 4
    code, out = invoke("trace", model, "--db", db, "--format", "mermaid")
    assert out.startswith("flowchart LR") and out.count("-->") == 4
    code, out = invoke("trace", model, "--db", db, "--depth", "0", "--format", "json")
    assert json.loads(out)["truncated"] is True


def test_group_format_a_command_cannot_show_is_a_usage_error(
    index: tuple[str, str, str],
) -> None:
    db, model, _ = index
    code, out = invoke("--db", db, "--format", "dot", "components")
    assert code == 2 and "--format dot does not apply to 'components'" in out
    assert "tree or json" in out and "Traceback" not in out
    code, out = invoke("--db", db, "--format", "json", "components")
    assert code == 0 and json.loads(out)[0]["component"] in {"clean", "train"}
    code, out = invoke("--db", db, "--format", "dot", "trace", model)
    assert code == 0 and out.startswith("digraph lineage {")


def test_run_and_component_queries(index: tuple[str, str, str]) -> None:
    db, _, train_id = index
    # a prefix past the UUIDv7 millisecond field: runs started in the same ms share 13 chars
    code, out = invoke("inspect", train_id[:23], "--db", db, "--format", "json")
    info = json.loads(out)
    assert code == 0 and info["run_id"] == train_id
    assert info["params"] == {"C": 2} and info["metrics"] == {"acc": 0.75}
    assert info["inputs"][0]["producer_run_id"] is not None
    code, out = invoke("history", "train", "--db", db, "--format", "json")
    assert [r["run_id"] for r in json.loads(out)] == [train_id]
    code, out = invoke("components", "--db", db, "--format", "json")
    assert [c["component"] for c in json.loads(out)] == ["clean", "train"]
    code, out = invoke("stale", "--db", db, "--older-than", "0s", "--format", "json")
    assert {r["component"] for r in json.loads(out) if r["stale"]} == {"clean", "train"}


def test_errors_name_the_value_and_exit_nonzero(
    index: tuple[str, str, str], tmp_path: Path
) -> None:
    db, _, _ = index
    code, out = invoke("inspect", "no-such-run", "--db", db)
    assert code == 2 and "no run 'no-such-run'" in out
    code, out = invoke("trace", "s3://nowhere/x", "--db", db)
    assert code == 2 and "'s3://nowhere/x' is neither" in out
    code, out = invoke("history", "nope", "--db", db)
    assert code == 2 and "no component 'nope'" in out
    code, out = invoke("runs", "--db", str(tmp_path / "missing.db"))
    assert code == 2 and "no lineage index at" in out
    code, out = invoke("--server", "http://127.0.0.1:9", "runs")
    assert code == 3 and "cannot reach the collector at http://127.0.0.1:9" in out


def test_config_lists_every_setting() -> None:
    code, out = invoke("config")
    assert code == 0 and "MLTRACE_INDEX" in out and "MLTRACE_AUTH_TOKEN" in out


def test_parse_time_reads_utc_z_suffix() -> None:
    from otel_mltrace.cli import parse_time

    assert parse_time("2026-01-01T00:00:00Z") == 1767225600 * 10**9
    assert parse_time("2026-01-01T00:00:00+00:00") == 1767225600 * 10**9


def test_parse_duration() -> None:
    assert parse_duration("90") == 90 and parse_duration("15m") == 900
    assert parse_duration("1.5h") == 5400 and parse_duration("7d") == 604800
    with pytest.raises(click.BadParameter, match="'soon' is not a duration"):
        parse_duration("soon")
