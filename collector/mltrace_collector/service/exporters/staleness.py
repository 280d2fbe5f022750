"""Staleness of each component's newest run, for ``mltrace_component_stale``/``_input_age``.

The rules are the direct ones of ``LineageQueries.stale`` (docs/semantics.md): the newest
run of a component is stale when an input has a newer version than the one it read, or
when an input was produced (first seen, for raw data) more than ``stale_after_s`` ago.
(Staleness inherited from upstream runs, and variants, are ``otel-mltrace stale``'s.)
The per-input lookups are split so that a scrape stays cheap: what depends on the index
(newer versions, when each input was made) is computed once per run and refreshed when
new runs were ingested, at most every ``max(MIN_INTERVAL_S, 20 x the last full pass)``;
what depends on the clock (ages) is evaluated at every scrape. Only components under the
label cap are checked (a bounded number of runs); overflowed ones export no staleness.

Example::

    cache = StaleCache(LineageQueries(store), stale_after_s=86400)
    cache.get({"train": ("0190c2a1-...", start_ns)}, watermark_ns)   # {"train": (False, 12.5)}
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.queries.stale import has_newer_version

MIN_INTERVAL_S = 1.0


@dataclass(frozen=True)
class _Inputs:
    newer_version: bool
    newest_ns: int | None
    oldest_ns: int | None


class StaleCache:
    def __init__(self, queries: LineageQueries, stale_after_s: float) -> None:
        self.queries = queries
        self.stale_after_s = stale_after_s
        self._runs: dict[str, _Inputs] = {}
        self._watermark = -1
        self._full_at = 0.0
        self._interval = MIN_INTERVAL_S

    def _inputs(self, run_id: str, start_ns: int) -> _Inputs:
        store = self.queries.store
        newer, newest, oldest = False, None, None
        for io in store.run_io(run_id):
            if io["direction"] != "in":
                continue
            aid = io["artifact_id"]
            producer = self.queries.producer_for(aid, start_ns, run_id)
            known = store.artifact(aid)
            made = producer["end_ns"] if producer else (known or {}).get("first_seen_ns")
            if made is not None:
                newest = made if newest is None else max(newest, made)
                oldest = made if oldest is None else min(oldest, made)
            if has_newer_version(store, run_id, io, producer, known):
                newer = True
        return _Inputs(newer, newest, oldest)

    def get(
        self, newest_runs: Mapping[str, tuple[str, int]], watermark_ns: int
    ) -> dict[str, tuple[bool, float | None]]:
        """``component -> (stale, age in seconds of the newest input, or None)`` for
        ``newest_runs`` (``component -> (run_id, start_ns)`` of its newest run)."""
        mono = time.monotonic()
        if watermark_ns != self._watermark and mono - self._full_at >= self._interval:
            self._runs.clear()  # new versions may have appeared: recompute every run
            self._watermark, self._full_at = watermark_ns, mono
            full = True
        else:
            full = False
        wanted = {run_id for run_id, _ in newest_runs.values()}
        self._runs = {k: v for k, v in self._runs.items() if k in wanted}
        for run_id, start_ns in newest_runs.values():
            if run_id not in self._runs:
                self._runs[run_id] = self._inputs(run_id, start_ns)
        if full:
            self._interval = max(MIN_INTERVAL_S, 20 * (time.monotonic() - mono))
        now = time.time_ns()
        out: dict[str, tuple[bool, float | None]] = {}
        for comp, (run_id, _) in newest_runs.items():
            info = self._runs[run_id]
            too_old = (
                info.oldest_ns is not None and (now - info.oldest_ns) / 1e9 > self.stale_after_s
            )
            age = None if info.newest_ns is None else (now - info.newest_ns) / 1e9
            out[comp] = (info.newer_version or too_old, age)
        return out
