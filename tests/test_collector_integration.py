"""The collector end to end: the digits example -> official OTLP exporters -> `otel-mltrace serve`.

One deployment per backend (SQLite file, real PostgreSQL), each a real ``serve`` process:

1. the whole digits pipeline runs with ``MLTRACE_ENDPOINT`` at the collector's OTLP/gRPC port
   (run "#1", shift 0);
2. the scheduler-style rerun of ``source --shift 3`` + ``ingest`` + ``split`` + ``featurize``
   + ``train --C 0.5`` goes through the OTLP/HTTP exporter (``MLTRACE_PROTOCOL=http/protobuf``,
   run "#2"): new versions of everything up to ``model.pkl``, while ``evaluate`` and
   ``predict`` are left with run #1 (so they are stale);
3. the collector gets SIGTERM, must exit 0, and is restarted on the same index: every
   query below reads data that was acknowledged before the restart.

The same assertions then run against three access paths (HTTP API, ``otel-mltrace --server``,
``otel-mltrace --db``) on both backends. Expected lineage is written out by hand from the
example's documented topology (examples/digits/README.md), not derived from the code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import otel_mltrace
from tests.serve_process import REPO_ROOT, ServeProcess
from tests.servers.postgres import PostgresServer
from tests.support_digits_lineage import (
    BACKENDS,
    FILES,
    PREDICTIONS_TRACE,
    RAW_DOWNSTREAM,
    RERUN,
    RERUN_FILES,
    TOPOLOGY,
    Deployment,
    ask,
    cli,
    edges_of,
    expected_upstream,
    run_id,
)

ACCESS = ["api", "server-cli", "db-cli"]
STEP_TIMEOUT_S = 300


# -- the deployment ------------------------------------------------------------------------
def _step_env(endpoint: str, protocol: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRACE_", "OTEL_"))}
    env.update(MLTRACE_ENDPOINT=endpoint, MLTRACE_PROTOCOL=protocol, PYTHONPATH=str(REPO_ROOT))
    return env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(
        cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=STEP_TIMEOUT_S
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"


def _artifact_ids(workdir: Path, names: list[str]) -> dict[str, str]:
    return {name: otel_mltrace.artifact_id(workdir / FILES[name]) for name in names}


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp(f"integration-{request.param}")
    pg: PostgresServer | None = None
    dbname = ""
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres_server")
        db = pg.create_database()
        dbname = db.rsplit("/", 1)[1]
    else:
        db = str(base / "collector.db")
    log = base / "serve.log"
    serve = ServeProcess.start(db, log)
    try:
        workdir = base / "work"
        # 1: the whole pipeline over OTLP/gRPC
        _run([sys.executable, "-m", "examples.digits.pipeline", "--workdir", str(workdir)],
             _step_env(serve.grpc_url, "grpc"))  # fmt: skip
        ids = {1: _artifact_ids(workdir, list(FILES))}
        between = time.time_ns()
        time.sleep(0.05)
        # 2: a scheduler reruns the first steps on shifted data, over OTLP/HTTP
        env = _step_env(serve.http_url, "http/protobuf")
        _run([sys.executable, "-m", "examples.digits.source", "--workdir", str(workdir),
              "--shift", "3"], env)  # fmt: skip
        for step in RERUN:
            extra = ["--C", "0.5"] if step == "train" else []
            _run([sys.executable, "-m", f"examples.digits.{step}", "--workdir", str(workdir),
                  *extra], env)  # fmt: skip
        ids[2] = _artifact_ids(workdir, RERUN_FILES)
        for name in RERUN_FILES:
            assert ids[1][name] != ids[2][name], f"{name} did not change with --shift 3"
        # 3: graceful stop, restart on the same index
        assert serve.terminate() == 0, log.read_text()
        serve = ServeProcess.start(db, log)
        dep = Deployment(request.param, db, workdir, log, serve, ids, between)
        for n, files in ids.items():
            dep.artifacts.update({aid: f"{name}@{n}" for name, aid in files.items()})
        rows = httpx.get(serve.http_url + "/api/v1/runs", params={"limit": 100}).json()
        for row in sorted(rows, key=lambda r: r["start_ns"]):
            n = 1 + sum(1 for label in dep.runs.values() if label.startswith(row["component"]))
            dep.runs[row["run_id"]] = f"{row['component']}#{n}"
        yield dep
    finally:
        serve.kill()
        if pg is not None:
            pg.drop_database(dbname)


# -- tests ---------------------------------------------------------------------------------
def test_every_run_arrived_once(deployment: Deployment) -> None:
    assert sorted(deployment.runs.values()) == sorted(
        [f"{c}#1" for c in TOPOLOGY] + [f"{c}#2" for c in RERUN]
    )
    health = httpx.get(deployment.serve.http_url + "/healthz").json()
    assert health["store"] == deployment.backend and health["runs"] == 10


@pytest.mark.parametrize("mode", ACCESS)
def test_trace_predictions_back_to_raw(deployment: Deployment, mode: str) -> None:
    dep = deployment
    # The hand-written table agrees with the helper used for the other roots.
    assert (
        expected_upstream("predict", 1) | {("predict#1", "predictions.csv@1", "output")}
        == PREDICTIONS_TRACE
    )
    graph = ask(dep, mode, "trace", dep.ids[1]["predictions.csv"])
    assert graph["root"] == {"kind": "artifact", "id": dep.ids[1]["predictions.csv"]}
    assert edges_of(dep, graph) == PREDICTIONS_TRACE
    comps = sorted(r["component"] for r in graph["runs"].values())
    assert comps == ["featurize", "ingest", "predict", "split", "train"]
    raw = [dep.label(a["id"]) for a in graph["artifacts"].values() if a["raw"]]
    assert raw == ["digits_raw.csv@1"]
    assert graph["truncated"] is False
    # The run #2 artifacts, delivered over OTLP/HTTP, stitch the same way.
    model2 = ask(dep, mode, "trace", dep.ids[2]["model.pkl"])
    assert edges_of(dep, model2) == expected_upstream("train", 2) | {
        ("train#2", "model.pkl@2", "output")
    }
    # A run as the root: the same closure without the output edge.
    by_run = ask(dep, mode, "trace", run_id(dep, "predict#1"))
    assert by_run["root"]["kind"] == "run"
    assert edges_of(dep, by_run) == PREDICTIONS_TRACE - {
        ("predict#1", "predictions.csv@1", "output")
    }


@pytest.mark.parametrize("mode", ACCESS)
def test_downstream_of_raw_reaches_predictions(deployment: Deployment, mode: str) -> None:
    dep = deployment
    graph = ask(dep, mode, "downstream", dep.ids[1]["digits_raw.csv"])
    assert edges_of(dep, graph) == RAW_DOWNSTREAM
    assert dep.ids[1]["predictions.csv"] in graph["artifacts"]
    # The shifted drop feeds only the rerun.
    graph2 = ask(dep, mode, "downstream", dep.ids[2]["digits_raw.csv"])
    assert sorted(dep.label(r) for r in graph2["runs"]) == sorted(f"{c}#2" for c in RERUN)


@pytest.mark.parametrize("mode", ACCESS)
def test_history_newest_first_with_limit_and_range(deployment: Deployment, mode: str) -> None:
    dep = deployment
    rows = ask(dep, mode, "history", "train")
    assert [dep.label(r["run_id"]) for r in rows] == ["train#2", "train#1"]
    assert [r["params"]["C"] for r in rows] == [0.5, 1.0]
    assert rows[0]["start_ns"] > rows[1]["start_ns"]
    assert [dep.label(r["run_id"]) for r in ask(dep, mode, "history", "train", limit=1)] == [
        "train#2"
    ]
    after = ask(dep, mode, "history", "train", since_ns=dep.between_ns)
    before = ask(dep, mode, "history", "train", until_ns=dep.between_ns)
    assert [dep.label(r["run_id"]) for r in after] == ["train#2"]
    assert [dep.label(r["run_id"]) for r in before] == ["train#1"]


@pytest.mark.parametrize("mode", ACCESS)
def test_inspect_has_everything(deployment: Deployment, mode: str) -> None:
    dep = deployment
    info = ask(dep, mode, "inspect", run_id(dep, "train#2"))
    assert info["component"] == "train" and info["status"] == "ok"
    assert info["params"] == {"C": 0.5, "max_iter": 200}
    assert set(info["metrics"]) >= {"train_accuracy", "n_iter"}
    assert 0.5 < info["metrics"]["train_accuracy"] <= 1.0
    assert re.fullmatch(r"[0-9a-f]{40}", info["code_revision"] or ""), info["code_revision"]
    rev_known = subprocess.run(
        ["git", "cat-file", "-e", info["code_revision"] + "^{commit}"], cwd=REPO_ROOT
    )
    assert rev_known.returncode == 0
    assert info["duration_s"] == pytest.approx((info["end_ns"] - info["start_ns"]) / 1e9, abs=1e-5)
    assert info["duration_s"] > 0
    assert re.fullmatch(r"[0-9a-f]{32}", info["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", info["span_id"])
    assert info["inputs"] == [
        {
            "artifact_id": dep.ids[2]["features_train.npz"],
            "producer_run_id": run_id(dep, "featurize#2"),
        }
    ]
    assert info["outputs"] == [dep.ids[2]["model.pkl"]]
    predict = ask(dep, mode, "inspect", run_id(dep, "predict#1"))
    producers = {dep.label(i["artifact_id"]): dep.label(i["producer_run_id"])
                 for i in predict["inputs"]}  # fmt: skip
    assert producers == {"test.csv@1": "split#1", "scaler.pkl@1": "featurize#1",
                         "model.pkl@1": "train#1"}  # fmt: skip
    ingest = ask(dep, mode, "inspect", run_id(dep, "ingest#1")[:20])  # a unique prefix
    assert ingest["inputs"] == [
        {"artifact_id": dep.ids[1]["digits_raw.csv"], "producer_run_id": None}
    ]


@pytest.mark.parametrize("mode", ACCESS)
def test_stale_flags_runs_left_behind_and_age_threshold(deployment: Deployment, mode: str) -> None:
    dep = deployment
    week = 7 * 86400
    rows = {r["component"]: r for r in ask(dep, mode, "stale", older_than_s=week)}
    assert {c: dep.label(r["run_id"]) for c, r in rows.items()} == {
        "ingest": "ingest#2", "split": "split#2", "featurize": "featurize#2", "train": "train#2",
        "evaluate": "evaluate#1", "predict": "predict#1",
    }  # fmt: skip
    assert {c for c, r in rows.items() if r["stale"]} == {"evaluate", "predict"}
    assert any("model.pkl" in why and "newer version" in why for why in rows["predict"]["reasons"])
    assert len(rows["predict"]["reasons"]) == 3  # test.csv, scaler.pkl and model.pkl moved on
    assert len(rows["evaluate"]["reasons"]) == 2  # model.pkl and features_test.npz
    # Every input is older than a tiny threshold.
    newest_run_ns = max(r["end_ns"] for r in rows.values())
    while time.time_ns() - newest_run_ns < 1.5e9:
        time.sleep(0.1)
    aged = ask(dep, mode, "stale", older_than_s=1)
    assert all(r["stale"] for r in aged) and len(aged) == 6
    assert all(any("s old (threshold 1 s)" in why for why in r["reasons"]) for r in aged)


@pytest.mark.parametrize("mode", ACCESS)
def test_components_and_runs_paging(deployment: Deployment, mode: str) -> None:
    dep = deployment
    comps = {c["component"]: (c["runs"], c["failures"]) for c in ask(dep, mode, "components")}
    assert comps == {"ingest": (2, 0), "split": (2, 0), "featurize": (2, 0), "train": (2, 0),
                     "evaluate": (1, 0), "predict": (1, 0)}  # fmt: skip
    pages = [ask(dep, mode, "runs", limit=4, offset=off) for off in (0, 4, 8, 12)]
    assert [len(p) for p in pages] == [4, 4, 2, 0]
    paged = [r["run_id"] for page in pages for r in page]
    assert sorted(paged) == sorted(dep.runs)
    starts = [r["start_ns"] for page in pages for r in page]
    assert starts == sorted(starts, reverse=True)
    assert dep.label(paged[0]) == "train#2" and dep.label(paged[-1]) == "ingest#1"


def _dot(text: str) -> tuple[dict[str, tuple[str, str]], set[tuple[str, str]]]:
    nodes = {
        m[0]: (m[1], json.loads(m[2]))
        for m in re.findall(r'^\s*(n\d+) \[shape=(box|ellipse), label=("(?:[^"\\]|\\.)*")', text,
                            re.M)
    }  # fmt: skip
    edges = set(re.findall(r"^\s*(n\d+) -> (n\d+);$", text, re.M))
    return nodes, edges


@pytest.mark.parametrize("mode", ["server-cli", "db-cli"])
def test_graph_formats(deployment: Deployment, mode: str) -> None:
    dep = deployment
    target = dep.ids[1]["predictions.csv"]
    graph = json.loads(cli(dep, mode, ["trace", target, "--format", "json"]))
    dot = cli(dep, mode, ["trace", target, "--format", "dot"], real=True)  # the console script
    assert dot.strip().startswith("digraph lineage {") and dot.strip().endswith("}")
    nodes, edges = _dot(dot)
    boxes = sorted(label.split("\n")[0] for shape, label in nodes.values() if shape == "box")
    assert boxes == ["featurize", "ingest", "predict", "split", "train"]
    ellipses = [label for shape, label in nodes.values() if shape == "ellipse"]
    assert len(ellipses) == len(graph["artifacts"]) == 8
    assert any(label.endswith("predictions.csv@" + target.split("@")[1][:19]) for label in ellipses)
    assert len(edges) == len(PREDICTIONS_TRACE)
    assert all(a in nodes and b in nodes for a, b in edges)
    mermaid = cli(dep, mode, ["trace", target, "--format", "mermaid"]).splitlines()
    assert mermaid[0] == "flowchart LR"
    runs = [ln for ln in mermaid if re.fullmatch(r'\s*n\d+\["[^"]+"\]', ln)]
    arts = [ln for ln in mermaid if re.fullmatch(r'\s*n\d+\(\["[^"]+"\]\)', ln)]
    links = [ln for ln in mermaid if re.fullmatch(r"\s*n\d+ --> n\d+", ln)]
    assert sorted(ln.split('["')[1].split()[0] for ln in runs) == boxes
    assert len(arts) == 8 and len(links) == len(PREDICTIONS_TRACE)
    tree = cli(dep, mode, ["trace", target])
    assert "(raw)" in tree and "digits_raw.csv" in tree and "predict" in tree
