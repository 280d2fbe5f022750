"""Component -> component lineage edges for ``mltrace_lineage_edge``, found incrementally.

An edge ``source -> target`` exists when a run of ``target`` read an artifact that a run of
``source`` wrote: the exact artifact ID for versioned inputs, or the same URI written
before the reader started for unversioned ones — the writer always coming before the reader
in (start, run ID), as in stitching (docs/semantics.md), so that the edges form no cycle
the lineage does not have; at component level every such writer counts, not only the one
an input stitches to. A component reading its own earlier output is not an edge. Edges
only ever appear (runs are never deleted), so each refresh joins only the newly ingested
runs, once as readers and once as writers (a producer may arrive after its consumer).

Example::

    edges = EdgeIndex(store, LabelGuard(200))
    edges.add_runs(["0190c2a1-..."])
    edges.edges            # {("featurize", "train"), ...}
"""

from __future__ import annotations

from collections.abc import Sequence

from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.stitch_order import WRITER_BEFORE_READER, byte_order
from otel_mltrace.metricdefs import LabelGuard

CHUNK = 500

_SELECT = "SELECT DISTINCT p.component AS source, c.component AS target FROM runs c "
_EXACT = (
    "JOIN run_io i ON i.run_id = c.run_id AND i.direction = 'in' AND i.versioned = 1 "
    "JOIN run_io o ON o.artifact_id = i.artifact_id AND o.direction = 'out' "
    "JOIN runs p ON p.run_id = o.run_id WHERE p.component <> c.component AND {before} AND "
)
_BY_URI = (
    "JOIN run_io i ON i.run_id = c.run_id AND i.direction = 'in' AND i.versioned = 0 "
    "JOIN run_io o ON o.uri = i.uri AND o.direction = 'out' "
    "JOIN runs p ON p.run_id = o.run_id WHERE p.component <> c.component "
    "AND p.end_ns <= c.start_ns AND {before} AND "
)


class EdgeIndex:
    """The set of component edges seen so far (label values already capped)."""

    def __init__(self, store: Store, guard: LabelGuard) -> None:
        self.store = store
        self.guard = guard
        self.edges: set[tuple[str, str]] = set()
        before = WRITER_BEFORE_READER.format(p="p", r="c", c=byte_order(store.backend))
        self._exact = _EXACT.format(before=before)
        self._by_uri = _BY_URI.format(before=before)

    def add_runs(self, run_ids: Sequence[str]) -> None:
        """Add every edge in which one of ``run_ids`` is the reader or the writer."""
        for i in range(0, len(run_ids), CHUNK):
            part = list(run_ids[i : i + CHUNK])
            marks = ", ".join("?" * len(part))
            for join in (self._exact, self._by_uri):
                for side in ("c", "p"):
                    sql = f"{_SELECT}{join}{side}.run_id IN ({marks})"
                    for row in self.store.query(sql, part):
                        self.edges.add(
                            (
                                self.guard("component", row["source"]),
                                self.guard("component", row["target"]),
                            )
                        )
