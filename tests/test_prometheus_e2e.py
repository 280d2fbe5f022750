"""End to end: digits pipeline (normal, then shifted) -> collector -> real Prometheus ->
real Alertmanager -> webhook. Everything is asserted through the servers' HTTP APIs.

Which outputs drift under ``--shift 3``: the shift acts on the raw pixel intensities
(``clip(1.3 x + 3, 0, 16)``), and the shifted run reruns every step, so the scaler is
refit and the model retrained on the shifted data. Only ``ingest/pixel_mean`` (raw
intensities) moves (PSI ~8.4, JS ~0.96, KS ~1.0); the standardized features stay centered,
the retrained model is as confident as before and the labels are the same digits (every
other output scores below its thresholds: PSI <= 0.03, JS <= 0.07, KS <= 0.04). The drift
alert must therefore fire for exactly one output.

Shared stack: tests/servers/fixtures_prometheus.py (also used by tests/test_grafana.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

import httpx
import numpy as np
import pytest

from examples.digits._common import Paths, Table
from otel_mltrace.distributions import OutputSummary
from otel_mltrace.drift import compare
from tests.servers.fixtures_prometheus import MltraceStack
from tests.servers.prometheus import label_set

pytestmark = pytest.mark.timeout(600)

DIGITS = ("ingest", "split", "featurize", "train", "evaluate", "predict")
DRIFTED = {("ingest", "pixel_mean")}
SKETCH_ACCURACY = 0.01
"""Relative accuracy of the output sketches (otel_mltrace.distributions)."""


def _value(stack: MltraceStack, expr: str) -> float:
    result = stack.prometheus.query(expr)
    assert len(result) == 1, f"{expr}: expected one sample, got {result}"
    return float(result[0]["value"][1])


def _confidences(stack: MltraceStack, label: str) -> np.ndarray[Any, Any]:
    path = stack.workdir.parent / f"predictions-{label}.csv"
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=3)


def _summary(stack: MltraceStack, label: str, component: str, output: str) -> OutputSummary:
    run_id = stack.runs[label][component]["run_id"]
    rows = [r for r in stack.collector.store.run_outputs(run_id) if r["name"] == output]
    assert rows, f"{component}/{output} has no summary in run {run_id}"
    return OutputSummary.from_json(rows[0]["summary"])


def test_scrape_target_up(mltrace_stack: MltraceStack) -> None:
    targets = mltrace_stack.prometheus.targets()
    assert [t["health"] for t in targets] == ["up"], targets
    assert _value(mltrace_stack, 'up{job="mltrace"}') == 1.0


def test_run_counts(mltrace_stack: MltraceStack) -> None:
    ok = mltrace_stack.prometheus.query_values('mltrace_runs_total{status="ok"}')
    by_component = {dict(k)["component"]: v for k, v in ok.items()}
    for component in DIGITS:
        assert by_component[component] == 2.0, (component, by_component)
    assert _value(mltrace_stack, 'mltrace_runs_total{component="flaky",status="error"}') == 1.0


def test_histogram_matches_predictions(mltrace_stack: MltraceStack) -> None:
    """``mltrace_output_value`` of predict/confidence holds both runs' values: its buckets
    agree with numpy counts of the two predictions files up to the sketch accuracy."""
    values = np.concatenate(
        [_confidences(mltrace_stack, "normal"), _confidences(mltrace_stack, "shifted")]
    )
    sel = '{component="predict",output="confidence"}'
    assert _value(mltrace_stack, f"mltrace_output_value_count{sel}") == len(values)
    assert _value(mltrace_stack, f"mltrace_output_value_sum{sel}") == pytest.approx(
        values.sum(), rel=1e-4
    )
    buckets = mltrace_stack.prometheus.query(f"mltrace_output_value_bucket{sel}")
    assert len(buckets) >= 3
    a = SKETCH_ACCURACY * 1.01
    for sample in buckets:
        le = float(sample["metric"]["le"])
        got = float(sample["value"][1])
        exact = int((values <= le).sum())
        # values within the sketch's accuracy of the bound may fall on either side
        near = int(((values > le / (1 + a)) & (values <= le * (1 + a))).sum()) + 1
        assert abs(got - exact) <= near, (le, got, exact, near)
    inf = _value(
        mltrace_stack,
        'mltrace_output_value_bucket{component="predict",output="confidence",le="+Inf"}',
    )
    assert inf == len(values)


def test_quantiles_match_numpy(mltrace_stack: MltraceStack) -> None:
    """Quantile gauges describe the latest (shifted) run: compare with numpy on its files."""
    paths = Paths(mltrace_stack.workdir)
    cases = {
        ("predict", "confidence"): _confidences(mltrace_stack, "shifted"),
        ("ingest", "pixel_mean"): Table.read(paths.ingested).X.mean(axis=1),
    }
    for (component, output), values in cases.items():
        got = mltrace_stack.prometheus.query_values(
            f'mltrace_output_quantile{{component="{component}",output="{output}"}}'
        )
        quantiles = {float(dict(k)["q"]): v for k, v in got.items()}
        assert set(quantiles) == {0.5, 0.9, 0.99}, got
        for q, value in quantiles.items():
            lo = float(np.quantile(values, q, method="lower"))
            hi = float(np.quantile(values, q, method="higher"))
            tol = 2 * SKETCH_ACCURACY  # sketch accuracy + 6-decimal rounding of the file
            assert lo * (1 - tol) <= value <= hi * (1 + tol), (component, output, q, value, lo, hi)
        assert _value(
            mltrace_stack, f'mltrace_output_values{{component="{component}",output="{output}"}}'
        ) == len(values)


def test_drift_series_match_store_summaries(mltrace_stack: MltraceStack) -> None:
    """``mltrace_output_drift`` = drift.compare(first run, latest run) on the stored sketches."""
    drift = mltrace_stack.prometheus.query_values("mltrace_output_drift")
    assert drift
    outputs = {(dict(k)["component"], dict(k)["output"]) for k in drift}
    assert ("ingest", "pixel_mean") in outputs and ("predict", "confidence") in outputs
    for component, output in outputs:
        if component not in DIGITS:
            continue
        expected = compare(
            _summary(mltrace_stack, "normal", component, output),
            _summary(mltrace_stack, "shifted", component, output),
        )
        for method, value in expected.items():
            key = tuple(
                sorted(
                    {
                        "component": component,
                        "output": output,
                        "method": method,
                        "instance": _instance(mltrace_stack),
                        "job": "mltrace",
                    }.items()
                )
            )
            if value is None:
                assert key not in drift, key
            else:
                assert drift[key] == pytest.approx(value, abs=1e-9), key
    ratios = mltrace_stack.prometheus.query_values("mltrace:output_drift:threshold_ratio > 1")
    assert {(dict(k)["component"], dict(k)["output"]) for k in ratios} == DRIFTED


def _instance(stack: MltraceStack) -> str:
    return stack.collector.http_endpoint.split("://", 1)[1]


def test_staleness_series(mltrace_stack: MltraceStack) -> None:
    """Every step reran after its inputs changed: nothing is stale; input ages are recent."""
    stale = mltrace_stack.prometheus.query_values("mltrace_component_stale")
    by_component = {dict(k)["component"]: v for k, v in stale.items()}
    assert set(DIGITS) <= set(by_component), by_component
    assert all(by_component[c] == 0.0 for c in DIGITS), by_component
    ages = mltrace_stack.prometheus.query_values("mltrace_component_input_age_seconds")
    # every input was produced after the stack started, and ages are read at scrape time
    since_start = time.monotonic() - mltrace_stack.timings["started_monotonic"] + 5
    for key, age in ages.items():
        if dict(key)["component"] in DIGITS:
            assert 0.0 <= age < since_start, (key, age, since_start)


def test_exemplar_carries_shifted_trace_id(mltrace_stack: MltraceStack) -> None:
    shifted = mltrace_stack.runs["shifted"]["ingest"]["trace_id"]
    normal = mltrace_stack.runs["normal"]["ingest"]["trace_id"]
    assert shifted != normal
    result = mltrace_stack.prometheus.query_exemplars(
        'mltrace_output_value_bucket{component="ingest",output="pixel_mean"}'
    )
    trace_ids = {
        e["labels"].get("trace_id") for series in result for e in series.get("exemplars", [])
    }
    assert shifted in trace_ids, (shifted, trace_ids)


def _firing(stack: MltraceStack, alertname: str) -> set[tuple[str, ...]]:
    return label_set(
        (
            {"metric": a["labels"]}
            for a in stack.prometheus.alerts()
            if a["labels"]["alertname"] == alertname and a["state"] == "firing"
        ),
        "component",
        "output",
    )


def test_drift_alert_fires_for_shifted_output_only(mltrace_stack: MltraceStack) -> None:
    prom = mltrace_stack.prometheus
    alerts = prom.wait_for_alerts(
        lambda a: a["labels"]["alertname"] == "MltraceOutputDrift", timeout=30
    )
    assert {(a["labels"]["component"], a["labels"]["output"]) for a in alerts} == DRIFTED
    assert {a["labels"]["method"] for a in alerts} == {"psi", "js", "ks"}
    for alert in alerts:
        assert "ingest" in alert["annotations"]["description"]
        assert "pixel_mean" in alert["annotations"]["description"]
        assert "otel-mltrace history ingest" in alert["annotations"]["runbook"]
    assert _firing(mltrace_stack, "MltraceOutputDrift") == DRIFTED


def test_other_alerts_in_the_real_prometheus(mltrace_stack: MltraceStack) -> None:
    """Empty output and failed run fire; nothing is stale, overdue or missing."""
    prom = mltrace_stack.prometheus
    prom.wait_for_alerts(lambda a: a["labels"]["alertname"] == "MltraceOutputEmpty", timeout=30)
    assert _firing(mltrace_stack, "MltraceOutputEmpty") == {("export_scores", "scores")}
    prom.wait_for_alerts(
        lambda a: a["labels"]["alertname"] == "MltraceComponentLastRunFailed", timeout=30
    )
    assert _firing(mltrace_stack, "MltraceComponentLastRunFailed") == {("flaky", "")}
    for quiet in (
        "MltraceComponentStale",
        "MltraceComponentOverdue",
        "MltraceComponentNeverRun",
        "MltraceNoRunMetrics",
        "MltraceOutputNullRatioSpike",
    ):
        assert _firing(mltrace_stack, quiet) == set(), quiet


def test_alertmanager_delivers_drift_alert_to_webhook(mltrace_stack: MltraceStack) -> None:
    delivered = mltrace_stack.webhook.wait_for(
        lambda a: a["labels"].get("alertname") == "MltraceOutputDrift", timeout=60
    )
    assert {(a["labels"]["component"], a["labels"]["output"]) for a in delivered} == DRIFTED
    firing = [a for a in delivered if a["status"] == "firing"]
    assert firing, delivered
    if len(firing) < len(delivered):
        # A "resolved" notification is right only when Prometheus lost the series for a
        # moment: a scrape of /metrics that failed (1 s interval and timeout here, on a
        # loaded machine). Anything else would be the drift gauge flapping: a wrong answer.
        dips = mltrace_stack.prometheus.query('min_over_time(up{job="mltrace"}[30m])')
        assert dips and float(dips[0]["value"][1]) == 0.0, (
            f"drift alert resolved without a failed scrape: {delivered}"
        )
    assert "pixel_mean" in firing[0]["annotations"]["summary"]
    held = mltrace_stack.alertmanager.alerts()
    assert any(a["labels"]["alertname"] == "MltraceOutputDrift" for a in held)


def test_promtool_check_metrics_on_live_scrape(mltrace_stack: MltraceStack) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        print("SKIP: promtool not on PATH (Debian package `prometheus`)")
        pytest.skip("promtool not on PATH (Debian package `prometheus`)")
    response = httpx.get(f"{mltrace_stack.collector.http_endpoint}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "mltrace_output_value_bucket" in response.text
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=response.text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_timings(mltrace_stack: MltraceStack) -> None:
    """Where the end-to-end time goes (printed; the pipelines dominate)."""
    print(json.dumps({k: round(v, 1) for k, v in mltrace_stack.timings.items()}))
    assert mltrace_stack.timings["setup_s"] > 0
