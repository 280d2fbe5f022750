"""Before/after checks: recorded on the span and in the index, raise or flag, never crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import otel_mltrace as mlt
from mltrace_collector.index.decode.checks import check_failures
from mltrace_collector.index.model import CheckRecord, RunRecord
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import open_store
from mltrace_collector.service.collector import Collector
from otel_mltrace import semconv
from otel_mltrace.checks import (
    Check,
    CheckContext,
    expect_null_ratio,
    expect_range,
    expect_rows,
    expect_schema,
)
from otel_mltrace.cli import main


def _events(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    span = exporter.get_finished_spans()[-1]
    return [dict(e.attributes or {}) for e in span.events if e.name == semconv.CHECK_EVENT]


def test_declarative_checks_pass_on_frames(spans: InMemorySpanExporter) -> None:
    frame = pd.DataFrame({"score": [0.1, 0.9, None], "label": ["a", "b", "a"]})
    checks = [
        expect_rows(min=1, phase="before"),
        expect_schema(["score", "label"], exact=True),
        expect_null_ratio("score", max=0.5),
        expect_range("score", min=0.0, max=1.0),
    ]
    with mlt.run("predict", inputs=[np.arange(3)], checks=checks) as run:
        run.add_output(frame, uri="mem://preds")
    statuses = [(e[semconv.CHECK_NAME], e[semconv.CHECK_PHASE], e[semconv.CHECK_STATUS])
                for e in _events(spans)]  # fmt: skip
    assert statuses == [("rows", "before", "pass"), ("schema", "after", "pass"),
                        ("null_ratio[score]", "after", "pass"),
                        ("range[score]", "after", "pass")]  # fmt: skip
    assert all(r.duration_s >= 0 for r in run.check_results)


def test_failing_check_raises_check_failed_and_marks_the_run(spans: InMemorySpanExporter) -> None:
    with pytest.raises(mlt.CheckFailed, match=r"range\[None\] \(after\): .*max 7 > 5"):
        with mlt.run("clean", checks=[expect_range(max=5)]) as run:
            run.add_output(np.array([1, 2, 7]), uri="mem://clean")
    span = spans.get_finished_spans()[-1]
    assert span.status.status_code is StatusCode.ERROR
    assert "CheckFailed" in (span.status.description or "")
    assert _events(spans)[0][semconv.CHECK_STATUS] == "fail"


def test_before_check_failure_skips_the_body(spans: InMemorySpanExporter) -> None:
    ran = []
    with pytest.raises(mlt.CheckFailed, match="has 0 rows < min 1"):
        with mlt.run("train", inputs=[np.array([])], checks=[expect_rows(min=1, phase="before")]):
            ran.append(True)
    assert ran == [] and spans.get_finished_spans()[-1].status.status_code is StatusCode.ERROR


def test_a_check_that_raises_is_an_error_not_a_crash(spans: InMemorySpanExporter) -> None:
    def broken(ctx: CheckContext) -> bool:
        raise KeyError("no column 'x'")

    soft = Check(lambda ctx: (False, "custom message"), on_fail="flag")
    with mlt.run("train", checks=[broken, soft]) as run:
        pass
    assert [r.status for r in run.check_results] == ["error", "fail"]
    assert run.check_results[0].message == "KeyError: \"no column 'x'\""
    assert run.check_results[1].message == "custom message"
    assert spans.get_finished_spans()[-1].status.status_code is StatusCode.OK


def test_decorator_checks_see_arguments_by_name(spans: InMemorySpanExporter) -> None:
    @mlt.component(
        "scale",
        inputs=["values"],
        outputs=["return"],
        checks=[expect_rows("values", min=2, phase="before"), expect_range(target="return", min=0)],
    )
    def scale(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return values * 2

    assert scale(np.array([1.0, 2.0])).tolist() == [2.0, 4.0]
    assert [e[semconv.CHECK_STATUS] for e in _events(spans)] == ["pass", "pass"]
    with pytest.raises(ValueError, match="on_fail 'ignore' is not one of"):
        Check(lambda ctx: True, on_fail="ignore")


def test_flag_on_fail_flags_outputs_in_the_index_and_inspect_shows_checks(
    tmp_path: Path,
) -> None:
    index = str(tmp_path / "index.db")
    mlt.configure(service_name="checks", index=index)
    try:
        for day, nulls in enumerate([0, 3]):
            values = np.array([np.nan] * nulls + [1.0] * (10 - nulls))
            check = expect_null_ratio(max=0.1, on_fail="flag")
            with mlt.run("predict", checks=[check]) as run:
                run.add_output(values, uri=f"s3://b/preds-{day}.parquet")
            assert run.check_results[0].status == ("pass" if nulls == 0 else "fail")
        mlt.flush()
    finally:
        mlt.shutdown()
    store = open_store(index)
    try:
        q = LineageQueries(store)
        flagged = q.flags()
        assert [f["target_id"].split("@")[0] for f in flagged] == ["s3://b/preds-1.parquet"]
        assert (
            flagged[0]["origin"].startswith("check:") and "null ratio 0.3" in flagged[0]["reason"]
        )
        assert check_failures(store) == [
            {"component": "predict", "check": "null_ratio[None]", "failures": 1}
        ]
        info = q.inspect(run.id)
        assert [(c["name"], c["status"], c["on_fail"]) for c in info["checks"]] == [
            ("null_ratio[None]", "fail", "flag")
        ]
    finally:
        store.close()
    out = CliRunner().invoke(main, ["--db", index, "inspect", run.id])
    assert out.exit_code == 0 and "check after  null_ratio[None]: fail" in out.output


def test_check_failures_metric_on_the_collector(collector: Collector) -> None:
    def run(run_id: str, status: str) -> RunRecord:
        check = CheckRecord("rows", "after", status, "0 rows < min 1", 0.001, "raise")
        return RunRecord(
            run_id=run_id, component="predict", trace_id="f" * 32, span_id=run_id.rjust(16, "0"),
            parent_span_id=None, service="svc", start_ns=1, end_ns=2, status="error",
            status_message=None, inputs=(), outputs=(), checks=(check,),
        )  # fmt: skip

    collector.store.ingest([run("1", "fail"), run("2", "error"), run("3", "pass")])
    body = httpx.get(collector.http_endpoint + "/metrics").text
    assert 'mltrace_check_failures_total{check="rows",component="predict"} 2.0' in body
