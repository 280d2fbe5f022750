"""Shared fixtures: an in-memory span sink for SDK tests, a live collector on loopback and
the OTel Collector binary bootstrap built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_mltrace
from mltrace_collector.service.collector import Collector
from tests.collector_variants import loopback_collector
from tests.servers.otelcol import OtelcolUnavailable, find_otelcol

pytest_plugins = ["tests.servers.fixtures", "tests.servers.fixtures_prometheus"]


@pytest.fixture(autouse=True)
def _private_spool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """OTLP runs a test could not deliver wait in its own spool, not the user's one."""
    monkeypatch.setenv("MLTRACE_SPOOL_DIR", str(tmp_path / "otlp-spool"))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Run spans land in memory (the SDK's own export path is off)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel_mltrace.configure(service_name="test", tracer_provider=provider, add_exporter=False)
    yield exporter
    otel_mltrace.shutdown()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """A real `otel-mltrace serve` stack on free loopback ports, SQLite in tmp_path."""
    with loopback_collector(tmp_path / "collector.db") as service:
        yield service


@pytest.fixture
def no_start_records(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Delivery reports count spans: keep run start records (sent for a run still open
    ~0.1 s after it started, so a timing-dependent number of them) out of exact counts."""
    from otel_mltrace import lifecycle

    monkeypatch.setenv("MLTRACE_ANNOUNCE_RUNS", "false")
    lifecycle._announce_setting.clear()
    yield
    lifecycle._announce_setting.clear()


@pytest.fixture(scope="session")
def otelcol_binary() -> Path:
    """The OTel Collector binary bootstrap built; skips saying why when there is none."""
    try:
        return find_otelcol()
    except OtelcolUnavailable as exc:
        pytest.skip(str(exc))
