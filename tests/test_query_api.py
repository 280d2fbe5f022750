"""``otel_mltrace.query``: the same answers from the embedded index, a ``--db`` file and a
live collector (``otel-mltrace serve`` in a child process), checked by the same assertions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import otel_mltrace as mlt
from otel_mltrace import query
from tests.serve_process import ServeProcess
from tests.support_clean_step import clean_step


@dataclass(frozen=True)
class Built:
    db: str
    model: Path
    clean: str
    rf: str
    lr: str
    rf_weak: str
    failed: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """raw -> clean -> three train runs (rf 0.95 nightly, lr 0.85, rf 0.80) + one failure."""
    tmp = tmp_path_factory.mktemp("query")
    db, clean, model, clean_id = clean_step(tmp, "query-test")
    ids = []
    for i, (model_name, c, acc, tags) in enumerate(
        [("rf", 1, 0.95, ["nightly"]), ("lr", 2, 0.85, []), ("rf", 3, 0.80, ["nightly", "x"])]
    ):
        with mlt.run("train", inputs=[clean], params={"model": model_name, "C": c}, tags=tags) as r:
            model.write_bytes(b"w%d" % i)
            r.add_output(model)
            r.log_metric("accuracy", acc)
            ids.append(r.id)
    with pytest.raises(RuntimeError), mlt.run("train", inputs=[clean], params={"model": "gb"}) as r:
        failed = r.id
        for step, loss in ((0, 2.0), (10, 1.5), (20, float("nan"))):  # diverged, then OOM
            r.log_metric("loss", loss, step=step)
        raise RuntimeError("out of memory")
    mlt.flush()
    mlt.shutdown()
    yield Built(db, model, clean_id, ids[0], ids[1], ids[2], failed)


@pytest.fixture(scope="module")
def server(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with ServeProcess.start(built.db, log) as serve:
        yield serve.http_url


@pytest.fixture(params=["embedded", "db", "server"])
def index(
    request: pytest.FixtureRequest, built: Built, monkeypatch: pytest.MonkeyPatch
) -> Iterator[query.Index]:
    for var in ("MLTRACE_DB", "MLTRACE_SERVER", "MLTRACE_INDEX"):
        monkeypatch.delenv(var, raising=False)
    if request.param == "embedded":  # chosen as the CLI chooses: MLTRACE_INDEX
        monkeypatch.setenv("MLTRACE_INDEX", built.db)
        idx = query.connect()
    elif request.param == "db":
        idx = query.connect(db=built.db)
    else:
        idx = query.connect(server=request.getfixturevalue("server"))
    with idx:
        yield idx


def test_runs_filters_and_sort(index: query.Index, built: Built) -> None:
    table = index.runs("train", where=["params.model = rf", "metrics.accuracy > 0.9"])
    assert [r.run_id for r in table] == [built.rf]
    assert table[0].params == {"model": "rf", "C": 1} and table[0].metrics == {"accuracy": 0.95}
    by_acc = index.history("train", sort="metrics.accuracy desc", status=["ok"])
    assert [r.run_id for r in by_acc] == [built.rf, built.lr, built.rf_weak]
    asc = index.runs(component="train", sort="metrics.accuracy asc")
    assert [r.run_id for r in asc] == [
        built.rf_weak,
        built.lr,
        built.rf,
        built.failed,
    ]  # no metric last
    assert {r.run_id for r in index.runs(tags=["nightly"])} == {built.rf, built.rf_weak}
    assert [r.run_id for r in index.runs(tags=["nightly", "x"])] == [built.rf_weak]
    assert [r.run_id for r in index.runs(status="error")] == [built.failed]
    assert {r.run_id for r in index.runs(where=["params.C >= 2"])} == {built.lr, built.rf_weak}
    assert {r.run_id for r in index.runs(where=["params.C = 2.0"])} == {built.lr}
    assert {r.run_id for r in index.runs("train", where=["params.model != rf"])} == {
        built.lr, built.failed,
    }  # fmt: skip
    assert len(index.runs(since="1h")) == 5 and len(index.runs(until="1h")) == 0
    assert len(index.runs(limit=2)) == 2 and len(index.runs(limit=2, offset=4)) == 1


def test_runs_dataframe_and_reprs(index: query.Index, built: Built) -> None:
    df = index.history("train", status=["ok"]).to_pandas()
    assert {"run_id", "params.model", "params.C", "metrics.accuracy", "tags"} <= set(df.columns)
    row = df.set_index("run_id").loc[built.lr]
    assert row["params.model"] == "lr" and row["metrics.accuracy"] == 0.85
    assert str(df["start"].dtype).startswith("datetime64")
    html = index.runs("train")._repr_html_()
    assert "<table>" in html and "metrics.accuracy" in html and built.rf in html


def test_print_and_ipython_terminal_show_tables(index: query.Index, built: Built) -> None:
    """Outside Jupyter (IPython in a terminal, print()) results used to show as dataclass
    dumps of nested dicts; now as the CLI's tables, complete (IDs not cut short)."""
    from IPython.lib import pretty as ipython

    def pretty(obj: object) -> str:
        return str(ipython.pretty(obj))  # type: ignore[no-untyped-call]

    runs = index.runs("train", where=["params.model = rf"])
    cmp = index.compare(built.rf, built.lr)
    for shown in (str(runs), pretty(runs)):
        assert "RunTable(" not in shown and "params.model" in shown and built.rf in shown
    for shown in (str(cmp), pretty(cmp)):
        assert "Comparison(" not in shown and "≠" in shown and "upstream lineage:" in shown
    assert built.clean in str(index.trace(built.model)) and "Lineage(" not in pretty(
        index.trace(built.model)
    )
    assert built.lr in pretty(index.inspect(built.lr)) and "train" in str(index.components())
    assert repr(runs).startswith("RunTable(")  # repr() stays the dataclass's, for debugging


