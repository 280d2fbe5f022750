"""The forwarder's producer cache picks the producer ``trace`` picks, also on a tie.

Two runs wrote the same versioned ID and ended at the same nanosecond: the index (``trace``,
``inspect``) takes the larger run ID (newest end, then run ID). The cache kept whichever it
saw last, so a consumer's span link in Jaeger pointed at the other run whenever the batches
came in the other order. Real pipeline and index on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import open_store
from mltrace_collector.service.exporters.forward_links import ProducerCache
from tests.test_stitching_acyclic import S, T, cli, database, ingest, otlp, stored_record

__all__ = ["database"]  # fixture

RUNS = {
    "w-1": (T, T + S, [], ["s3://x@v:1"]),
    "w-2": (T, T + S, [], ["s3://x@v:1"]),
    "reader": (T + 2 * S, T + 3 * S, ["s3://x@v:1"], []),
}


@pytest.mark.parametrize("order", [("w-1", "w-2"), ("w-2", "w-1")])
def test_cache_breaks_end_ties_like_the_index(database: str, order: tuple[str, str]) -> None:
    ingest(database, otlp(RUNS))
    (read,) = cli(database, "inspect", "reader")["inputs"]
    assert read["producer_run_id"] == "w-2"  # newest end, then the larger run ID
    store = open_store(database)
    try:
        rows = {run_id: store.get_run(run_id) for run_id in RUNS}
        seen = [
            stored_record(row, (), RUNS[run_id][3])
            for run_id in order
            if (row := rows[run_id]) is not None
        ]
        cache = ProducerCache(LineageQueries(store).producer_for)
        cache.remember(seen)
        found = cache.lookup("s3://x@v:1", T + 2 * S, "reader")
    finally:
        store.close()
    assert found is not None and found["run_id"] == "w-2"
