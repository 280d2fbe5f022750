"""A run that logged NaN or ±inf (a diverged loss; recorded as MLflow does) must not break
`history` / `runs` filters and sorts on metrics, on SQLite and on PostgreSQL.

Before: `otel-mltrace history train --where 'metrics.acc > 0.5'` (or any `--sort
metrics.*`) ended in a traceback, ``sqlite3.OperationalError: malformed JSON`` (PostgreSQL:
``invalid input syntax for type json``), as soon as one run of the component had logged
NaN or ±inf under any metric name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.store import open_store
from otel_mltrace import query
from otel_mltrace.cli import main
from tests import backends
from tests.backends import target

__all__ = ["target"]  # fixture: a fresh index on SQLite and on PostgreSQL

postgres_server = backends.postgres_server  # fixtures
postgres_url = backends.postgres_url
S = 1_000_000_000


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    db = str(tmp_path / "index.db")
    mlt.configure(service_name="nonfinite", index=db)
    try:
        yield db
    finally:
        mlt.shutdown()


def test_cli_filters_and_sorts_runs_that_logged_nan_and_inf(index: str) -> None:
    runs = (("good", 0.9, 0.1), ("diverged", math.nan, math.inf), ("low", 0.4, -math.inf))
    for name, acc, loss in runs:
        with mlt.run("train", params={"model": name}) as r:
            r.log_metric("acc", acc)
            r.log_metric("loss", loss)
    assert mlt.flush(30)

    def names(*args: str) -> list[str]:
        result = CliRunner().invoke(
            main, ["history", "train", "--db", index, *args, "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        return [row["params"]["model"] for row in json.loads(result.output)]

    assert names("--where", "metrics.acc > 0.5") == ["good"]  # NaN compares to nothing
    assert names("--where", "metrics.loss > 1") == ["diverged"]  # inf > 1
    assert names("--where", "metrics.loss < 0") == ["low"]
    assert names("--sort", "metrics.acc desc") == ["good", "low", "diverged"]  # NaN: last
    assert names("--sort", "metrics.loss asc") == ["low", "good", "diverged"]
    assert names("--where", "params.model = diverged") == ["diverged"]


def _run(run_id: str, start: int, metrics: dict[str, float]) -> RunRecord:
    return RunRecord(
        run_id=run_id, component="train", trace_id="ab" * 16, span_id=f"{start:016x}",
        parent_span_id=None, service="svc", start_ns=start * S, end_ns=start * S + S,
        status="ok", status_message=None, inputs=(), outputs=(), metrics=metrics,
    )  # fmt: skip


def test_query_api_filters_nonfinite_metrics_on_both_backends(target: str) -> None:
    store = open_store(target)
    try:
        store.ingest(
            [
                _run("r1", 10, {"acc": 0.9, "loss": 0.1}),
                _run("r2", 20, {"acc": math.nan, "loss": math.inf}),
                _run("r3", 30, {"acc": 0.4, "loss": -math.inf}),
            ]
        )
    finally:
        store.close()
    idx = query.connect(db=target)

    def ids(**kw: object) -> list[str]:
        return [r.run_id for r in idx.runs("train", **kw)]  # type: ignore[arg-type]

    assert ids(where=["metrics.acc > 0.5"]) == ["r1"]
    assert ids(where=["metrics.loss > 1"]) == ["r2"]
    assert ids(where=["metrics.loss <= 0.1"]) == ["r3", "r1"]
    assert ids(sort="metrics.acc desc") == ["r1", "r3", "r2"]
    assert ids(sort="metrics.loss desc") == ["r2", "r1", "r3"]
    shown = {r.run_id: r.metrics for r in idx.runs("train")}
    assert shown["r2"] == {"acc": "NaN", "loss": "Infinity"}


def test_text_that_looks_like_nan_inside_a_string_breaks_nothing(target: str) -> None:
    """The rewrite of bare NaN / ±Infinity must leave strings alone. A param holding a
    config as JSON text (``json.dumps`` writes a NaN as ``NaN``), or any text with
    ``: NaN,`` in it, was rewritten quotes and all into malformed JSON: every params or
    metrics filter and sort of the component failed ('malformed JSON' on SQLite, 'invalid
    input syntax for type json' on PostgreSQL)."""
    config = json.dumps({"lr": math.nan, "clip": math.inf, "x": 1})  # '{"lr": NaN, ...}'
    odd = {"config": config, "note": "x: NaN, y: Infinity}", "slash": "a\\"}
    store = open_store(target)
    try:
        store.ingest(
            [
                replace(_run("r1", 10, {"acc": 0.9}), params={"model": "rf", **odd}),
                replace(
                    _run("r2", 20, {'k": -Infinity, x': 0.5, "acc": 0.1}), params={"model": "lr"}
                ),
                replace(_run("r3", 30, {"acc": math.nan}), params={"model": "svm"}),
            ]
        )
    finally:
        store.close()
    idx = query.connect(db=target)

    def ids(**kw: object) -> list[str]:
        return [r.run_id for r in idx.runs("train", **kw)]  # type: ignore[arg-type]

    assert ids(where=["params.model = rf"]) == ["r1"]
    assert ids(where=["params.note = x: NaN, y: Infinity}"]) == ["r1"]
    assert ids(where=[f"params.config = {config}"]) == ["r1"]
    assert ids(where=["params.slash = a\\"]) == ["r1"]
    assert ids(where=["metrics.acc > 0.5"]) == ["r1"]
    assert ids(sort="metrics.acc desc") == ["r1", "r2", "r3"]
    with pytest.raises(ValueError, match="params there are: config, model, note, slash"):
        idx.runs("train", where=["params.modle = rf"])
    assert {r.run_id: r.params.get("config") for r in idx.runs("train")}["r1"] == config
