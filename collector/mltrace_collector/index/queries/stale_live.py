"""``stale``'s verdict on every live run, grouped by component, for the Prometheus gauges.

``mltrace_component_stale{component}`` is 1 when ``otel-mltrace stale`` would list at least
one live run of the component as stale, and ``mltrace_component_stale_runs{component}``
counts those runs. Both come from here: the index is read as ``stale`` reads it
(:class:`~mltrace_collector.index.queries.stale.StaleIndex`: the same live runs, the same
rules, inherited staleness included), and each live run's verdict is kept as
:class:`~mltrace_collector.index.queries.stale_partial.Staleness` — without the clock — so
that a caller can cache it and apply the age threshold at every scrape.

Example::

    facts = live_staleness(LineageQueries(store), components={"train"})
    facts.stale_runs("train", time.time_ns(), older_than_s=86400)   # 1
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mltrace_collector.index.queries.stale import StaleIndex, too_old
from mltrace_collector.index.queries.stale_partial import Staleness, facts_of

if TYPE_CHECKING:
    from mltrace_collector.index.queries.query_host import QueryHost


@dataclass(frozen=True)
class LiveStaleness:
    """``live``: component -> run ID -> :class:`Staleness` of its live runs (a component
    whose runs are all superseded maps to ``{}``); ``newest_input_ns``: component -> when
    the newest input of its newest run (largest start, live or not) was made."""

    live: dict[str, dict[str, Staleness]]
    newest_input_ns: dict[str, int | None]
    _newer: dict[str, int] = field(init=False, repr=False, compare=False)
    _oldest: dict[str, list[int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # per component: runs stale whatever the clock, and the sorted oldest-input times
        # of the others — a scrape then counts with a binary search, not a loop over runs
        newer: dict[str, int] = {}
        oldest: dict[str, list[int]] = {}
        for comp, runs in self.live.items():
            newer[comp] = sum(1 for f in runs.values() if f.newer_version)
            oldest[comp] = sorted(
                f.oldest_made_ns
                for f in runs.values()
                if not f.newer_version and f.oldest_made_ns is not None
            )
        object.__setattr__(self, "_newer", newer)
        object.__setattr__(self, "_oldest", oldest)

    def stale_runs(self, component: str, now_ns: int, older_than_s: float) -> int:
        """How many live runs of ``component`` are stale at ``now_ns`` (as
        :meth:`Staleness.stale` of each would say)."""
        times = self._oldest.get(component, [])
        lo, hi = 0, len(times)  # too_old holds for a prefix of the sorted times
        while lo < hi:
            mid = (lo + hi) // 2
            if too_old(times[mid], now_ns, older_than_s):
                lo = mid + 1
            else:
                hi = mid
        return self._newer.get(component, 0) + lo


def live_staleness(q: QueryHost, components: Container[str] | None = None) -> LiveStaleness:
    """:class:`LiveStaleness` of every component (or of ``components`` only: the others'
    upstream closures are not walked)."""
    index = StaleIndex(q)
    wanted = [
        r for r, row in index.runs.items() if components is None or row["component"] in components
    ]
    live = [r for r in wanted if index.live(r)]
    newest = [r for r in wanted if r in index.component_newest]
    index.prefetch_upstream(sorted(set(live) | set(newest)))
    facts = facts_of(index, live)
    out: dict[str, dict[str, Staleness]] = {index.runs[r]["component"]: {} for r in wanted}
    for run_id, staleness in facts.items():
        out[index.runs[run_id]["component"]][run_id] = staleness
    newest_input: dict[str, int | None] = {}
    for run_id in newest:
        made = [index.made_at(run_id, aid) for aid, _, _ in index.ins[run_id]]
        newest_input[index.runs[run_id]["component"]] = max(
            (m for m in made if m is not None), default=None
        )
    return LiveStaleness(out, newest_input)
