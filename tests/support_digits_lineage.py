"""The digits example as deployed by test_collector_integration.py: its documented
topology (examples/digits/README.md), the lineage expected from it written out by hand, and
the three ways to ask a deployment (HTTP API, ``otel-mltrace --server``, ``otel-mltrace --db``).
``BACKENDS`` are the index backends both collector end-to-end files run on.

Usage::

    from tests.support_digits_lineage import PREDICTIONS_TRACE, ask, edges_of

    graph = ask(dep, "db-cli", "trace", dep.ids[1]["predictions.csv"])
    assert edges_of(dep, graph) == PREDICTIONS_TRACE
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import mltrace_collector.index.store as store_package
from mltrace_collector.index.store import Store, open_store
from otel_mltrace.cli import main as cli_main
from tests.serve_process import ServeProcess

BACKENDS = ["sqlite", "postgres"]


# file name -> path below the work directory (examples/digits/_common.Paths)
FILES = {
    "digits_raw.csv": "source/digits_raw.csv",
    "ingested.csv": "data/ingested.csv",
    "train.csv": "data/train.csv",
    "test.csv": "data/test.csv",
    "features_train.npz": "data/features_train.npz",
    "features_test.npz": "data/features_test.npz",
    "scaler.pkl": "models/scaler.pkl",
    "model.pkl": "models/model.pkl",
    "metrics.json": "reports/metrics.json",
    "predictions.csv": "predictions/predictions.csv",
}
# The documented topology: component -> (reads, writes)
TOPOLOGY = {
    "ingest": (["digits_raw.csv"], ["ingested.csv"]),
    "split": (["ingested.csv"], ["train.csv", "test.csv"]),
    "featurize": (["train.csv", "test.csv"], ["features_train.npz", "features_test.npz",
                                               "scaler.pkl"]),
    "train": (["features_train.npz"], ["model.pkl"]),
    "evaluate": (["model.pkl", "features_test.npz"], ["metrics.json"]),
    "predict": (["test.csv", "scaler.pkl", "model.pkl"], ["predictions.csv"]),
}  # fmt: skip
RERUN = ["ingest", "split", "featurize", "train"]  # run #2 (after `source --shift 3`)
RERUN_FILES = ["digits_raw.csv", "ingested.csv", "train.csv", "test.csv", "features_train.npz",
               "features_test.npz", "scaler.pkl", "model.pkl"]  # fmt: skip


@dataclass
class Deployment:
    backend: str
    db: str
    workdir: Path
    log: Path
    serve: ServeProcess
    ids: dict[int, dict[str, str]]  # pipeline run -> file name -> artifact ID
    between_ns: int  # after run #1 ended, before run #2 started
    runs: dict[str, str] = field(default_factory=dict)  # run ID -> "component#N"
    artifacts: dict[str, str] = field(default_factory=dict)  # artifact ID -> "file@N"

    def label(self, node: str) -> str:
        return self.runs.get(node) or self.artifacts.get(node) or f"?{node}"


# -- three ways to ask ---------------------------------------------------------------------
def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()


def cli(dep: Deployment, mode: str, args: list[str], *, real: bool = False) -> str:
    """``otel-mltrace``, ``--server`` before and ``--db`` after the command name.

    In-process through click (fast) unless ``real``: then the installed console script.
    """
    argv = ["--server", dep.serve.http_url, *args] if mode == "server-cli" else [
        args[0], "--db", dep.db, *args[1:]
    ]  # fmt: skip
    if real:
        exe = str(Path(sys.executable).with_name("otel-mltrace"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRACE_")}
        proc = subprocess.run([exe, *argv], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{argv}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout
    opened: list[Store] = []

    def tracked_open_store(target: str, *, migrate: bool = True) -> Store:
        store = open_store(target, migrate=migrate)
        opened.append(store)  # the CLI process would exit here; this test process closes it
        return store

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_package, "open_store", tracked_open_store)
        result = CliRunner().invoke(
            cli_main, argv, env={"MLTRACE_SERVER": None, "MLTRACE_DB": None}
        )
    for store in opened:
        store.close()
    assert result.exit_code == 0, f"{argv}: {result.exit_code}\n{result.output}{result.exception!r}"
    return result.stdout


def ask(dep: Deployment, mode: str, command: str, *args: Any, **opts: Any) -> Any:
    """One query, as JSON, through the API or the CLI (``--server`` or ``--db``)."""
    if mode == "api":
        api = dep.serve.http_url + "/api/v1"
        if command in ("trace", "downstream"):
            resp = httpx.get(f"{api}/{command}", params={"id": args[0]}, timeout=60)
        elif command == "history":
            resp = httpx.get(f"{api}/components/{args[0]}/history", params=opts, timeout=60)
        elif command == "inspect":
            resp = httpx.get(f"{api}/runs/{args[0]}", timeout=60)
        elif command == "runs":
            resp = httpx.get(f"{api}/runs", params=opts, timeout=60)
        elif command == "stale":
            resp = httpx.get(f"{api}/stale", params=opts, timeout=60)
        else:
            resp = httpx.get(f"{api}/{command}", timeout=60)
        assert resp.status_code == 200, resp.text
        return resp.json()
    argv = [command, *map(str, args)]
    if command == "history":
        if "since_ns" in opts:
            argv += ["--since", _iso(opts["since_ns"])]
        if "until_ns" in opts:
            argv += ["--until", _iso(opts["until_ns"])]
    if "limit" in opts:
        argv += ["--limit", str(opts["limit"])]
    if "offset" in opts:
        argv += ["--offset", str(opts["offset"])]
    if command == "stale":
        argv += ["--all", "--older-than", f"{opts['older_than_s']}s"]
    return json.loads(cli(dep, mode, [*argv, "--format", "json"]))


# -- expected lineage, by hand -------------------------------------------------------------
def expected_upstream(component: str, run: int) -> set[tuple[str, str, str]]:
    """Edges of ``trace(<first output of component>@run)`` for a pipeline run #run."""
    edges: set[tuple[str, str, str]] = set()
    producer = {out: comp for comp, (_, outs) in TOPOLOGY.items() for out in outs}
    todo = [component]
    while todo:
        comp = todo.pop()
        for name in TOPOLOGY[comp][0]:
            edges.add((f"{name}@{run}", f"{comp}#{run}", "input"))
            if name in producer:
                edges.add((f"{producer[name]}#{run}", f"{name}@{run}", "output"))
                todo.append(producer[name])
    return edges


