"""The collector's /metrics over real HTTP: runs go in through the SDK (OTLP/gRPC) or the
store, the exposition is scraped with httpx and parsed with prometheus_client's parsers."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

import otel_mltrace as mlt
from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.store import open_store
from mltrace_collector.service.collector import Collector, CollectorSettings
from mltrace_collector.service.exporters.prometheus import (
    MetricsExporter,
    add_provider,
    metrics_exporter,
)
from otel_mltrace.distributions import summarize
from tests.support_records import summarized_run

Samples = list[tuple[str, dict[str, str], float, Any]]


def start_collector(db: Path, **settings: Any) -> Collector:
    service = Collector(
        CollectorSettings.resolve(
            db=str(db), grpc_address="127.0.0.1:0", http_address="127.0.0.1:0", **settings
        )
    )
    service.start()
    return service


def scrape(collector: Collector, openmetrics: bool = False, token: str | None = None) -> str:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    resp = httpx.get(collector.http_endpoint + "/metrics", headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    expected = "application/openmetrics-text" if openmetrics else "text/plain"
    assert resp.headers["content-type"].startswith(expected)
    return resp.text


def samples(text: str, openmetrics: bool = False) -> Samples:
    families = parse_openmetrics(text) if openmetrics else parse_text(text)  # type: ignore[no-untyped-call]
    return [(s.name, s.labels, s.value, s.exemplar) for f in families for s in f.samples]


def pick(found: Samples, name: str, **labels: str) -> list[tuple[dict[str, str], float, Any]]:
    return [
        (lab, v, ex)
        for n, lab, v, ex in found
        if n == name and all(lab.get(k) == w for k, w in labels.items())
    ]


def value(found: Samples, name: str, **labels: str) -> float:
    hits = pick(found, name, **labels)
    assert len(hits) == 1, (name, labels, hits)
    return hits[0][1]


def buckets(found: Samples, **labels: str) -> list[tuple[float, float]]:
    hits = pick(found, "mltrace_output_value_bucket", **labels)
    return sorted((float(lab["le"]), v) for lab, v, _ in hits)


@pytest.fixture
def sdk_to(collector: Collector) -> Iterator[Collector]:
    mlt.configure(service_name="metrics-test", endpoint=collector.grpc_endpoint)
    yield collector
    mlt.shutdown()


def _run(component: str, outputs: dict[str, Any], **kw: Any) -> str:
    with mlt.run(component, **kw) as r:
        for name, values in outputs.items():
            r.log_output(name, values)
        trace_id = format(r.span.get_span_context().trace_id, "032x")
    assert mlt.flush()
    return trace_id


def test_distributions_drift_and_exemplars(sdk_to: Collector, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(10.0, 2.0, 20_000)
    latest = base.copy()
    latest[:100] = np.nan
    latest[100:150] = np.inf
    _run("predict", {"score": base})
    _run("predict", {"score": latest})
    found = samples(scrape(sdk_to))
    for method in ("psi", "js", "ks"):  # same values (up to nulls): no drift
        assert value(found, "mltrace_output_drift", output="score", method=method) < 0.02
    total = 20_000
    assert value(found, "mltrace_output_null_ratio", output="score") == 100 / total
    assert value(found, "mltrace_output_invalid_ratio", output="score") == 50 / total
    assert value(found, "mltrace_output_values", output="score") == total
    valid = latest[np.isfinite(latest)]
    for q in (0.5, 0.9, 0.99):
        got = value(found, "mltrace_output_quantile", output="score", q=str(q))
        assert got == pytest.approx(float(np.quantile(valid, q)), rel=0.02)
    first = buckets(found, component="predict", output="score")

    shifted = _run("predict", {"score": rng.normal(16.0, 2.0, 20_000)})
    text = scrape(sdk_to, openmetrics=True)
    found = samples(text, openmetrics=True)
    assert value(found, "mltrace_output_drift", output="score", method="psi") > 0.25
    assert value(found, "mltrace_output_drift", output="score", method="js") > 0.1
    assert value(found, "mltrace_output_drift", output="score", method="ks") > 0.1
    assert value(found, "mltrace_output_drift_threshold", method="psi") == 0.25
    now = buckets(found, component="predict", output="score")
    assert [le for le, _ in now] == [le for le, _ in first]  # bounds never change
    counts = [c for _, c in now]
    assert counts == sorted(counts) and counts[-1] == 2 * 20_000 - 150 + 20_000
    assert value(found, "mltrace_output_value_count", output="score") == counts[-1]
    assert all(now_c >= old_c for (_, now_c), (_, old_c) in zip(now, first, strict=True))
    exemplars = [ex for _, _, ex in pick(found, "mltrace_output_value_bucket") if ex]
    assert any(ex.labels["trace_id"] == shifted for ex in exemplars)
    top = max(pick(found, "mltrace_output_value_bucket"), key=lambda h: (h[1], h[2] is not None))
    assert top[2] is not None and top[2].labels["trace_id"] == shifted  # +Inf: newest run

    mlt.shutdown()
    sdk_to.stop()  # restart on the same index: same bounds, same counts
    again = start_collector(tmp_path / "collector.db")
    try:
        assert buckets(samples(scrape(again)), component="predict", output="score") == now
    finally:
        again.stop()


def test_run_health_staleness_and_edges(sdk_to: Collector, tmp_path: Path) -> None:
    raw, clean = tmp_path / "raw.csv", tmp_path / "clean.csv"
    raw.write_text("x\n1\n")
    with mlt.run("clean", inputs=[raw]) as r:
        clean.write_text("x\n1\n")
        r.add_output(clean)
    with mlt.run("train", inputs=[clean, "s3://bucket/labels"]) as r:
        pass
    with pytest.raises(RuntimeError), mlt.run("train"):
        raise RuntimeError("boom")
    assert mlt.flush()
    found = samples(scrape(sdk_to))
    assert value(found, "mltrace_lineage_edge", source="clean", target="train") == 1
    assert value(found, "mltrace_runs_total", component="train", status="ok") == 1
    assert value(found, "mltrace_runs_total", component="train", status="error") == 1
    assert value(found, "mltrace_run_duration_seconds_count", component="train") == 2
    assert value(found, "mltrace_component_stale", component="clean") == 0
    assert value(found, "mltrace_component_inputs", component="clean") == 1
    assert value(found, "mltrace_component_outputs", component="clean") == 1
    age = value(found, "mltrace_component_input_age_seconds", component="clean")
    assert 0 <= age < 60
    last = value(found, "mltrace_component_last_run_timestamp_seconds", component="train")
    ok = value(found, "mltrace_component_last_success_timestamp_seconds", component="train")
    assert ok < last  # the newest train run failed
    assert value(found, "mltrace_exporter_leader") == 1
    assert value(found, "mltrace_ingest_spans_total", outcome="run") == 3

    with mlt.run("read", inputs=[clean]):
        pass
    with mlt.run("clean", inputs=[raw]) as r:  # a newer version of what "read" read
        clean.write_text("x\n2\n")
        r.add_output(clean)
    assert mlt.flush()
    deadline = time.monotonic() + 30  # staleness is recomputed in the background, >= 1 s apart
    while True:
        found = samples(scrape(sdk_to))
        hits = pick(found, "mltrace_component_stale", component="read")
        if (hits and hits[0][1]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert value(found, "mltrace_component_stale", component="read") == 1
    assert value(found, "mltrace_component_stale_runs", component="read") == 1
    assert value(found, "mltrace_lineage_edge", source="clean", target="read") == 1


def _record(i: int, component: str, summary: dict[str, Any], name: str = "y") -> RunRecord:
    start = 1_700_000_000_000_000_000 + i * 1_000_000
    return summarized_run(
        f"run-{component}-{i}",
        component,
        i,
        {name: summary},
        start_ns=start,
        duration_ns=500_000,
        service="bulk",
    )


def test_bad_input_never_breaks_a_scrape(collector: Collector) -> None:
    cats = [f"c{i}" for i in range(10_000)]
    runs = [
        _record(0, "odd", summarize("y", []).to_json()),
        _record(1, "odd", summarize("y", [None, None]).to_json(), name="nulls"),
        _record(2, "odd", summarize("y", [1.0, "x", "y", math.inf], kind="numeric").to_json()),
        _record(3, "odd", summarize("y", cats).to_json(), name="cats"),
        _record(4, "odd", {"name": "y", "kind": "bogus"}, name="broken"),
    ]
    collector.store.ingest(runs)
    found = samples(scrape(collector))
    assert value(found, "mltrace_output_values", output="y") == 4  # the latest run's
    assert value(found, "mltrace_output_invalid_ratio", output="y") == 0.75
    assert value(found, "mltrace_output_values", output="nulls") == 2
    assert value(found, "mltrace_output_null_ratio", output="nulls") == 1.0
    assert not pick(found, "mltrace_output_quantile", output="nulls")
    shares = pick(found, "mltrace_output_category_share", output="cats")
    assert 1 < len(shares) <= 11 and sum(v for _, v, _ in shares) == pytest.approx(1.0)
    assert not pick(found, "mltrace_output_values", output="broken")  # logged and skipped
    assert value(found, "mltrace_runs_total", component="odd", status="ok") == 5
    assert value(found, "mltrace_runs_total", component="odd", status="error") == 0  # exported at 0


def test_cardinality_cap_bounds_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLTRACE_LABEL_LIMIT", "50")
    service = start_collector(tmp_path / "many.db")
    try:
        summary = summarize("y", [1.0, 2.0, 3.0]).to_json()
        n = 100_000
        for start in range(0, n, 20_000):
            service.store.ingest(
                [_record(i, f"comp-{i}", summary) for i in range(start, start + 20_000)]
            )
        found = samples(scrape(service))
        components = {lab["component"] for _, lab, _, _ in found if "component" in lab}
        assert len(components) == 51 and "__other__" in components
        assert value(found, "mltrace_label_values_dropped_total", label="component") == n - 50
        assert value(found, "mltrace_runs_total", component="__other__", status="ok") == n - 50
        assert len(found) < 51 * 60  # a bounded number of series whatever the index holds
    finally:
        service.stop()


def test_auth_providers_and_bucket_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLTRACE_HISTOGRAM_BUCKETS", "train/*=1,2,3")
    service = start_collector(tmp_path / "auth.db", auth_token="s3cret")
    try:

        def checks() -> list[Metric]:
            fam = CounterMetricFamily(
                "mltrace_check_failures", "doc", labels=["component", "check"]
            )
            fam.add_metric(["train", "not_empty"], 2)
            return [fam]

        add_provider(service, checks, store_derived=True)
        assert metrics_exporter(service) is not None
        service.store.ingest([_record(0, "train", summarize("loss", [1.5, 2.5]).to_json(), "loss")])
        denied = httpx.get(service.http_endpoint + "/metrics")
        assert denied.status_code == 401
        found = samples(scrape(service, token="s3cret"))
        assert buckets(found, output="loss") == [(1.0, 0), (2.0, 1), (3.0, 2), (math.inf, 2)]
        assert value(found, "mltrace_check_failures_total", check="not_empty") == 2
    finally:
        service.stop()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_a_live_scrape(sdk_to: Collector) -> None:
    rng = np.random.default_rng(1)
    _run("predict", {"score": rng.normal(0, 1, 1000), "label": rng.choice(["a", "b"], 100)})
    _run("predict", {"score": rng.normal(-3, 1, 1000)})
    text = scrape(sdk_to)
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_one_leader_exports_store_series_on_postgres(postgres_url: str) -> None:
    stores = [open_store(postgres_url), open_store(postgres_url)]
    exporters = [MetricsExporter(s) for s in stores]
    try:
        stores[0].ingest([_record(0, "train", summarize("y", [1.0, 2.0]).to_json())])
        first, second = (samples(e.render(None)[0].decode()) for e in exporters)
        assert value(first, "mltrace_exporter_leader") == 1
        assert value(second, "mltrace_exporter_leader") == 0
        assert value(first, "mltrace_runs_total", component="train", status="ok") == 1
        assert not pick(second, "mltrace_runs_total")  # sum() across replicas: no double count
        assert pick(second, "mltrace_ingest_spans_total")  # per-replica series: everywhere
        bounds = buckets(first, output="y")
        exporters[0].close()  # the leader goes away: its session lock is released
        second = samples(exporters[1].render(None)[0].decode())
        assert value(second, "mltrace_exporter_leader") == 1
        assert buckets(second, output="y") == bounds  # bounds read back from the index
    finally:
        for e, s in zip(exporters, stores, strict=True):
            e.close()
            s.close()