def test_metric_history_as_a_dataframe(index: query.Index, built: Built) -> None:
    """The series of log_metric(..., step=…), like MlflowClient.get_metric_history."""
    info = index.inspect(built.failed)
    frame = info.metric_history("loss")
    assert list(frame.columns) == ["step", "timestamp", "value"]
    assert frame["step"].tolist() == [0, 10, 20] and frame["value"].tolist()[:2] == [2.0, 1.5]
    assert math.isnan(frame["value"].iloc[2])  # sent as "NaN" in JSON, a float again here
    assert (
        str(frame["timestamp"].dtype).startswith("datetime64")
        and frame["timestamp"].is_monotonic_increasing
    )
    with pytest.raises(query.NotFound, match=r"has no series 'accuracy'; its series: loss"):
        info.metric_history("accuracy")
    # the same answer from every index: NaN as JSON spells it (it was null over HTTP)
    assert info.metric_series["loss"]["values"][2] == "NaN"
    assert info.metric_series["loss"]["last"] == "NaN" and info.metrics["loss"] == "NaN"
    assert "last=NaN min=1.5 max=2 count=3" in info._repr_html_()  # crashed over HTTP
    assert "last=NaN" in str(info)


def test_lineage_inspect_and_lists(index: query.Index, built: Built) -> None:
    graph = index.trace(built.model)  # a local path: identified by content, like the CLI
    assert sorted(r["component"] for r in graph.runs.values()) == ["clean", "train"]
    assert built.rf_weak in graph.runs and "<table>" in graph._repr_html_()
    assert graph.to_dot().startswith("digraph") and graph.to_dict()["root"]["kind"] == "artifact"
    down = index.downstream(built.clean)
    assert {built.rf, built.lr, built.rf_weak, built.failed} <= set(down.runs)
    info = index.inspect(built.lr[:23])
    assert info.run_id == built.lr and info.params == {"model": "lr", "C": 2}
    assert info.inputs[0]["producer_run_id"] == built.clean
    comps = {c["component"]: c for c in index.components()}
    assert comps["train"]["runs"] == 4 and comps["train"]["failures"] == 1
    assert {r["component"] for r in index.stale(0.001) if r["stale"]} == {"clean", "train"}
    assert len(index.flags()) == 0 and index.review().flagged == 0


