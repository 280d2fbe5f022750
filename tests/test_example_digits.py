"""End to end: the digits example, one process per step, stitched by artifact ID alone.

The runner is executed as a user would run it (a subprocess, embedded index in tmp). The
index must then hold one run per step, linked exactly: every input of a step is an output
of an earlier step, down to the raw drop that no run produced. A rerun of a step must
reproduce identical artifact IDs (content addressing), and a run on shifted raw data must
produce new versions of everything downstream.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mltrace_collector.index.queries.compare import compare
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import Store, open_store
from otel_mltrace import artifact_id

REPO = Path(__file__).resolve().parents[1]
STEPS = ("ingest", "split", "featurize", "train", "evaluate", "predict")
TIMEOUT_S = 180
_ROUTING_VARS = (
    "MLTRACE_INDEX",
    "MLTRACE_ENDPOINT",
    "MLTRACE_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)

Row = dict[str, Any]


def _env(index: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ROUTING_VARS}
    env["MLTRACE_INDEX"] = str(index)
    return env


def _run(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _pipeline(workdir: Path, env: dict[str, str], *extra: str) -> str:
    proc = _run(["examples.digits.pipeline", "--workdir", str(workdir), *extra], env)
    assert proc.returncode == 0, f"pipeline failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@dataclass(frozen=True)
class Digits:
    """Everything the module's tests inspect, produced once (the pipeline takes seconds)."""

    workdir: Path
    store: Store
    first: dict[str, Row]
    """Component -> its run from the first (unshifted) pipeline."""
    rerun: Row
    """A second ``featurize`` run on unchanged inputs."""
    retrain: Row
    """A second ``train`` run, C=0.5, on the first pipeline's features."""
    shifted: dict[str, Row]
    """Component -> its run from the pipeline on shifted raw data."""
    raw_id: str
    """ID of the raw drop as the first pipeline saw it."""
    predictions: list[dict[str, str]]
    metrics: dict[str, Any]
    test_labels: dict[str, int]
    stdout: str


def _runs_between(store: Store, start_ns: int, end_ns: int) -> dict[str, Row]:
    rows = store.query(
        "SELECT run_id, component, status, start_ns, end_ns FROM runs "
        "WHERE start_ns >= ? AND start_ns < ? ORDER BY start_ns",
        (start_ns, end_ns),
    )
    by_component: dict[str, Row] = {}
    for row in rows:
        assert row["component"] not in by_component, f"two {row['component']} runs: {rows}"
        by_component[row["component"]] = row
    return by_component


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Digits]:
    workdir = tmp_path_factory.mktemp("digits")
    index = tmp_path_factory.mktemp("index") / "lineage.db"
    env = _env(index)

    t0 = time.time_ns()
    stdout = _pipeline(workdir, env)
    t1 = time.time_ns()
    raw_id = artifact_id(workdir / "source" / "digits_raw.csv")
    with (workdir / "predictions" / "predictions.csv").open(newline="") as fh:
        predictions = list(csv.DictReader(fh))
    metrics = json.loads((workdir / "reports" / "metrics.json").read_text())
    with (workdir / "data" / "test.csv").open(newline="") as fh:
        test_labels = {r["sample_id"]: int(r["label"]) for r in csv.DictReader(fh)}

    proc = _run(["examples.digits.featurize", "--workdir", str(workdir)], env)
    assert proc.returncode == 0, proc.stderr
    t2 = time.time_ns()
    proc = _run(["examples.digits.train", "--workdir", str(workdir), "--C", "0.5"], env)
    assert proc.returncode == 0, proc.stderr
    t2b = time.time_ns()
    _pipeline(workdir, env, "--shift", "3")
    t3 = time.time_ns()

    store = open_store(str(index))
    try:
        yield Digits(
            workdir=workdir,
            store=store,
            first=_runs_between(store, t0, t1),
            rerun=_runs_between(store, t1, t2)["featurize"],
            retrain=_runs_between(store, t2, t2b)["train"],
            shifted=_runs_between(store, t2b, t3),
            raw_id=raw_id,
            predictions=predictions,
            metrics=metrics,
            test_labels=test_labels,
            stdout=stdout,
        )
    finally:
        store.close()


def _io(store: Store, run: Row, direction: str) -> set[str]:
    return {r["artifact_id"] for r in store.run_io(run["run_id"]) if r["direction"] == direction}


def test_one_ok_run_per_step(digits: Digits) -> None:
    assert set(digits.first) == set(STEPS)
    assert all(run["status"] == "ok" for run in digits.first.values())
    assert [line.split()[0] for line in digits.stdout.splitlines()[2:8]] == list(STEPS)


