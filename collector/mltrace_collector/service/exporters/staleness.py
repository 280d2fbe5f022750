"""Staleness of each component's newest run, for ``mltrace_component_stale``/``_input_age``.

The gauge asks :func:`mltrace_collector.index.queries.stale_partial.staleness_of`, the rules of
``otel-mltrace stale`` (docs/semantics.md) on the rows of the runs concerned: the newest
run of a component is stale when it or any run upstream of it read an input that has a
newer version, or an input made (first seen, for raw data) more than ``stale_after_s``
ago. It is the component's newest run (largest start), live or not; ``stale`` lists the
live runs, every variant included. What depends on the index is computed once per run
and refreshed when new runs were ingested, at most every ``max(MIN_INTERVAL_S, 20 x the
last full pass)`` (a pass reads the newest runs' upstream closures); what depends on the
clock (ages) is evaluated at every scrape. Only components under the label cap are
checked; overflowed ones export no staleness.

Example::

    cache = StaleCache(LineageQueries(store), stale_after_s=86400)
    cache.get({"train": ("0190c2a1-...", start_ns)}, watermark_ns)   # {"train": (False, 12.5)}
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.queries.stale_partial import Staleness, staleness_of

MIN_INTERVAL_S = 1.0
_UNKNOWN = Staleness(False, None, None)  # a run the index does not hold (yet)


class StaleCache:
    def __init__(self, queries: LineageQueries, stale_after_s: float) -> None:
        self.queries = queries
        self.stale_after_s = stale_after_s
        self._runs: dict[str, Staleness] = {}
        self._watermark = -1
        self._full_at = 0.0
        self._interval = MIN_INTERVAL_S

    def get(
        self,
        newest_runs: Mapping[str, tuple[str, int]],
        watermark_ns: int,
        now_ns: int | None = None,
    ) -> dict[str, tuple[bool, float | None]]:
        """``component -> (stale, age in seconds of the newest input, or None)`` for
        ``newest_runs`` (``component -> (run_id, start_ns)`` of its newest run), at
        ``now_ns`` (default: the clock)."""
        mono = time.monotonic()
        if watermark_ns != self._watermark and mono - self._full_at >= self._interval:
            self._runs.clear()  # new versions may have appeared: recompute every run
            self._watermark, self._full_at = watermark_ns, mono
            full = True
        else:
            full = False
        wanted = {run_id for run_id, _ in newest_runs.values()}
        self._runs = {k: v for k, v in self._runs.items() if k in wanted}
        missing = sorted(wanted - self._runs.keys())
        if missing:
            found = staleness_of(self.queries, missing)
            self._runs.update({r: found.get(r, _UNKNOWN) for r in missing})
        if full:
            self._interval = max(MIN_INTERVAL_S, 20 * (time.monotonic() - mono))
        now = time.time_ns() if now_ns is None else now_ns
        out: dict[str, tuple[bool, float | None]] = {}
        for comp, (run_id, _) in newest_runs.items():
            info = self._runs[run_id]
            age = None if info.newest_input_ns is None else (now - info.newest_input_ns) / 1e9
            out[comp] = (info.stale(now, self.stale_after_s), age)
        return out