def test_compare(index: query.Index, built: Built) -> None:
    cmp = index.compare(built.rf, built.lr)
    differs = {p["name"]: p["differs"] for p in cmp.params}
    assert differs == {"C": True, "model": True}
    assert cmp.metrics[0]["values"] == [0.95, 0.85]
    (lineage,) = cmp.lineage
    assert lineage["identical"] and lineage["first_divergence"] == []
    assert [s["run_id"] for s in lineage["shared_runs"]] == [built.clean]
    assert not cmp.identical and "≠" in cmp._repr_html_()
    df = cmp.to_pandas()
    assert list(df.columns) == ["kind", "name", built.rf, built.lr, "differs"]
    same = index.compare(built.lr, built.lr)
    assert same.same_run and same.identical
    assert same.summary == ["the same run compared with itself: no differences"]
    # the run itself is not one of its upstream runs (it was listed as shared with itself)
    assert [s["run_id"] for s in same.lineage[0]["shared_runs"]] == [built.clean]
    three = index.compare(built.rf, built.lr, built.rf_weak)
    assert len(three.lineage) == 2 and three.params[0]["values"] == [1, 2, 3]


def test_errors_are_typed(index: query.Index, built: Built) -> None:
    with pytest.raises(query.BadQuery, match=r"unknown field 'foo'.*valid fields: params.<name>"):
        index.runs(where=["foo = 1"])
    with pytest.raises(query.BadQuery, match=r"malformed --where 'metrics.accuracy >>'"):
        index.runs(where=["metrics.accuracy >>"])
    with pytest.raises(query.BadQuery, match=r"malformed --where 'accuracy 0.9': write FIELD OP"):
        index.runs(where=["accuracy 0.9"])
    with pytest.raises(query.BadQuery, match=r"'>' compares numbers but 'high' is not a number"):
        index.runs(where=["metrics.accuracy > high"])
    with pytest.raises(query.BadQuery, match=r"unknown field 'metrics' in --sort"):
        index.runs(sort="metrics")
    with pytest.raises(query.BadQuery, match="compare takes 2 to 20 run IDs, got 1"):
        index.compare(built.rf)
    with pytest.raises(query.NotFound, match="no run 'no-such-run'"):
        index.inspect("no-such-run")
    with pytest.raises(query.NotFound, match="no component 'nope'"):
        index.history("nope")


def test_a_status_no_run_can_have_is_an_error(index: query.Index, built: Built) -> None:
    """MLflow's FAILED / FINISHED used to match nothing, silently."""
    with pytest.raises(
        query.BadQuery,
        match=r"unknown status 'FAILED' in --status 'FAILED' "
        r"\(did you mean 'error'\?\); run statuses: ok, error, running",
    ):
        index.runs(status="FAILED")
    with pytest.raises(query.BadQuery, match=r"unknown status 'done' in --where 'status = done'"):
        index.runs(where=["status = done"])
    assert [r.run_id for r in index.runs(status=["error"])] == [built.failed]
    with pytest.raises(query.BadQuery, match=r"no run of 'train' has metrics.acc \(in --sort"):
        index.runs("train", sort="metrics.acc desc")  # a misspelt metric, not "no order"


def test_module_functions_use_the_default_index(
    built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MLTRACE_DB", "MLTRACE_SERVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLTRACE_INDEX", built.db)
    assert [r.run_id for r in query.runs(status="error")] == [built.failed]
    assert query.compare(built.rf, built.rf).same_run
    assert query.inspect(built.rf, db=built.db).metrics == {"accuracy": 0.95}
    monkeypatch.setenv("MLTRACE_INDEX", os.path.join(os.path.dirname(built.db), "none.db"))
    with pytest.raises(query.NotFound, match="no lineage index at .*none.db"):
        query.runs()


def test_no_index_yet_says_how_to_point_python_at_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MLTRACE_DB", "MLTRACE_SERVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLTRACE_INDEX", str(tmp_path / "none.db"))
    with pytest.raises(
        query.NotFound,
        match=r"no lineage index at .*none\.db; .*"
        r"\(in Python: query\.connect\(db=PATH\) / query\.connect\(server=URL\)\)",
    ):
        query.runs()


def test_two_index_variables_are_no_silent_pick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLTRACE_DB", "/tmp/a.db")
    monkeypatch.setenv("MLTRACE_SERVER", "http://127.0.0.1:9")
    with pytest.raises(ValueError, match="MLTRACE_DB=/tmp/a.db and MLTRACE_SERVER"):
        query.connect()


def test_times_read_z_and_refuse_seconds() -> None:
    assert query.to_ns("2026-01-01T00:00:00Z") == 1767225600 * 10**9
    assert query.to_ns(1767225600 * 10**9) == 1767225600 * 10**9
    with pytest.raises(query.BadQuery, match="looks like seconds"):
        query.to_ns(1767225600.0, "since")
