"""``stale``'s verdict on runs, with the clock left out so that it can be cached.

:func:`facts_of` applies the rules of :class:`~mltrace_collector.index.queries.stale.StaleIndex`
— the ones ``otel-mltrace stale`` lists by — to given runs; the Prometheus gauges
(``stale_live``) apply it to every live run, as ``stale`` lists them
(tests/semantics_check.py compares both with the model), and add the clock at scrape time.

Example::

    index = StaleIndex(LineageQueries(store))
    facts = facts_of(index, ["0190c2a1-..."])
    facts["0190c2a1-..."].stale(time.time_ns(), older_than_s=86400)
"""

from __future__ import annotations

from dataclasses import dataclass

from mltrace_collector.index.queries.stale import StaleIndex, too_old


@dataclass(frozen=True)
class Staleness:
    """Whether one run is stale by ``stale``'s rules, with the clock left out so that a
    caller (the Prometheus gauge) can cache it and apply the clock later: ``newer_version``
    — the run or a run upstream of it read an input that has a newer version;
    ``oldest_made_ns`` — when the oldest input of the run and of those upstream runs was
    made; ``newest_input_ns`` — when the newest input of the run itself was made."""

    newer_version: bool
    oldest_made_ns: int | None
    newest_input_ns: int | None

    def stale(self, now_ns: int, older_than_s: float) -> bool:
        """The ``stale`` of ``stale_runs``' row for this run at ``now_ns``."""
        old = self.oldest_made_ns
        return self.newer_version or (old is not None and too_old(old, now_ns, older_than_s))


def facts_of(index: StaleIndex, run_ids: list[str]) -> dict[str, Staleness]:
    """:class:`Staleness` of ``run_ids`` on ``index`` (full or partial: the rows of the
    runs and of their upstream closures must be there) — the one implementation behind
    the per-component gauges of live runs."""
    newer: dict[str, bool] = {}
    oldest_own: dict[str, int | None] = {}
    out: dict[str, Staleness] = {}
    for run_id in run_ids:
        oldest: int | None = None
        any_newer = False
        for up in index.upstream(run_id):
            if up not in newer:
                newer[up] = any(
                    index.newer_version_reason(up, aid, uri, v) is not None
                    for aid, uri, v in index.ins[up]
                )
                made = [index.made_at(up, aid) for aid, _, _ in index.ins[up]]
                oldest_own[up] = min((m for m in made if m is not None), default=None)
            any_newer = any_newer or newer[up]
            own_oldest = oldest_own[up]
            if own_oldest is not None and (oldest is None or own_oldest < oldest):
                oldest = own_oldest
        own = [index.made_at(run_id, aid) for aid, _, _ in index.ins[run_id]]
        newest = max((m for m in own if m is not None), default=None)
        out[run_id] = Staleness(any_newer, oldest, newest)
    return out
