"""flag / unflag / review: the faulty upstream run ranks first, common runs do not."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from mltrace_collector.index.model import RecordChunk, RunRecord
from mltrace_collector.index.queries.client import RemoteQueries
from mltrace_collector.index.queries.lineage_queries import LineageQueries, NotFound
from mltrace_collector.index.queries.review import fisher_greater, score_row
from mltrace_collector.index.store import Store, open_store
from mltrace_collector.service.collector import Collector
from otel_mltrace.cli import main
from tests import backends

lineage_store = backends.lineage_store  # fixtures (SQLite and a real PostgreSQL)
postgres_server = backends.postgres_server
postgres_url = backends.postgres_url


def _run(run_id: str, component: str, start: int, inputs: Sequence[str] = (),
         outputs: Sequence[str] = (), rev: str = "good",
         chunks: tuple[RecordChunk, ...] = ()) -> RunRecord:  # fmt: skip
    return RunRecord(
        run_id=run_id, component=component, trace_id="b" * 32, span_id=f"{start:016x}",
        parent_span_id=None, service="svc", start_ns=start, end_ns=start + 10, status="ok",
        status_message=None, inputs=tuple(inputs), outputs=tuple(outputs), code_revision=rev,
        record_chunks=chunks,
    )  # fmt: skip


def build_batch_pipeline(store: Store) -> dict[str, list[str]]:
    """ingest -> 4 featurize runs (feat-2 faulty, revision 'bad') -> one predict run making
    1,000 predictions, each from one feature row; train feeds every prediction too."""
    runs = [_run("ingest-1", "ingest", 10, ["raw@v:1"], ["clean@v:1"], rev="r-ing"),
            _run("train-1", "train", 50, ["clean@v:1"], ["model@v:1"])]  # fmt: skip
    pred_ids: list[str] = []
    sources: list[str] = []
    by_feat: dict[str, list[str]] = {}
    for k in range(4):
        rows = tuple(f"feat-{k}-row-{j}" for j in range(250))
        runs.append(_run(f"feat-{k}", "featurize", 100 + k, ["clean@v:1"], [f"feat-{k}@v:1"],
                         rev="bad" if k == 2 else "good",
                         chunks=(RecordChunk(f"feat-{k}@v:1", 0, 1, rows),)))  # fmt: skip
        by_feat[f"feat-{k}"] = [f"p-{k}-{j}" for j in range(250)]
        pred_ids += by_feat[f"feat-{k}"]
        sources += rows
    chunks = tuple(
        RecordChunk("preds@v:1", i // 300, 4, tuple(pred_ids[i : i + 300]),
                    tuple(sources[i : i + 300]))
        for i in range(0, 1000, 300)
    )  # fmt: skip
    inputs = ["model@v:1", *(f"feat-{k}@v:1" for k in range(4))]
    runs.append(_run("predict-1", "predict", 200, inputs, ["preds@v:1"], chunks=chunks))
    store.ingest(runs)
    return by_feat


def test_fisher_and_lift_are_what_the_docstring_says() -> None:
    assert fisher_greater(3, 3, 0, 3) == pytest.approx(1 / math.comb(6, 3))
    assert fisher_greater(0, 5, 5, 5) == 1.0
    everywhere = score_row(40, 40, 960, 960)
    assert everywhere["lift"] == pytest.approx(1.0, abs=0.03) and abs(everywhere["score"]) < 0.03


def test_review_ranks_the_faulty_run_first_not_the_common_one(lineage_store: Store) -> None:
    by_feat = build_batch_pipeline(lineage_store)
    q = LineageQueries(lineage_store)
    rng = random.Random(3)
    flagged = rng.sample(by_feat["feat-2"], 225) + rng.sample(by_feat["feat-0"], 5)
    flagged += rng.sample(by_feat["feat-3"], 5)
    assert {f["kind"] for f in q.flag(flagged, reason="wrong label")} == {"record"}
    result = q.review(limit=50)
    assert result["flagged"] == 235 and result["unflagged"] == 765
    top = result["runs"][0]
    assert top["run_id"] == "feat-2" and top["code_revision"] == "bad"
    assert top["flagged_count"] == 225 and top["unflagged_count"] == 25
    assert top["lift"] > 3 and top["p_value"] < 1e-50
    by_id = {r["run_id"]: r for r in result["runs"]}
    for common in ("ingest-1", "train-1", "predict-1"):  # in every lineage: lift ~ 1, no suspect
        assert common not in by_id
    assert all(r["flagged_count"] > 0 and r["score"] > 0 for r in result["runs"])
    assert result["revisions"][0]["code_revision"] == "bad"
    assert result["revisions"][0]["components"] == ["featurize"]
    assert q.unflag(flagged[:10]) == 10
    assert q.review()["flagged"] == 225
    with pytest.raises(NotFound, match="'p-2-nope' is not flagged"):
        q.unflag(["p-2-nope"])
    assert q.unflag(None) == 225 and q.flags() == []


def test_review_of_flagged_artifacts_compares_runs_of_the_same_component(
    lineage_store: Store,
) -> None:
    runs = [
        _run("train-1", "train", 5, ["raw-train@v:1"], ["model@v:1"]),
        _run("enrich-good", "enrich", 6, ["crm@v:1"], ["enriched@v:good"]),
        _run("enrich-bad", "enrich", 7, ["crm@v:2"], ["enriched@v:bad"], rev="bad"),
    ]
    for day in range(10):
        enriched = "enriched@v:bad" if day in (2, 5, 8) else "enriched@v:good"
        runs.append(_run(f"fetch-{day}", "fetch", 100 + day * 100, [f"events@v:{day}"],
                         [f"batch@v:{day}"]))  # fmt: skip
        inputs = ["model@v:1", enriched, f"batch@v:{day}"]
        runs.append(_run(f"predict-{day}", "predict", 150 + day * 100, inputs, [f"preds@v:{day}"]))
    lineage_store.ingest(runs)
    q = LineageQueries(lineage_store)
    q.flag(["preds@v:2", "preds@v:5", "preds@v:8"])
    result = q.review(limit=100)
    assert result["runs"][0]["run_id"] == "enrich-bad"
    assert result["runs"][0]["coverage"] == 1.0 and result["runs"][0]["unflagged_count"] == 0
    # train-1 feeds every prediction (score <= 0): it explains nothing and is not listed
    assert "train-1" not in {r["run_id"] for r in result["runs"]}


def test_flag_unknown_id_names_it_and_flags_nothing(lineage_store: Store) -> None:
    build_batch_pipeline(lineage_store)
    q = LineageQueries(lineage_store)
    with pytest.raises(NotFound, match="'no-such-id'"):
        q.flag(["p-0-1", "no-such-id"])
    assert q.flags() == []
    kinds = {f["id"]: f["kind"] for f in q.flag(["p-0-1", "preds@v:1", "predict-1"])}
    assert kinds == {"p-0-1": "record", "preds@v:1": "artifact", "predict-1": "run"}


def test_cli_flag_review_unflag(tmp_path: Path) -> None:
    db = str(tmp_path / "index.db")
    store = open_store(db)
    build_batch_pipeline(store)
    store.close()
    runner = CliRunner()
    bad = runner.invoke(main, ["--db", db, "flag", "p-2-1", "pred-does-not-exist"])
    assert bad.exit_code != 0 and "pred-does-not-exist" in bad.output
    ids = [f"p-2-{j}" for j in range(0, 250, 2)]
    ok = runner.invoke(main, ["--db", db, "flag", *ids, "--reason", "complaint"])
    assert ok.exit_code == 0, ok.output
    table = runner.invoke(main, ["--db", db, "review", "--limit", "3"])
    assert table.exit_code == 0 and "feat-2" in table.output and "lift" in table.output
    as_json = runner.invoke(main, ["--db", db, "review", "--format", "json"])
    assert json.loads(as_json.output)["runs"][0]["run_id"] == "feat-2"
    listed = runner.invoke(main, ["--db", db, "flags", "--format", "json"])
    assert {f["reason"] for f in json.loads(listed.output)} == {"complaint"}
    assert "removed 125 flag(s)" in runner.invoke(main, ["--db", db, "unflag", "--all"]).output
    usage = runner.invoke(main, ["--db", db, "unflag"])
    assert usage.exit_code == 2 and "--all" in usage.output


def test_api_and_remote_client(collector: Collector) -> None:
    build_batch_pipeline(collector.store)
    remote = RemoteQueries(collector.http_endpoint)
    with pytest.raises(NotFound, match="'ghost-42'"):
        remote.flag(["ghost-42"])
    assert remote.flag(["p-2-7", "p-2-9"], reason="r")[0]["kind"] == "record"
    assert remote.trace("p-2-7")["root"] == {"kind": "record", "id": "p-2-7"}
    assert remote.review(limit=5)["runs"][0]["run_id"] == "feat-2"
    assert [f["target_id"] for f in remote.flags()] == ["p-2-7", "p-2-9"]
    assert remote.unflag(["p-2-7"]) == 1 and remote.unflag(None) == 1


def test_sdk_flag_on_the_embedded_index(tmp_path: Path) -> None:
    index = str(tmp_path / "index.db")
    mlt.configure(service_name="flags", index=index)
    try:
        with mlt.run("predict") as run:
            out = run.add_output("s3://bucket/preds.parquet", version="v:1")
            run.log_records(out, ["a", "b", "c"])
        assert mlt.flag(["b"], reason="wrong", db=index) == [
            {"id": "b", "kind": "record", "reason": "wrong"}
        ]
        with pytest.raises(NotFound, match="'zzz'"):
            mlt.flag("zzz", db=index)
        assert mlt.unflag(all=True, db=index) == 1
    finally:
        mlt.shutdown()
