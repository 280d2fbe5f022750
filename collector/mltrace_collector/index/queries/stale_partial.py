"""``stale``'s verdict on a few runs, reading only the rows that concern them.

:func:`staleness_of` answers for a few runs (live or not): :class:`PartialStaleIndex`
fills the tables of :class:`~mltrace_collector.index.queries.stale.StaleIndex` — runs and
inputs of the runs' upstream closure, the latest writer of each URI they read, the newest
raw version, first-seen times — with indexed queries, and the rules are ``StaleIndex``'s
own, so it and ``otel-mltrace stale`` cannot disagree. :func:`facts_of` is the verdict
itself, on a full index too: the Prometheus gauges (``stale_live``) apply it to every live
run, as ``stale`` lists them (tests/semantics_check.py compares both with the model).

Example::

    facts = staleness_of(LineageQueries(store), ["0190c2a1-..."])
    facts["0190c2a1-..."].stale(time.time_ns(), older_than_s=86400)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mltrace_collector.index.queries.stale import StaleIndex, too_old
from mltrace_collector.index.store.cursor import Row
from mltrace_collector.index.store.graph_reads import MAX_PARAMS, run_summaries

if TYPE_CHECKING:
    from mltrace_collector.index.queries.query_host import QueryHost

_LATEST_WRITE = (
    "SELECT io.run_id, io.artifact_id, r.end_ns FROM run_io io "
    "JOIN runs r ON r.run_id = io.run_id WHERE io.uri = ? AND io.direction = 'out' "
    "AND r.end_ns = (SELECT MAX(p.end_ns) FROM run_io o JOIN runs p ON p.run_id = o.run_id "
    "WHERE o.uri = ? AND o.direction = 'out')"
)
_RAW_NEWEST = (
    "SELECT artifact_id, first_seen_ns FROM artifacts WHERE uri = ? AND version IS NOT NULL "
    "AND first_seen_ns = (SELECT MAX(first_seen_ns) FROM artifacts "
    "WHERE uri = ? AND version IS NOT NULL)"
)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), MAX_PARAMS):
        yield items[start : start + MAX_PARAMS]


class PartialStaleIndex(StaleIndex):
    """:class:`StaleIndex`'s tables, for ``run_ids`` and every run upstream of them only.
    Ties are broken in Python as ``StaleIndex`` does (SQL collations differ by backend)."""

    def __init__(self, q: QueryHost, run_ids: Iterable[str]) -> None:  # no full load
        self.store = store = q.store
        self.runs, self.ins, self.outs = {}, {}, {}
        self.first_seen, self.raw_newest, self.latest_write = {}, {}, {}
        self.producer = {}
        self.component_newest = set()
        level = self._load_runs(set(run_ids))
        while level:
            self.prefetch(level)
            ups = {p["run_id"] for r in level for p in self._producers(r) if p is not None}
            level = self._load_runs(ups - self.runs.keys())
        uris = {uri for ins in self.ins.values() for _, uri, _ in ins}
        for uri in sorted(uris):
            rows = store.query(_LATEST_WRITE, (uri, uri))
            if rows:
                best = max((int(r["end_ns"]), r["run_id"], r["artifact_id"]) for r in rows)
                self.latest_write[uri] = best
        for uri in sorted(uris - self.latest_write.keys()):
            rows = store.query(_RAW_NEWEST, (uri, uri))
            if rows:
                self.raw_newest[uri] = max(
                    (int(r["first_seen_ns"]), r["artifact_id"]) for r in rows
                )
        aids = sorted({aid for ins in self.ins.values() for aid, _, _ in ins})
        for chunk in _chunks(aids):
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT artifact_id, first_seen_ns FROM artifacts WHERE artifact_id IN ({marks})"  # noqa: S608 - placeholders only
            for row in store.query(sql, chunk):
                self.first_seen[row["artifact_id"]] = int(row["first_seen_ns"])
        writers = {w for _, w, _ in self.latest_write.values()} - self.runs.keys()
        self.runs.update(run_summaries(store, writers))  # their component, for reasons

    def _producers(self, run_id: str) -> list[Row | None]:
        start = self.runs[run_id]["start_ns"]
        return [self.producer.get((aid, start, run_id)) for aid, _, _ in self.ins[run_id]]

    def _load_runs(self, run_ids: set[str]) -> list[str]:
        """Rows and inputs of ``run_ids`` (those that exist); returns their IDs."""
        found = run_summaries(self.store, run_ids)
        self.runs.update(found)
        ids = sorted(found)
        for run_id in ids:
            self.ins[run_id], self.outs[run_id] = [], []
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            rows = self.store.query(
                "SELECT run_id, artifact_id, uri, versioned FROM run_io "  # noqa: S608
                f"WHERE run_id IN ({marks}) AND direction = 'in' ORDER BY run_id, artifact_id",
                chunk,
            )
            for row in rows:
                self.ins[row["run_id"]].append(
                    (row["artifact_id"], row["uri"], bool(row["versioned"]))
                )
        return ids


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


def staleness_of(q: QueryHost, run_ids: list[str]) -> dict[str, Staleness]:
    """:class:`Staleness` of each of ``run_ids`` that is in the index (live or not), by the
    rules of :func:`~mltrace_collector.index.queries.stale.stale_runs`: a run is stale iff it
    or a run upstream of it is directly stale, and the age rule holds for some input in
    there iff it holds for the oldest."""
    index = PartialStaleIndex(q, run_ids)
    return facts_of(index, [r for r in run_ids if r in index.ins])


def facts_of(index: StaleIndex, run_ids: list[str]) -> dict[str, Staleness]:
    """:class:`Staleness` of ``run_ids`` on ``index`` (full or partial: the rows of the
    runs and of their upstream closures must be there) — the one implementation behind
    :func:`staleness_of` and the per-component gauges of live runs."""
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