def test_predict_reads_exactly_the_model_train_wrote(digits: Digits) -> None:
    (model,) = _io(digits.store, digits.first["train"], "out")
    assert model.startswith((digits.workdir / "models" / "model.pkl").as_uri() + "@sha256:")
    assert model in _io(digits.store, digits.first["predict"], "in")
    assert model in _io(digits.store, digits.first["evaluate"], "in")


def test_every_input_was_written_by_an_earlier_step(digits: Digits) -> None:
    store, runs = digits.store, digits.first
    for i, step in enumerate(STEPS[1:], start=1):
        inputs = _io(store, runs[step], "in")
        assert inputs, f"{step} declared no inputs"
        for aid in inputs:
            producers = {p["component"] for p in store.producers_exact(aid)}
            assert producers & set(STEPS[:i]), f"{step} reads {aid}, made by {producers}"
            assert producers.isdisjoint(STEPS[i:]), f"{step} reads {aid}, made later"


def test_lineage_bottoms_out_at_the_raw_drop(digits: Digits) -> None:
    assert _io(digits.store, digits.first["ingest"], "in") == {digits.raw_id}
    assert digits.store.producers_exact(digits.raw_id) == []


def test_predictions_file(digits: Digits) -> None:
    ids = [p["prediction_id"] for p in digits.predictions]
    assert len(ids) == len(digits.test_labels) > 0
    assert len(set(ids)) == len(ids)
    assert all(p["prediction_id"] == f"pred-{p['sample_id']}" for p in digits.predictions)
    correct = sum(
        int(p["predicted_label"]) == digits.test_labels[p["sample_id"]] for p in digits.predictions
    )
    # predict (scaler + model on raw rows) agrees with evaluate (precomputed features)
    assert correct / len(ids) == pytest.approx(digits.metrics["accuracy"], abs=1e-6)
    assert digits.metrics["accuracy"] > 0.9


def test_metrics_params_and_output_distributions(digits: Digits) -> None:
    store, runs = digits.store, digits.first
    evaluate = store.get_run(runs["evaluate"]["run_id"])
    assert evaluate is not None
    assert evaluate["metrics"]["accuracy"] == pytest.approx(digits.metrics["accuracy"], abs=1e-6)
    assert set(evaluate["metrics"]) >= {"accuracy", "f1_macro"}
    train = store.get_run(runs["train"]["run_id"])
    assert train is not None
    assert train["params"] == {"C": 1.0, "max_iter": 200}
    assert train["service"] == "digits-train"
    outputs = {o["name"]: o for o in store.run_outputs(runs["predict"]["run_id"])}
    assert outputs["predicted_label"]["kind"] == "categorical"
    assert outputs["confidence"]["kind"] == "numeric"
    assert outputs["confidence"]["value_count"] == len(digits.predictions)
    assert 0 < outputs["confidence"]["value_min"] <= outputs["confidence"]["value_max"] <= 1


def test_rerun_on_unchanged_inputs_reproduces_artifact_ids(digits: Digits) -> None:
    store, first, rerun = digits.store, digits.first["featurize"], digits.rerun
    assert rerun["run_id"] != first["run_id"]
    assert _io(store, rerun, "in") == _io(store, first, "in")
    assert _io(store, rerun, "out") == _io(store, first, "out")


def test_shifted_input_gives_new_versions_downstream(digits: Digits) -> None:
    store, first, shifted = digits.store, digits.first, digits.shifted
    assert set(shifted) == set(STEPS)
    assert all(run["status"] == "ok" for run in shifted.values())
    (new_raw,) = _io(store, shifted["ingest"], "in")
    assert new_raw != digits.raw_id
    assert new_raw.split("@")[0] == digits.raw_id.split("@")[0]  # same file, new version
    for step in STEPS:
        old, new = _io(store, first[step], "out"), _io(store, shifted[step], "out")
        assert {a.split("@")[0] for a in old} == {a.split("@")[0] for a in new}
        assert old.isdisjoint(new), f"{step} wrote an unchanged artifact on shifted data"
    # the deliberate shift (brighter, saturating) is visible in ingest's output distribution
    before, after = (_mean(store, runs["ingest"], "pixel_mean") for runs in (first, shifted))
    assert 4 < before < 6
    assert after > before + 2


def _mean(store: Store, run: Row, name: str) -> float:
    (out,) = [o for o in store.run_outputs(run["run_id"]) if o["name"] == name]
    return float(out["value_sum"]) / int(out["value_count"])


