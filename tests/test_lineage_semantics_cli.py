"""Issue 12 from the user's side: `stale`, `review` and record `trace` through the SDK
(embedded index) and the `otel-mltrace` CLI, on the cases the issue measured.

* an unversioned URI read, then overwritten by another run: the reader is stale;
* two variants of ``train`` (logreg, rf), a partial re-run that retrains rf only: the
  logreg model is stale, and ``predict`` (old logreg model, new features) transitively;
* ``review`` never ranks a run that covers no flagged item, and says so when nothing is
  over-represented;
* the wine scenario: stable ``wine_id`` keys through raw -> clean -> predictions over
  three data versions, two model variants, partial re-runs: a prediction traces to one
  version only (no cycle), and ``review`` blames the ingest run that produced the flagged
  rows, not a baseline ingest run outside their lineage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store.base import Store
from mltrace_collector.service.exporters.staleness import StaleCache
from otel_mltrace.cli import main
from tests import backends

lineage_store = backends.lineage_store  # fixtures (SQLite and a real PostgreSQL)
postgres_server = backends.postgres_server
postgres_url = backends.postgres_url


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    db = str(tmp_path / "index.db")
    mlt.configure(service_name="wine", index=db)
    try:
        yield db
    finally:
        mlt.shutdown()


def cli(db: str, *args: str) -> Any:
    assert mlt.flush(60), "the embedded index did not take the spans in 60 s"
    result = CliRunner().invoke(main, ["--db", db, *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def cli_text(db: str, *args: str) -> str:
    assert mlt.flush(60), "the embedded index did not take the spans in 60 s"
    result = CliRunner().invoke(main, ["--db", db, *args])
    assert result.exit_code == 0, result.output
    return result.output


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_reader_of_an_overwritten_unversioned_uri_is_stale(index: str) -> None:
    with mlt.run("make", outputs=["mem://v/out"]):
        pass
    with mlt.run("use", inputs=["mem://v/out"]) as run:
        run.add_output("mem://v/used")
        reader = run.id
    assert not [r for r in cli(index, "stale", "--older-than", "7d") if r["stale"]]
    with mlt.run("make", outputs=["mem://v/out"]):
        pass
    rows = cli(index, "stale", "--older-than", "7d")
    assert [r["run_id"] for r in rows if r["stale"]] == [reader]
    assert "mem://v/out has a newer version" in rows[0]["reasons"][0]


def _pipeline(tmp: Path, round_: int, *, train: tuple[str, ...]) -> dict[str, str]:
    """ingest -> clean -> featurize -> train (the given variants) -> predict (logreg)."""
    ids: dict[str, str] = {}
    raw = write(tmp / "raw.csv", f"round {round_}\n")
    with mlt.run("ingest", inputs=[raw]) as run:
        ids["clean"] = run.add_output(write(tmp / "clean.csv", f"clean {round_}\n"))
        ids["ingest"] = run.id
    with mlt.run("featurize", inputs=[ids["clean"]]) as run:
        ids["features"] = run.add_output(write(tmp / "features.npz", f"features {round_}\n"))
        ids["featurize"] = run.id
    for variant in train:
        with mlt.run("train", inputs=[ids["features"]], params={"model": variant}) as run:
            model = tmp / f"model-{variant}.pkl"
            ids[variant] = run.add_output(write(model, f"{variant} {round_}\n"))
            ids[f"train-{variant}"] = run.id
    with mlt.run("predict", inputs=[tmp / "model-logreg.pkl", ids["features"]]) as run:
        ids["predictions"] = run.add_output(write(tmp / "pred.csv", f"pred {round_}\n"))
        ids["predict"] = run.id
    return ids


def test_stale_covers_variants_and_is_transitive(index: str, tmp_path: Path) -> None:
    first = _pipeline(tmp_path, 1, train=("logreg", "rf"))
    assert not [r for r in cli(index, "stale", "--older-than", "7d") if r["stale"]]
    second = _pipeline(tmp_path, 2, train=("rf",))  # partial re-run: rf retrained only
    rows = {r["run_id"]: r for r in cli(index, "stale", "--older-than", "7d", "--all")}
    stale = {run_id for run_id, r in rows.items() if r["stale"]}
    assert stale == {first["train-logreg"], second["predict"]}
    logreg = rows[first["train-logreg"]]
    assert "has a newer version" in logreg["reasons"][0] and "features.npz" in logreg["reasons"][0]
    predict = rows[second["predict"]]
    assert predict["reasons"] == []  # its own inputs are the newest ...
    up = predict["upstream"]  # ... but the model it used was trained on old features
    assert up["run_id"] == first["train-logreg"]
    assert up["path"] == [second["predict"], first["logreg"], first["train-logreg"]]
    # both variants are live and listed (with --all): rf is fresh
    assert rows[second["train-rf"]]["stale"] is False
    text = cli_text(index, "stale", "--older-than", "7d")
    assert "upstream train run" in text and first["train-logreg"][:8] in text


def test_review_never_ranks_runs_without_flagged_items(index: str) -> None:
    with mlt.run("ingest", outputs=["mem://raw"]) as run:
        raw = run.id
    with mlt.run("predict", inputs=["mem://raw"]) as run:
        out = run.add_output("s3://b/preds", version="v:1")
        run.log_records(out, [f"p-{i}" for i in range(10)])
    cli(index, "flag", "p-3")
    result = cli(index, "review")
    # every prediction has the same lineage: nothing is over-represented, nothing listed
    assert result["runs"] == [] and "no upstream run is over-represented" in result["verdict"]
    assert "no upstream run is over-represented" in cli_text(index, "review")
    assert raw not in json.dumps(result["runs"])


def _wine_round(tmp: Path, n: int, new_ids: range, *, train: bool) -> dict[str, str]:
    """Round ``n``: ingest writes raw/wine.csv version n (the wine IDs in ``new_ids``);
    clean merges it with the baseline rows into clean/wine.csv version n; train (two
    variants, only when ``train``) and predict keep ``wine_id`` as the record key."""
    ids: dict[str, str] = {}
    keys = [f"wine-{i:04d}" for i in new_ids]
    with mlt.run("ingest", params={"batch": n}) as run:
        ids["raw"] = run.add_output(write(tmp / "raw" / "wine.csv", f"batch {n}\n"))
        run.log_records(ids["raw"], keys)
        ids["ingest"] = run.id
    with mlt.run("clean", inputs=[ids["raw"], tmp / "baseline.csv"]) as run:
        ids["clean"] = run.add_output(write(tmp / "clean" / "wine.csv", f"clean {n}\n"))
        base = [f"wine-{i:04d}" for i in range(100)]
        run.log_records(ids["clean"], base + keys, sources=base + keys)
    if train:
        for variant in ("logreg", "rf"):
            with mlt.run("train", inputs=[ids["clean"]], params={"model": variant}) as run:
                run.add_output(write(tmp / f"model-{variant}.pkl", f"{variant} {n}\n"))
    with mlt.run("predict", inputs=[ids["clean"], tmp / "model-logreg.pkl"]) as run:
        ids["pred"] = run.add_output(write(tmp / "pred" / f"batch{n}.csv", f"pred {n}\n"))
        every = [f"wine-{i:04d}" for i in range(100)] + keys
        run.log_records(ids["pred"], every, sources=every)
        ids["predict"] = run.id
    return ids


def test_wine_scenario_stable_keys_three_versions(index: str, tmp_path: Path) -> None:
    with mlt.run("ingest-baseline") as run:
        base_file = run.add_output(write(tmp_path / "baseline.csv", "baseline\n"))
        run.log_records(base_file, [f"wine-{i:04d}" for i in range(100)])
        baseline = run.id
    rounds = [
        _wine_round(tmp_path, 1, range(100, 200), train=True),
        _wine_round(tmp_path, 2, range(100, 200), train=False),  # partial re-runs
        _wine_round(tmp_path, 3, range(100, 200), train=False),
    ]
    third = rounds[2]
    # record trace: the newest prediction of wine-0115 comes from version 3 only, no cycle
    graph = cli(index, "trace", "wine-0115")
    records = graph["records"].values()
    assert sorted(len(r["produced_by"]) for r in records) == [1, 1, 1]  # one set per hop
    assert {o for r in records for o in r["outputs"]} == {
        third["pred"],
        third["clean"],
        third["raw"],
    }
    assert {p for r in records for p in r["produced_by"]} >= {third["ingest"], third["predict"]}
    assert not [r for r in records if baseline in r["produced_by"]]  # holds no wine-0115
    assert "(cycle)" not in cli_text(index, "trace", "wine-0115")
    # review: two predictions of the third batch flagged -> the ingest run of batch 3
    cli(index, "flag", "wine-0115", "wine-0142", "--reason", "complaint")
    result = cli(index, "review")
    assert result["runs"], result
    assert result["runs"][0]["run_id"] == third["ingest"]
    assert result["runs"][0]["flagged_count"] == 2
    listed = {r["run_id"] for r in result["runs"]}
    assert baseline not in listed and not {r["ingest"] for r in rounds[:2]} & listed
    # stale: both model variants read clean version 1 (newer ones exist), and the third
    # prediction used the old logreg model
    rows = {r["run_id"]: r for r in cli(index, "stale", "--older-than", "7d")}
    trains = {r for r, v in rows.items() if v["component"] == "train"}
    assert len(trains) == 2 and all(rows[t]["stale"] for t in trains)
    assert (
        rows[third["predict"]]["stale"] and rows[third["predict"]]["upstream"]["run_id"] in trains
    )


def test_stale_gauge_sees_an_overwritten_unversioned_input(lineage_store: Store) -> None:
    """``mltrace_component_stale`` (StaleCache, the rules of `stale`) agrees with `stale` on
    the basic case: the newest ``use`` run read mem://v/out, which was overwritten."""

    def run(
        run_id: str, comp: str, start: int, ins: tuple[str, ...], outs: tuple[str, ...]
    ) -> RunRecord:
        return RunRecord(run_id=run_id, component=comp, trace_id="a" * 32, span_id=f"{start:016x}",
                         parent_span_id=None, service="s", start_ns=start, end_ns=start + 10,
                         status="ok", status_message=None, inputs=ins, outputs=outs)  # fmt: skip

    t = time.time_ns() - 10**9  # recent: no input is older than the threshold
    lineage_store.ingest([
        run("make-1", "make", t, (), ("mem://v/out",)),
        run("use-1", "use", t + 100, ("mem://v/out",), ("mem://v/used",)),
    ])  # fmt: skip
    cache = StaleCache(LineageQueries(lineage_store), stale_after_s=7 * 86400)
    assert cache.get({"use"}, 1)["use"].stale is False
    lineage_store.ingest([run("make-2", "make", t + 300, (), ("mem://v/out",))])
    cache._full_at = 0.0  # the refresh interval (at least 1 s) elapsed
    assert cache.get({"use"}, 2)["use"].stale is True
