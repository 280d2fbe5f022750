"""The monitoring stack of the end-to-end tests, started once per session and shared.

``mltrace_stack`` (session) starts, on loopback free ports, a webhook receiver, a real
Alertmanager routing to it, a real collector (SQLite in a tmp folder) and a real Prometheus
scraping the collector's ``/metrics`` every second with our rule files (``for:`` shortened
to 0s) and alerting to the Alertmanager. It then runs the digits pipeline twice through the
collector — normal, then ``--shift 3`` in the same work directory (a new version of the raw
data drop) — and a small extra job with one empty output (``export_scores/scores``) and one
failing run (``flaky``), and waits until Prometheus has scraped the final state.
tests/test_prometheus_e2e.py and tests/test_grafana.py read the same Prometheus.

Missing ``prometheus`` / ``prometheus-alertmanager`` binaries skip the dependent tests with
the reason (printed), unless ``MLTRACE_REQUIRE_PROMETHEUS=1`` (CI), where they fail.
Registered from tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mltrace_collector.service.collector import Collector
from tests.collector_variants import loopback_collector

from .alertmanager import AlertmanagerServer, AlertmanagerUnavailable, WebhookReceiver
from .prometheus import PrometheusServer, PrometheusUnavailable

REPO = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "MLTRACE_REQUIRE_PROMETHEUS"
SHIFT = 3.0
EXTRA_JOB = """
import otel_mltrace
otel_mltrace.configure(service_name="e2e-extra")
with otel_mltrace.run("export_scores") as run:
    run.log_output("scores", [])
try:
    with otel_mltrace.run("flaky"):
        raise RuntimeError("deliberate failure for the alert test")
except RuntimeError:
    pass
otel_mltrace.shutdown()
"""
"""One empty output and one failed run, for the empty-output and failure alerts."""
CADENCE_RULES = """
groups:
  - name: e2e-cadence
    rules:
      - record: mltrace:component_expected_cadence_seconds:configured
        expr: vector(3600)
        labels:
          component: predict
"""
"""The per-component cadence convention of mltrace-cadence.yml, as a user would add it."""


@dataclass
class MltraceStack:
    """Everything the end-to-end tests look at; ``runs[label][component]`` = store row."""

    collector: Collector
    prometheus: PrometheusServer
    alertmanager: AlertmanagerServer
    webhook: WebhookReceiver
    workdir: Path
    runs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set)")
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(
        cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"


def _latest_runs(collector: Collector) -> dict[str, dict[str, Any]]:
    return {row["component"]: dict(row) for row in collector.store.latest_runs()}


@pytest.fixture(scope="session")
def mltrace_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MltraceStack]:
    """The running stack after both pipeline runs (see the module docstring)."""
    base = tmp_path_factory.mktemp("e2e-prometheus")
    started = time.monotonic()
    with WebhookReceiver() as webhook:
        try:
            alertmanager = AlertmanagerServer.start(webhook.url)
        except AlertmanagerUnavailable as exc:
            _unavailable(f"Alertmanager unavailable: {exc}")
            raise
        try:
            with loopback_collector(base / "collector.db") as collector:
                target = collector.http_endpoint.split("://", 1)[1]
                try:
                    prometheus = PrometheusServer.start(
                        [target], alertmanager=alertmanager.address, extra_rules=CADENCE_RULES
                    )
                except PrometheusUnavailable as exc:
                    _unavailable(f"Prometheus unavailable: {exc}")
                    raise
                with prometheus:
                    stack = MltraceStack(
                        collector, prometheus, alertmanager, webhook, base / "digits"
                    )
                    stack.timings["servers_s"] = time.monotonic() - started
                    _populate(stack)
                    stack.timings["setup_s"] = time.monotonic() - started
                    stack.timings["started_monotonic"] = started
                    yield stack
        finally:
            alertmanager.stop()


def _populate(stack: MltraceStack) -> None:
    env = dict(os.environ)
    for var in (
        "MLTRACE_INDEX",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        env.pop(var, None)
    env["MLTRACE_ENDPOINT"] = stack.collector.grpc_endpoint
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    pipeline = [sys.executable, "-m", "examples.digits.pipeline", "--workdir", str(stack.workdir)]
    for label, shift in (("normal", 0.0), ("shifted", SHIFT)):
        t0 = time.monotonic()
        _run([*pipeline, "--shift", str(shift)], env, f"digits pipeline ({label})")
        stack.timings[f"pipeline_{label}_s"] = time.monotonic() - t0
        stack.runs[label] = _latest_runs(stack.collector)
        keep = stack.workdir.parent / f"predictions-{label}.csv"
        keep.write_bytes((stack.workdir / "predictions" / "predictions.csv").read_bytes())
    _run([sys.executable, "-c", EXTRA_JOB], env, "extra job (empty output, failing run)")
    stack.runs["extra"] = _latest_runs(stack.collector)
    # Prometheus has the final state once it scraped both digits runs and the extra job.
    stack.prometheus.wait_for_query(
        'mltrace_runs_total{component="ingest",status="ok"} == 2 '
        "and on() count(count by (component) "
        '(mltrace_runs_total{component=~"flaky|export_scores"})) == 2',
        timeout=60,
    )
    stack.prometheus.wait_for_rule_evaluations(rounds=2, timeout=30)