def test_a_failing_step_stops_the_pipeline_and_is_named(tmp_path: Path) -> None:
    index = tmp_path / "lineage.db"
    proc = _run(
        ["examples.digits.pipeline", "--workdir", str(tmp_path / "w"), "--test-size", "5"],
        _env(index),
    )
    assert proc.returncode != 0
    assert "step 'split' failed" in proc.stderr
    assert "featurize" not in proc.stdout
    store = open_store(str(index))
    try:
        status = {r["component"]: r["status"] for r in store.recent_runs()}
    finally:
        store.close()
    assert status == {"ingest": "ok", "split": "error"}


def _uri(aid: str) -> str:
    return aid.rpartition("@")[0]


# -- compare: where two pipeline runs part, and what two trainings share -------------------


def _mirror(result: dict[str, Any]) -> dict[str, Any]:
    """What compare(B, A) must be, given compare(A, B)."""
    (d,) = result["lineage"]
    swap = {"a": d["b"], "b": d["a"]}
    return {
        "params": [{**p, "values": p["values"][::-1], "present": p["present"][::-1]}
                   for p in result["params"]],
        "first": [{**f, "a": f["b"], "b": f["a"], "description": None,
                   "produced_by": {"a": f["produced_by"]["b"], "b": f["produced_by"]["a"]}}
                  for f in d["first_divergence"]],
        "artifacts": [{**a, "a": a["b"], "b": a["a"]} for a in d["artifacts"]],
        "shared": d["shared_runs"], **swap,
    }  # fmt: skip


def _view(result: dict[str, Any]) -> dict[str, Any]:
    (d,) = result["lineage"]
    return {
        "params": result["params"], "artifacts": d["artifacts"],
        "first": [{**f, "description": None} for f in d["first_divergence"]],
        "shared": d["shared_runs"], "a": d["a"], "b": d["b"],
    }  # fmt: skip


def test_shifted_raw_data_diverges_first_where_ingest_reads_it(digits: Digits) -> None:
    a, b = digits.first["predict"]["run_id"], digits.shifted["predict"]["run_id"]
    result = compare(LineageQueries(digits.store), [a, b])
    (diff,) = result["lineage"]
    (first,) = diff["first_divergence"]
    assert first["uri"] == _uri(digits.raw_id) and first["read_by"] == ["ingest"]
    assert first["cause"] == "different raw data (no run produced either version)"
    assert first["a"] != first["b"]
    assert first["description"].startswith("ingest read file://")
    assert first["description"].endswith(  # one sentence, no parentheses in parentheses
        ": different raw data (no run produced either version); "
        "everything downstream of it differs because of that"
    )
    assert diff["shared_runs"] == [] and not result["identical"]
    # every other difference is downstream of the first divergence, ingest's output first
    by_uri = {x["uri"]: x for x in diff["artifacts"]}
    assert not by_uri[_uri(digits.raw_id)]["same"]
    ingest_out = {
        io["uri"] for io in digits.store.run_io(digits.first["ingest"]["run_id"])
        if io["direction"] == "out"
    }  # fmt: skip
    assert ingest_out and all(not by_uri[u]["same"] for u in ingest_out)
    differing = [x for x in diff["artifacts"] if not x["same"] and x["uri"] != _uri(digits.raw_id)]
    assert differing and all(x["uri"] != first["uri"] for x in differing)
    assert _view(compare(LineageQueries(digits.store), [b, a])) == _mirror(result)


def test_two_trainings_on_the_same_features_differ_in_params_only_upstream(digits: Digits) -> None:
    a, b = digits.first["train"]["run_id"], digits.retrain["run_id"]
    result = compare(LineageQueries(digits.store), [a, b])
    params = {p["name"]: p for p in result["params"]}
    assert params["C"]["differs"] and params["C"]["values"] == [1.0, 0.5]
    assert not params["max_iter"]["differs"]
    (diff,) = result["lineage"]
    assert diff["identical"] and diff["first_divergence"] == []
    assert all(x["same"] for x in diff["artifacts"])
    shared = {s["component"] for s in diff["shared_runs"]}
    # the retrain read the features as written (byte-identical) by the featurize re-run
    assert shared == {"ingest", "split"}
    assert [r["component"] for r in diff["differing_runs"]] == ["featurize"]
    assert f"upstream of {b}: identical to {a}" in result["summary"]
    assert _view(compare(LineageQueries(digits.store), [b, a])) == _mirror(result)


def test_a_run_compared_with_itself(digits: Digits) -> None:
    a = digits.first["evaluate"]["run_id"]
    result = compare(LineageQueries(digits.store), [a, a])
    assert result["same_run"] and result["identical"]
    assert result["summary"] == ["the same run compared with itself: no differences"]
    assert not any(p["differs"] for p in (*result["params"], *result["metrics"]))
