"""``mltrace_lineage_edge`` follows the stitching order (docs/semantics.md, "Stitching").

A component edge ``source -> target`` means a run of ``target`` read what a run of
``source`` wrote *before* it, by the rule ``trace`` uses: the writer comes before the reader
in (start, run ID). The edge index used to count every writer of a versioned ID, however
late, and every writer of a URI that ended by the reader's start, even a zero-length one at
that instant with a larger run ID. On the two-run cases where stitching goes one way only
(same instant, clock skew), Prometheus showed edges both ways — a cycle in the Grafana node
graph — while ``trace`` showed one. Real pipeline, real SQLite and PostgreSQL, the
exporter's own text output.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mltrace_collector.index.store import open_store
from mltrace_collector.service.exporters.prometheus import MetricsExporter
from tests.test_stitching_acyclic import CASES, FIRST, cli, database, ingest, otlp, producers

__all__ = ["database"]  # fixture


def edges(target: str) -> set[tuple[str, str]]:
    store = open_store(target)
    exporter = MetricsExporter(store)
    try:
        text = exporter.render(None)[0].decode()
    finally:
        exporter.close()
        store.close()
    return {
        (s.labels["source"], s.labels["target"])
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "mltrace_lineage_edge" and s.value == 1
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_edges_go_the_way_trace_stitches(database: str, case: str) -> None:
    runs = CASES[case]
    ingest(database, otlp(runs))
    first = FIRST[case]
    (second,) = set(runs) - {first}
    assert producers(cli(database, "trace", second)) == {second: {first}, first: set()}
    assert edges(database) == {(f"step_{first}", f"step_{second}")}