PREDICTIONS_TRACE = {
    ("predict#1", "predictions.csv@1", "output"),
    ("test.csv@1", "predict#1", "input"),
    ("scaler.pkl@1", "predict#1", "input"),
    ("model.pkl@1", "predict#1", "input"),
    ("split#1", "test.csv@1", "output"),
    ("featurize#1", "scaler.pkl@1", "output"),
    ("train#1", "model.pkl@1", "output"),
    ("features_train.npz@1", "train#1", "input"),
    ("featurize#1", "features_train.npz@1", "output"),
    ("train.csv@1", "featurize#1", "input"),
    ("test.csv@1", "featurize#1", "input"),
    ("split#1", "train.csv@1", "output"),
    ("ingested.csv@1", "split#1", "input"),
    ("ingest#1", "ingested.csv@1", "output"),
    ("digits_raw.csv@1", "ingest#1", "input"),
}
RAW_DOWNSTREAM = {
    ("digits_raw.csv@1", "ingest#1", "input"),
    ("ingest#1", "ingested.csv@1", "output"),
    ("ingested.csv@1", "split#1", "input"),
    ("split#1", "train.csv@1", "output"),
    ("split#1", "test.csv@1", "output"),
    ("train.csv@1", "featurize#1", "input"),
    ("test.csv@1", "featurize#1", "input"),
    ("test.csv@1", "predict#1", "input"),
    ("featurize#1", "features_train.npz@1", "output"),
    ("featurize#1", "features_test.npz@1", "output"),
    ("featurize#1", "scaler.pkl@1", "output"),
    ("features_train.npz@1", "train#1", "input"),
    ("features_test.npz@1", "evaluate#1", "input"),
    ("scaler.pkl@1", "predict#1", "input"),
    ("train#1", "model.pkl@1", "output"),
    ("model.pkl@1", "evaluate#1", "input"),
    ("model.pkl@1", "predict#1", "input"),
    ("evaluate#1", "metrics.json@1", "output"),
    ("predict#1", "predictions.csv@1", "output"),
}


def edges_of(dep: Deployment, graph: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(dep.label(e["source"]), dep.label(e["target"]), e["relation"]) for e in graph["edges"]}


def run_id(dep: Deployment, label: str) -> str:
    return next(rid for rid, lab in dep.runs.items() if lab == label)
