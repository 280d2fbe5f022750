"""Cached staleness of every component's newest run, for ``mltrace_component_stale``.

``LineageQueries.stale`` (the same answer as ``otel-mltrace stale``) costs a few queries
per input of each component's newest run, so it is recomputed only when new runs were
ingested or when the cached answer is older than its time-to-live: ``MIN_TTL_S``, or ten
times the last computation for a large index (staleness by age has day-scale
thresholds; a minute of lag does not matter). Input ages are advanced by the time elapsed
since the computation.

Example::

    cache = StaleCache(LineageQueries(store), stale_after_s=86400)
    for component, (stale, age_s) in cache.get(watermark_ns).items(): ...
"""

from __future__ import annotations

import time

from mltrace_collector.queries import LineageQueries

MIN_TTL_S = 15.0


class StaleCache:
    def __init__(self, queries: LineageQueries, stale_after_s: float) -> None:
        self.queries = queries
        self.stale_after_s = stale_after_s
        self._at = 0.0
        self._ttl = MIN_TTL_S
        self._watermark = -1
        self._rows: dict[str, tuple[bool, float | None]] = {}

    def get(self, watermark_ns: int) -> dict[str, tuple[bool, float | None]]:
        """``component -> (stale, age of the newest input in seconds or None)``."""
        now = time.monotonic()
        if watermark_ns != self._watermark or now - self._at > self._ttl:
            rows = self.queries.stale(self.stale_after_s)
            took = time.monotonic() - now
            self._rows = {r["component"]: (bool(r["stale"]), r["newest_input_age_s"]) for r in rows}
            self._at, self._watermark = now, watermark_ns
            self._ttl = max(MIN_TTL_S, 10 * took)
        elapsed = now - self._at
        return {
            comp: (stale, None if age is None else age + elapsed)
            for comp, (stale, age) in self._rows.items()
        }
