"""`otel-mltrace stale` on a big fan-out: the table stays short and says what it left out.

A real SQLite index: one ``ingest`` run writes ``s3://b/clean``; 300 runs of three
``score`` components read it and write their own outputs; ``ingest`` then overwrites the
clean data, so all 300 are live and stale. The table shows ``--limit`` rows (default 50),
then "… and N more stale runs (use --limit 0 to list all)" and the count by component;
``--format json`` lists every row; ``--limit 0`` shows them all.
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.store import open_store
from otel_mltrace.cli import main

N = 300


def _run(
    run_id: str, comp: str, start: int, ins: tuple[str, ...], outs: tuple[str, ...]
) -> RunRecord:
    span = f"{start % 16**16:016x}"
    return RunRecord(run_id=run_id, component=comp, trace_id="b" * 32, span_id=span,
                     parent_span_id=None, service="s", start_ns=start, end_ns=start + 10,
                     status="ok", status_message=None, inputs=ins, outputs=outs)  # fmt: skip


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("fanout") / "index.db")
    t = time.time_ns() - 10**11
    runs = [_run("ingest-1", "ingest", t, (), ("s3://b/clean",))]
    runs += [
        _run(
            f"s-{i:04d}", f"score{i % 3}", t + 1000 * (i + 1), ("s3://b/clean",), (f"s3://b/s/{i}",)
        )
        for i in range(N)
    ]
    runs.append(_run("ingest-2", "ingest", t + 1000 * (N + 5), (), ("s3://b/clean",)))
    store = open_store(path)
    try:
        store.ingest(runs)
    finally:
        store.close()
    return path


def stale(db: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["--db", db, "stale", "--older-than", "1d", *args])
    assert result.exit_code == 0, result.output
    return result.output


def listed(text: str) -> set[str]:
    return {f"s-{i:04d}" for i in range(N) if f"s-{i:04d}" in text}


def test_the_table_shows_the_limit_then_says_how_many_more(db: str) -> None:
    text = stale(db)
    assert len(listed(text)) == 50
    assert "… and 250 more stale runs (use --limit 0 to list all)" in text
    assert "300 stale runs by component: score0 100, score1 100, score2 100" in text
    text = stale(db, "--limit", "7")
    assert len(listed(text)) == 7 and "… and 293 more stale runs" in text


def test_limit_zero_and_json_list_every_row(db: str) -> None:
    text = stale(db, "--limit", "0")
    assert len(listed(text)) == N and "more stale runs" not in text
    assert "300 stale runs by component" in text
    rows = json.loads(stale(db, "--format", "json"))
    assert len(rows) == N and all(r["stale"] for r in rows)
    assert len(json.loads(stale(db, "--format", "json", "--limit", "5"))) == N


def test_a_bad_limit_names_the_value(db: str) -> None:
    result = CliRunner().invoke(main, ["--db", db, "stale", "--limit", "-1"])
    assert result.exit_code == 2 and "-1" in result.output and "--limit" in result.output


def test_the_python_api_keeps_every_row_and_prints_a_short_view(db: str) -> None:
    from rich.console import Console

    from otel_mltrace.query import connect

    records = connect(db=db).stale("1d")
    assert len(records) == len(records.rows) == N + 1  # every live run, ingest-2 (fresh) too
    assert sum(r["stale"] for r in records) == N
    console = Console(record=True, width=200)
    console.print(records)
    text = console.export_text()
    assert len(listed(text)) == 49 and "ingest-2" in text  # sorted by component: ingest first
    assert "… and 251 more stale runs (all are in .rows and .to_pandas())" in text
    assert "300 stale runs by component: score0 100, score1 100, score2 100" in text
    page = records._repr_html_()
    assert len(listed(page)) == 49 and "251 more stale runs" in page
