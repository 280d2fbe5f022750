"""Run search and compare on SQLite and on a real PostgreSQL: the JSON filters are written
per dialect (json_extract / jsonb), so both must give the same answers."""

from __future__ import annotations

from typing import Any

import pytest

from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.queries.run_search import BadQuery, RunFilter, build_sql
from mltrace_collector.index.store.base import Store
from tests.backends import lineage_store  # noqa: F401  (fixture)

S = 1_000_000_000


def _run(run_id: str, start: int, status: str = "ok", **kw: Any) -> RunRecord:
    base: dict[str, Any] = {
        "component": "train", "trace_id": "ab" * 16, "span_id": f"{start:016x}",
        "parent_span_id": None, "service": "svc", "start_ns": start * S, "end_ns": start * S + S,
        "status": status, "status_message": None, "inputs": ("file:///d.csv@sha256:aa",),
        "outputs": (f"file:///m.bin@sha256:{start:04x}",),
    }  # fmt: skip
    base.update(kw)
    return RunRecord(run_id=run_id, **base)


@pytest.fixture
def queries(lineage_store: Store) -> LineageQueries:  # noqa: F811
    lineage_store.ingest(
        [
            _run("r1", 10, params={"model": "rf", "C": 1}, metrics={"acc": 0.95},
                 tags=("nightly",)),
            _run("r2", 20, params={"model": "lr", "C": 2.5}, metrics={"acc": 0.85}),
            _run("r3", 30, params={"model": "rf", "C": "3"}, metrics={"acc": 0.80},
                 tags=("nightly", "gpu"), code_revision="abc"),
            _run("r4", 40, status="error", params={"model": "gb"}, metrics={}),
            _run("p1", 50, component="prep", params={}, metrics={"rows": 10.0}),
        ]
    )  # fmt: skip
    return LineageQueries(lineage_store)


def ids(q: LineageQueries, **kw: Any) -> list[str]:
    return [r["run_id"] for r in q.search_runs(RunFilter(**kw))]


def test_filters(queries: LineageQueries) -> None:
    q = queries
    assert ids(q) == ["p1", "r4", "r3", "r2", "r1"]
    assert ids(q, component="train", where=("params.model = rf",)) == ["r3", "r1"]
    assert ids(q, where=("params.model = 'rf'", "metrics.acc > 0.9")) == ["r1"]
    assert ids(q, where=("params.model != rf",), component="train") == ["r4", "r2"]
    assert ids(q, where=("params.C = 3",)) == ["r3"]  # a number matches its text too
    assert ids(q, where=("params.C >= 2",)) == ["r2"]  # '3' is text: no numeric order
    assert ids(q, where=("metrics.acc <= 0.85",)) == ["r3", "r2"]
    assert ids(q, where=("code_revision = abc",)) == ["r3"]
    assert ids(q, where=("status != ok",)) == ["r4"]
    assert ids(q, tags=("nightly",)) == ["r3", "r1"]
    assert ids(q, tags=("nightly", "gpu")) == ["r3"]
    assert ids(q, status=("error", "ok"), component="prep") == ["p1"]
    assert ids(q, since_ns=20 * S, until_ns=30 * S) == ["r3", "r2"]
    assert ids(q, sort="metrics.acc desc") == ["r1", "r2", "r3", "p1", "r4"]
    assert ids(q, sort="metrics.acc asc", limit=2, offset=1) == ["r2", "r1"]
    assert ids(q, sort="component asc", limit=1) == ["p1"]
    assert ids(q, where=("params.model = xgb",)) == []  # a known param, no such value


def test_a_param_or_metric_no_run_has_is_named_with_those_there_are(
    queries: LineageQueries,
) -> None:
    """A misspelt name used to answer an empty list, as if no run matched."""
    q = queries
    with pytest.raises(
        BadQuery,
        match=r"^no run of 'train' has params.modle \(in --where 'params.modle = rf'\); "
        r"params there are: C, model$",
    ):
        ids(q, component="train", where=("params.modle = rf",))
    with pytest.raises(
        BadQuery, match=r"no run has metrics.accuracy .*metrics there are: acc, rows"
    ):
        ids(q, where=("metrics.accuracy > 0.9",))
    with pytest.raises(BadQuery, match=r"has params.it's \(in --where \"params.it's = x\"\)"):
        ids(q, where=("params.it's = x",))  # a quote in a key stays a parameter
    with pytest.raises(BadQuery, match=r"no run of 'prep' has metrics.acc \(in --sort"):
        ids(q, component="prep", sort="metrics.acc desc")  # found runs, none has it
    assert ids(q, component="prep", where=("metrics.rows > 99",)) == []


def test_runs_with_nan_or_infinite_metrics_leave_filters_working(
    queries: LineageQueries,
) -> None:
    """log_metric("acc", float("nan")) is recorded (as MLflow does) and stored as JSON's
    bare NaN, which SQLite and PostgreSQL cannot parse: every metrics.* filter or sort of
    the index failed (a traceback; HTTP 500) once one such run was in it."""
    queries.store.ingest(
        [
            _run("n1", 60, metrics={"acc": float("nan"), "f1": 0.7}, params={"C": float("nan")}),
            _run("n2", 70, metrics={"acc": float("inf"), "f1": float("-inf")}),
        ]
    )
    q = queries
    assert sorted(ids(q, where=("metrics.acc > 0.9",))) == ["n2", "r1"]  # inf > 0.9; NaN no
    assert ids(q, where=("metrics.f1 > 0.5",)) == ["n1"]  # the row's other metrics still count
    assert ids(q, where=("metrics.acc = NaN",)) == []  # NaN equals nothing, as in IEEE 754
    assert ids(q, where=("params.C = NaN",)) == ["n1"]  # params compare as text
    assert ids(q, where=("metrics.acc = Infinity",)) == ["n2"]
    by_acc = ids(q, component="train", sort="metrics.acc desc")
    assert by_acc[:4] == ["n2", "r1", "r2", "r3"] and "n1" in by_acc[4:]  # inf first, NaN last
    with pytest.raises(BadQuery, match="metrics there are: acc, f1, rows"):
        ids(q, where=("metrics.ac > 1",))


def test_keys_and_values_never_reach_the_sql_text(queries: LineageQueries) -> None:
    evil = "x');DROP/**/TABLE/**/runs;--"
    sql, params = build_sql(
        queries.store, RunFilter(where=(f"params.{evil} = {evil}",), tags=(evil,))
    )
    assert "DROP" not in sql and any(evil in str(p) for p in params)
    with pytest.raises(BadQuery, match="no run has params"):  # looked up as a parameter too
        ids(queries, where=(f"params.{evil} = {evil}",))
    assert len(ids(queries)) == 5


def test_compare_on_both_backends(queries: LineageQueries) -> None:
    result = queries.compare(["r1", "r2"])
    assert [p["name"] for p in result["params"] if p["differs"]] == ["C", "model"]
    (diff,) = result["lineage"]
    assert diff["identical"]  # both read the same raw file version
    with pytest.raises(BadQuery, match="compare takes 2 to 20 run IDs"):
        queries.compare(["r1"])
