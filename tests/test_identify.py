"""Identify by what the user has: an edited, moved or deleted path, a bare URI, an
ambiguous run-ID prefix, a misspelt component — against the embedded index and a live
``otel-mltrace serve`` child reading the same index.

Issue: ``trace predictions/x.csv`` of a file edited/moved/deleted since it was logged said
"not found"; ``trace s3://…/wine.parquet`` silently picked ``@v:2``; an ambiguous prefix
said "not found" without the candidates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.cli import main
from tests.serve_process import ServeProcess


@dataclass
class Index:
    db: str
    workdir: Path
    preds_id: str  # file:///…/preds.csv@sha256:… as logged
    wine_v1: str
    wine_v2: str
    runs: list[str]  # the three 'score' runs, started within the same second


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    work = tmp_path_factory.mktemp("identify")
    db = str(work / "index.db")
    mlt.configure(service_name="identify", index=db)
    try:
        with mlt.run("ingest") as r:
            v1 = r.add_output("s3://lake/wine.parquet", version="1")
        with mlt.run("ingest") as r:
            v2 = r.add_output("s3://lake/wine.parquet", version="2")
        (work / "preds.csv").write_text("id,proba\n1,0.9\n")
        with mlt.run("predict", inputs=[v2]) as r:
            preds = r.add_output(str(work / "preds.csv"))
        (work / "moved.bin").write_bytes(b"model weights")
        with mlt.run("train") as r:
            r.add_output(str(work / "moved.bin"))
        runs = []
        for _ in range(3):
            with mlt.run("score") as r:
                runs.append(r.id)
        mlt.flush()
    finally:
        mlt.shutdown()
    return Index(db, work, preds, v1, v2, runs)


@pytest.fixture(scope="module")
def served(index: Index) -> Iterator[str]:
    log = index.workdir / "serve.log"
    with ServeProcess.start(index.db, log, extra_args=["--decode-workers", "0"]) as serve:
        yield serve.http_url


@pytest.fixture(params=["db", "server"])
def where(request: pytest.FixtureRequest, index: Index) -> list[str]:
    if request.param == "server":
        return ["--server", request.getfixturevalue("served")]
    return ["--db", index.db]


def cli(*args: str) -> tuple[int, str]:
    env = {k: None for k in os.environ if k.startswith("MLTRACE_")}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_bare_uri_says_which_version_and_how_many_others(where: list[str], index: Index) -> None:
    code, out = cli(*where, "trace", "s3://lake/wine.parquet", "--format", "json")
    assert code == 0, out
    graph = json.loads(out)
    assert graph["root"]["id"] == index.wine_v2
    resolved = graph["resolved"]
    assert resolved["chosen"] == index.wine_v2 and resolved["asked"] == "s3://lake/wine.parquet"
    assert [v["artifact_id"] for v in resolved["versions"]] == [index.wine_v2, index.wine_v1]
    code, out = cli(*where, "trace", "s3://lake/wine.parquet", "--all-versions")
    assert code == 0, out
    assert "showing version v:2, the newest of 2 at s3://lake/wine.parquet" in out
    assert "1 other version(s) (--all-versions lists them)" in out
    assert index.wine_v1 in out and "<- shown" in out  # the versions table
    code, out = cli(*where, "downstream", "s3://lake/wine.parquet", "--format", "json")
    assert code == 0 and "predict" in out, out


def test_edited_file_answers_for_its_logged_version(
    where: list[str], index: Index, tmp_path: Path
) -> None:
    edited = tmp_path / "preds.csv"
    logged = index.workdir / "preds.csv"
    try:
        logged.write_text("id,proba\n1,0.1\n")  # edited after it was logged
        code, out = cli(*where, "trace", str(logged), "--format", "json")
    finally:
        logged.write_text("id,proba\n1,0.9\n")
    assert code == 0, out
    graph = json.loads(out)
    assert graph["root"]["id"] == index.preds_id
    assert "not in the index with version" in graph["resolved"]["note"]
    assert any(r["component"] == "predict" for r in graph["runs"].values())
    del edited


def test_moved_file_is_found_by_its_content(where: list[str], index: Index, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere.bin"
    moved.write_bytes(b"model weights")  # same content as the logged moved.bin
    code, out = cli(*where, "trace", str(moved))
    assert code == 0, out
    assert "the same content" in out and "moved.bin" in out and "train" in out


def test_deleted_relative_path_resolves_to_its_location(
    where: list[str], index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(index.workdir)
    gone = index.workdir / "preds.csv"
    gone.rename(index.workdir / "preds.kept")
    try:
        code, out = cli(*where, "trace", "preds.csv", "--format", "json")
    finally:
        (index.workdir / "preds.kept").rename(gone)
    assert code == 0, out
    graph = json.loads(out)
    assert graph["root"]["id"] == index.preds_id
    assert "the newest of 1 at file://" in graph["resolved"]["note"]
    code, out = cli(*where, "trace", "never-logged.csv")
    assert code == 2 and "'never-logged.csv' is neither a run ID" in out, out
    assert f"nothing was logged at {(index.workdir / 'never-logged.csv').as_uri()}" in out


def test_ambiguous_prefix_lists_the_candidates(where: list[str], index: Index) -> None:
    prefix = os.path.commonprefix(index.runs)
    assert len(prefix) >= 8  # time-ordered IDs of one second share at least 8 characters
    for command in ("inspect", "trace"):
        code, out = cli(*where, command, prefix)
        assert code == 2, out
        assert f"run ID prefix {prefix!r} matches several runs" in out
        assert all(run_id in out for run_id in index.runs) and "score" in out


def test_unknown_component_suggests_the_nearest(where: list[str]) -> None:
    code, out = cli(*where, "history", "predcit")
    assert code == 2 and "no component 'predcit' (did you mean 'predict'?)" in out, out
    code, out = cli(*where, "history", "zzz")
    assert code == 2 and "did you mean" not in out, out


def test_a_component_name_given_to_trace_points_at_history(where: list[str]) -> None:
    code, out = cli(*where, "trace", "predict")
    assert code == 2 and "'predict' is a component: its runs are in" in out, out
    assert "otel-mltrace history predict" in out


def python_answer(where: list[str], kind: str, path: str | Path) -> dict[str, object] | str:
    """``otel_mltrace.query.trace/downstream`` on the same index as ``where``: the graph as
    a dict (checked against its ``resolved`` and HTML view), or the ``NotFound`` message."""
    from otel_mltrace import query

    target = {"db": where[1]} if where[0] == "--db" else {"server": where[1]}
    try:
        lineage = getattr(query, kind)(path, **target)
    except query.NotFound as exc:
        return f"not found: {exc}"
    graph: dict[str, object] = lineage.to_dict()
    assert lineage.resolved == graph.get("resolved")
    if lineage.resolved:
        assert f"note: {lineage.resolved['note']}" in lineage._repr_html_()
    return graph


@pytest.mark.parametrize("kind", ["trace", "downstream"])
@pytest.mark.parametrize("case", ["edited", "deleted", "moved"])
def test_python_api_identifies_paths_as_the_cli_does(
    where: list[str],
    index: Index,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    kind: str,
) -> None:
    """The same path gives the same graph from ``otel-mltrace trace`` and ``query.trace``."""
    monkeypatch.chdir(index.workdir)
    logged = index.workdir / "preds.csv"
    original = logged.read_text()
    asked: str | Path = "preds.csv"
    try:
        if case == "edited":
            logged.write_text("id,proba\n1,0.1\n")
        elif case == "deleted":
            logged.rename(index.workdir / "preds.kept")
        else:
            asked = tmp_path / "elsewhere.csv"
            asked.write_text(original)  # the same content at a new location
        code, out = cli(*where, kind, str(asked), "--format", "json")
        from_python = python_answer(where, kind, asked)
        from_pathlike = python_answer(where, kind, Path(asked))
    finally:
        if case == "deleted":
            (index.workdir / "preds.kept").rename(logged)
        logged.write_text(original)
    assert code == 0, out
    from_cli = json.loads(out)
    assert from_cli["root"]["id"] == index.preds_id
    assert from_python == from_cli
    assert from_pathlike == from_cli
    expected = {
        "edited": "not in the index with version",
        "deleted": "the newest of 1 at file://",
        "moved": "the same content",
    }[case]
    assert expected in from_cli["resolved"]["note"]


def test_python_api_names_what_it_tried_for_an_unknown_path(
    where: list[str], index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(index.workdir)
    code, out = cli(*where, "trace", "never-logged.csv")
    answer = python_answer(where, "trace", "never-logged.csv")
    assert code == 2
    assert answer == " ".join(out.split())  # the CLI wraps nothing (width 200), same words
    assert f"nothing was logged at {(index.workdir / 'never-logged.csv').as_uri()}" in answer


def test_python_flag_identifies_a_path_as_the_cli_does(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``otel-mltrace flag preds.csv`` flagged the file's artifact; ``mlt.flag("preds.csv")``
    said "not found". Both now flag the same artifact (a copy of the index: flags persist)."""
    import shutil

    db = str(tmp_path / "copy.db")
    shutil.copy(index.db, db)
    monkeypatch.chdir(index.workdir)
    code, out = cli("--db", db, "flag", "preds.csv", "--format", "json")
    assert code == 0, out
    assert json.loads(out) == [{"id": index.preds_id, "kind": "artifact", "reason": None}]
    assert mlt.unflag("preds.csv", db=db) == 1
    assert mlt.flag(Path("preds.csv"), reason="r", db=db) == [
        {"id": index.preds_id, "kind": "artifact", "reason": "r"}
    ]
    code, out = cli("--db", db, "unflag", "preds.csv")
    assert code == 0 and "removed 1 flag(s)" in out, out
