"""Per-component staleness for ``mltrace_component_stale``, ``_stale_runs`` and ``_input_age``.

The gauges say what ``otel-mltrace stale`` says: ``mltrace_component_stale{component}`` is 1
when at least one *live* run of the component is stale (every variant, inherited staleness
included) and ``mltrace_component_stale_runs{component}`` counts them — computed by
:func:`mltrace_collector.index.queries.stale_live.live_staleness`, ``stale``'s own index and
rules. ``mltrace_component_input_age_seconds`` is the age of the newest input of the
component's newest run (largest start). Only components under the label cap are exported.

What depends on the index is recomputed when new runs were ingested, at most every
``max(MIN_INTERVAL_S, 20 x the last pass)`` — a pass reads the whole index, as ``stale``
does — and, in the collector, in a background thread: a scrape never waits for a pass (only
``WAIT_S``, or the first pass, which has nothing to show yet) and serves the last
finished pass's facts, so the gauges lag new ingests by up to that interval. What depends
on the clock (ages, the age threshold) is evaluated at every scrape.

Example::

    cache = StaleCache(LineageQueries(store), stale_after_s=86400)
    cache.get({"train"}, watermark_ns)   # {"train": ComponentStaleness(True, 1, 12.5)}
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass

from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.queries.stale_live import LiveStaleness, live_staleness

MIN_INTERVAL_S = 1.0
WAIT_S = 0.1
"""How long a scrape waits for the pass it started (a small index: fresh at once)."""
log = logging.getLogger("mltrace_collector.metrics")


@dataclass(frozen=True)
class ComponentStaleness:
    """One component's gauges: ``stale`` (any live run stale), ``stale_runs`` (how many),
    ``input_age_s`` (newest input of its newest run, seconds; None without inputs)."""

    stale: bool
    stale_runs: int
    input_age_s: float | None


class StaleCache:
    """Caches :func:`live_staleness` between ingests; ``background=True`` (the exporter)
    recomputes in a thread of its own after the first pass."""

    def __init__(
        self, queries: LineageQueries, stale_after_s: float, *, background: bool = False
    ) -> None:
        self.queries = queries
        self.stale_after_s = stale_after_s
        self.background = background
        self._facts: LiveStaleness | None = None
        self._key: tuple[int, frozenset[str]] | None = None
        self._full_at = 0.0
        self._interval = MIN_INTERVAL_S
        self._lock = threading.Lock()
        # one long-lived worker: a store keeps a read connection per thread it has seen
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._wanted: frozenset[str] = frozenset()
        self._stopping = False

    def get(
        self, components: Collection[str], watermark_ns: int, now_ns: int | None = None
    ) -> dict[str, ComponentStaleness]:
        """:class:`ComponentStaleness` of each of ``components`` the last pass saw, at
        ``now_ns`` (default: the clock); ``watermark_ns`` changes when runs were ingested."""
        key = (watermark_ns, frozenset(components))
        with self._lock:
            due = key != self._key and time.monotonic() - self._full_at >= self._interval
            busy = not self._idle.is_set()
            if due and not busy:
                self._key, self._full_at = key, time.monotonic()
            first = self._facts is None
        if due and not busy:
            if first or not self.background:
                self._pass(key[1])
            else:
                self._in_background(key[1])
        facts = self._facts
        if facts is None:
            return {}
        now = time.time_ns() if now_ns is None else now_ns
        out: dict[str, ComponentStaleness] = {}
        for comp in components:
            if comp not in facts.live:
                continue  # not in the index when the last pass read it
            count = facts.stale_runs(comp, now, self.stale_after_s)
            newest = facts.newest_input_ns.get(comp)
            age = None if newest is None else (now - newest) / 1e9
            out[comp] = ComponentStaleness(count > 0, count, age)
        return out

    def _pass(self, components: frozenset[str]) -> None:
        start = time.monotonic()
        try:
            facts = live_staleness(self.queries, components)
        except Exception:  # store down or a bug: keep the last answer, retry later
            log.exception("metrics: computing staleness failed; the last answer is kept")
            with self._lock:
                self._key = None
            return
        with self._lock:
            self._facts = facts
            self._interval = max(MIN_INTERVAL_S, 20 * (time.monotonic() - start))

    def _in_background(self, components: frozenset[str]) -> None:
        self._wanted = components
        self._idle.clear()
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._loop, name="mltrace-stale-gauge", daemon=True
            )
            self._worker.start()
        self._wake.set()
        self._idle.wait(WAIT_S)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._pass(self._wanted)
            finally:
                self._idle.set()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the worker, waiting (bounded) for a pass in progress, before the store is
        closed."""
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout_s)
