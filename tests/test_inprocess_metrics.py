"""In-process output metrics (otel_mltrace.metrics): bulk histogram updates, gauges of the
latest batch, the Run.log_output hook, a real HTTP scrape, and multi-process aggregation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

import otel_mltrace as mlt
from otel_mltrace.metrics import OutputMetrics, disable, enable, start_http_server

Found = dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, Any]]


def parse(text: str, openmetrics: bool = False) -> Found:
    if openmetrics:
        families = list(parse_openmetrics(text))  # type: ignore[no-untyped-call]
    else:
        families = list(parse_text(text))
    return {
        (s.name, tuple(sorted(s.labels.items()))): (s.value, s.exemplar)
        for f in families
        for s in f.samples
    }


def exposition(m: OutputMetrics, openmetrics: bool = False) -> str:
    assert m.registry is not None
    if openmetrics:
        return str(generate_openmetrics(m.registry).decode())  # type: ignore[no-untyped-call]
    return generate_latest(m.registry).decode()


def get(found: Found, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))][0]


@pytest.fixture
def fresh() -> Iterator[OutputMetrics]:
    yield OutputMetrics(CollectorRegistry(), buckets=[0.5, 2.5, 5.5, 9.5])
    disable()


def test_bulk_histogram_and_latest_gauges(fresh: OutputMetrics) -> None:
    values = np.tile(np.arange(10, dtype=float), 1000)  # 0..9, 1000 each
    fresh.observe_output("predict", "score", values)
    fresh.observe_output("predict", "score", [1.0, 2.0, None, float("nan"), float("inf")])
    fresh.observe_output("predict", "label", ["a"] * 30 + ["b"] * 10)
    found = parse(exposition(fresh))
    lab = {"component": "predict", "output": "score"}
    assert get(found, "mltrace_output_value_bucket", le="0.5", **lab) == 1000
    assert get(found, "mltrace_output_value_bucket", le="2.5", **lab) == 3002
    assert get(found, "mltrace_output_value_bucket", le="9.5", **lab) == 10_002
    assert get(found, "mltrace_output_value_count", **lab) == 10_002
    assert get(found, "mltrace_output_value_sum", **lab) == pytest.approx(45_003.0)
    assert get(found, "mltrace_output_values", **lab) == 5  # the latest batch
    assert get(found, "mltrace_output_null_ratio", **lab) == 2 / 5
    assert get(found, "mltrace_output_invalid_ratio", **lab) == 1 / 5
    assert get(found, "mltrace_output_quantile", q="0.5", **lab) == pytest.approx(1.0, rel=0.02)
    shares = {"component": "predict", "output": "label"}
    assert get(found, "mltrace_output_category_share", category="a", **shares) == 0.75
    assert get(found, "mltrace_output_category_share", category="b", **shares) == 0.25
    fresh.observe_output("predict", "label", ["c"] * 4)  # "a"/"b" left the top: now 0
    found = parse(exposition(fresh))
    assert get(found, "mltrace_output_category_share", category="a", **shares) == 0.0
    assert get(found, "mltrace_output_category_share", category="c", **shares) == 1.0


def test_empty_batch_and_label_cap() -> None:
    m = OutputMetrics(CollectorRegistry(), buckets=[1.0], label_limit=2)
    m.observe_output("svc", "empty", [])
    for i in range(50):
        m.observe_output(f"svc-{i}", "y", [0.5])
    found = parse(exposition(m))
    assert get(found, "mltrace_output_values", component="svc", output="empty") == 0
    assert not [k for k in found if k[0] == "mltrace_output_null_ratio" and "empty" in str(k)]
    comps = {dict(k[1]).get("component") for k in found}
    assert comps == {"svc", "svc-0", "__other__"}
    other = {"component": "__other__", "output": "y"}
    assert get(found, "mltrace_output_value_count", **other) == 49


def test_log_output_feeds_enabled_metrics(
    spans: InMemorySpanExporter, fresh: OutputMetrics
) -> None:
    assert enable(fresh) is fresh
    with mlt.run("predict") as r:
        r.log_output("score", [1.0, 3.0, 7.0])
        trace_id = format(r.span.get_span_context().trace_id, "032x")
    text = exposition(fresh, openmetrics=True)
    found = parse(text, openmetrics=True)
    lab = {"component": "predict", "output": "score"}
    assert get(found, "mltrace_output_value_bucket", le="9.5", **lab) == 3
    exemplar = found[("mltrace_output_value_bucket", tuple(sorted({**lab, "le": "2.5"}.items())))]
    assert exemplar[1] is not None and exemplar[1].labels["trace_id"] == trace_id
    disable()
    with mlt.run("predict") as r:
        r.log_output("score", [1.0])
    found = parse(exposition(fresh))
    assert get(found, "mltrace_output_value_count", **lab) == 3  # no longer fed


def test_start_http_server_serves_the_registry(fresh: OutputMetrics) -> None:
    fresh.observe_output("svc", "latency", [0.1, 0.2, 3.0])
    server, thread = start_http_server(0, "127.0.0.1", registry=fresh.registry)
    try:
        resp = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
        found = parse(resp.text)
        assert get(found, "mltrace_output_value_count", component="svc", output="latency") == 3
    finally:
        server.shutdown()
        thread.join(5)


WORKER = textwrap.dedent(
    """
    import sys
    from otel_mltrace.metrics import OutputMetrics
    m = OutputMetrics(buckets=[1.0, 10.0])
    m.observe_output("svc", "y", [float(v) for v in sys.argv[1].split(",")])
    """
)


def test_multiprocess_mode_sums_histograms_across_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for batch in ("0.5,5", "20,30,40"):
        subprocess.run([sys.executable, "-c", WORKER, batch], env=env, check=True, timeout=60)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    found = parse(generate_latest(registry).decode())
    lab = {"component": "svc", "output": "y"}
    assert get(found, "mltrace_output_value_bucket", le="1.0", **lab) == 1
    assert get(found, "mltrace_output_value_bucket", le="+Inf", **lab) == 5
    assert get(found, "mltrace_output_value_sum", **lab) == pytest.approx(95.5)
    assert get(found, "mltrace_output_values", **lab) == 3  # mostrecent: the later batch
