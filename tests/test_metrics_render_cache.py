"""The incremental /metrics encoding (per-pair and per-component cached text) gives the
same bytes as encoding every store-derived family at once, in both formats, and after new
runs re-encodes only the groups those runs touched."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.store import open_store
from mltrace_collector.index.store.base import Store
from mltrace_collector.service.exporters.families import Families
from mltrace_collector.service.exporters.prometheus import MetricsExporter
from otel_mltrace.distributions import summarize
from tests.support_records import summarized_run

ACCEPTS = [None, "application/openmetrics-text; version=1.0.0"]


def _run(i: int, component: str, outputs: dict[str, Any], status: str = "ok") -> RunRecord:
    start = 1_700_000_000_000_000_000 + i * 1_000_000_000
    return summarized_run(
        f"{component}-{i}",
        component,
        i,
        outputs,
        start_ns=start,
        duration_ns=3_000_000,
        service="cache",
        status=status,
        artifacts="s3://b",
    )


def _outputs(i: int, negative: bool = True) -> dict[str, Any]:
    out = {
        "score": summarize("score", [0.1 * i + k / 7 for k in range(50)] + [None]).to_json(),
        "loss": summarize("loss", [-3.0 + i, -1.0, 2.5, math.inf]).to_json(),  # negative bounds
        'odd"\\name\n': summarize("x", [1.0, 2.0 + i]).to_json(),
        "label": summarize("label", ["a", "b", "a", f"c{i}", 'q"\\\n\x1c']).to_json(),
    }
    if not negative:  # OpenMetrics parsers want _sum with _count (see docs/metrics.md)
        del out["loss"]
    return out


def _full(exporter: MetricsExporter, accept: str | None) -> str:
    encoder, _ = choose_encoder(accept or "")
    text = encoder(Families(exporter._build(exporter._static_builders(True)))).decode()
    return text.removesuffix("# EOF\n")


def _incremental(exporter: MetricsExporter, accept: str | None) -> str:
    encoder, fmt = choose_encoder(accept or "")
    return exporter._assemble(fmt, encoder)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(str(tmp_path / "cache.db"))


def test_incremental_text_equals_full_encoding(store: Store) -> None:
    store.ingest(
        [_run(i, f"comp{c}", _outputs(i + c)) for c in range(4) for i in range(3)]
        + [_run(9, "comp1", {}, status="error")]
    )
    exporter = MetricsExporter(store, label_limit=3, drift_reference="first:2")
    for accept in ACCEPTS:
        exporter.render(accept)
        assert _incremental(exporter, accept) == _full(exporter, accept)
    body, _ = exporter.render(ACCEPTS[1])
    assert body.decode().count("# EOF") == 1 and body.endswith(b"# EOF\n")
    body, _ = exporter.render(None)
    families = {f.name for f in parse_text(body.decode())}
    assert {"mltrace_output_value", "mltrace_output_drift", "mltrace_runs"} <= families

    store.ingest([_run(20, "comp0", _outputs(20)), _run(21, "comp7", _outputs(1))])
    for accept in ACCEPTS:
        exporter.render(accept)
        assert _incremental(exporter, accept) == _full(exporter, accept)


def test_new_runs_reencode_only_their_groups(store: Store) -> None:
    store.ingest([_run(i, f"comp{c}", _outputs(i, False)) for c in range(5) for i in range(2)])
    exporter = MetricsExporter(store)
    encoder, fmt = choose_encoder("")
    calls: list[int] = []

    def counting(families: Families) -> bytes:
        calls.append(len(families.collect()))
        return encoder(families)

    exporter._refresh()
    exporter._assemble(fmt, counting)
    first = len(calls)
    assert first >= 5 * 3 + 5  # every pair and every component
    calls.clear()
    exporter._assemble(fmt, counting)
    assert calls == []  # nothing changed: all cached
    store.ingest([_run(5, "comp2", {"score": _outputs(5)["score"]})])
    exporter._refresh()
    text = exporter._assemble(fmt, counting)
    assert calls == [7, 6]  # one pair (7 families), one component (6); edges unchanged
    assert text == _full(exporter, None)
    body, _ = exporter.render(ACCEPTS[1])
    found = {f.name: f for f in parse_openmetrics(body.decode())}  # type: ignore[no-untyped-call]
    exemplars = [s.exemplar for s in found["mltrace_output_value"].samples if s.exemplar]
    assert any(e.labels["trace_id"] == f"{5 + 1:032x}" for e in exemplars)


@pytest.mark.parametrize("reference", ["run:comp0-5", "window:2"])
def test_pinned_and_window_references_stay_exact(store: Store, reference: str) -> None:
    store.ingest([_run(i, "comp0", _outputs(i, False)) for i in range(3)])
    exporter = MetricsExporter(store, drift_reference=reference)
    for accept in ACCEPTS:
        exporter.render(accept)
        assert _incremental(exporter, accept) == _full(exporter, accept)
    store.ingest([_run(5, "comp0", _outputs(5, False))])  # the pinned run arrives
    exporter.render(None)
    store.ingest([_run(7, "comp0", {"score": _outputs(9)["score"]}), _run(8, "comp1", {})])
    for accept in ACCEPTS:
        exporter.render(accept)
        text = _incremental(exporter, accept)
        assert text == _full(exporter, accept)
        assert "mltrace_output_drift{" in text
