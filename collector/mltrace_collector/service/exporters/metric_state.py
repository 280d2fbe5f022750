"""Incremental aggregates behind ``/metrics``: what the store holds, folded in once.

Each refresh reads only the runs ingested since the previous one (``runs.ingested_ns``
watermark, re-reading a ``REINGEST_LAG_NS`` window de-duplicated by run ID, because a
transaction that started earlier may commit later) and folds them into per-component and
per-(component, output) state: cumulative histograms with stable bounds, the latest run's
summary, the reference runs of the drift measure, lineage edges. A render then only
formats that state. Label values pass the :class:`~otel_mltrace.metricdefs.LabelGuard` at
fold time, so state and series stay bounded whatever the store holds.

Example::

    agg = StoreAggregates(store, guard=LabelGuard(200), reference=parse_reference("first:5"))
    agg.refresh()                  # cheap when nothing new was ingested
    agg.outputs[("train", "loss")].hist.cumulative()
"""

from __future__ import annotations

import json
import logging
import time
from bisect import insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.cursor import Row
from mltrace_collector.service.exporters.edges import EdgeIndex
from mltrace_collector.service.exporters.series import (
    Hist,
    Latest,
    RunInfo,
    decode_summary,
    latest_gauges,
)
from otel_mltrace.distributions import OutputSummary
from otel_mltrace.drift import compare
from otel_mltrace.metricdefs import (
    DURATION_BOUNDS,
    OTHER,
    LabelGuard,
    configured_bounds,
    derive_bounds,
)

log = logging.getLogger("mltrace_collector.metrics")

REINGEST_LAG_NS = 60 * 10**9
"""Runs ingested up to this long before the watermark are re-read (and de-duplicated)."""
CHUNK = 500
"""Run IDs per ``IN (...)`` lookup."""


@dataclass(frozen=True)
class Reference:
    """Drift reference (``MLTRACE_DRIFT_REFERENCE``): ``first:N``, ``run:<id>`` or ``window:N``."""

    mode: str
    n: int = 0
    run_id: str = ""


def parse_reference(text: str) -> Reference:
    """>>> parse_reference("window:10")
    Reference(mode='window', n=10, run_id='')
    """
    mode, _, arg = text.strip().partition(":")
    if mode == "run" and arg:
        return Reference("run", 0, arg)
    if mode in ("first", "window") and arg.isdigit() and int(arg) >= 1:
        return Reference(mode, int(arg))
    raise ValueError(
        f"MLTRACE_DRIFT_REFERENCE={text!r} is invalid: use first:N (merged first N runs), "
        "run:<run id> (one pinned run) or window:N (the N runs before the latest), N >= 1"
    )


Ranked = tuple[int, str, OutputSummary]  # (start_ns, run_id, summary)


@dataclass
class OutputState:
    component: str
    output: str
    hist: Hist | None = None
    earliest: list[Ranked] = field(default_factory=list)
    recent: list[Ranked] = field(default_factory=list)
    latest: Latest | None = None
    latest_run: str = ""
    drift: dict[str, float | None] = field(default_factory=dict)
    drift_key: tuple[str, ...] = ()
    version: int = 0
    """Bumped whenever a fold changed this state (the exporter re-encodes only those)."""
    ref_ids: tuple[str, ...] | None = None
    ref: OutputSummary | None = None
    """The merged drift reference of ``ref_ids`` (kept: it rarely changes, a merge is not free)."""

    def keep(self, item: Ranked, n: int) -> bool:
        """Track the ``n + 1`` earliest and latest runs; True if the latest run changed."""
        before = self.recent[-1][1] if self.recent else ""
        insort(self.earliest, item, key=lambda r: (r[0], r[1]))
        del self.earliest[n + 1 :]
        insort(self.recent, item, key=lambda r: (r[0], r[1]))
        del self.recent[: max(0, len(self.recent) - (n + 1))]
        return self.recent[-1][1] != before


@dataclass
class ComponentState:
    runs: dict[str, int] = field(default_factory=dict)
    duration: Hist = field(default_factory=lambda: Hist(list(DURATION_BOUNDS)))
    last_start_ns: int = -1
    last_run_id: str = ""
    n_inputs: int = 0
    n_outputs: int = 0
    last_success_ns: int | None = None
    version: int = 0
    """Bumped whenever a fold changed this state (the exporter re-encodes only those)."""


def _merged(items: Iterable[OutputSummary]) -> OutputSummary | None:
    out: OutputSummary | None = None
    for s in items:
        out = s if out is None else out.merge(s)
    return out


class StoreAggregates:
    """Folded state of the store (see module doc). Not thread-safe: callers serialize."""

    def __init__(
        self,
        store: Store,
        *,
        guard: LabelGuard,
        reference: Reference,
        bucket_spec: Sequence[tuple[str, list[float]]] = (),
    ) -> None:
        self.store = store
        self.guard = guard
        self.reference = reference
        self.bucket_spec = list(bucket_spec)
        self.components: dict[str, ComponentState] = {}
        self.outputs: dict[tuple[str, str], OutputState] = {}
        self.edges = EdgeIndex(store, guard)
        self.watermark_ns = 0
        self._seen: dict[str, int] = {}
        self._stored_bounds: dict[tuple[str, str], list[float]] | None = None
        self._pinned: dict[str, OutputSummary] | None = None
        self._pinned_component = ""

    @property
    def keep_n(self) -> int:
        return max(1, self.reference.n)

    @property
    def reference_epoch(self) -> int:
        """Changes when drift may change without a fold: a pinned reference run arrived."""
        return 1 if self._pinned else 0

    # -- folding -------------------------------------------------------------------------
    def refresh(self) -> int:
        """Fold in runs ingested since the last refresh; returns how many were new."""
        since = max(0, self.watermark_ns - REINGEST_LAG_NS)
        rows = self.store.query(
            "SELECT run_id, component, status, start_ns, end_ns, trace_id, span_id, n_inputs, "
            "n_outputs, ingested_ns FROM runs WHERE ingested_ns > ? ORDER BY ingested_ns, run_id",
            (since,),
        )
        new: list[RunInfo] = []
        for row in rows:
            ingested = int(row.pop("ingested_ns"))
            self.watermark_ns = max(self.watermark_ns, ingested)
            if row["run_id"] in self._seen:
                continue
            self._seen[row["run_id"]] = ingested
            new.append(RunInfo(**row))
        floor = self.watermark_ns - REINGEST_LAG_NS
        self._seen = {k: v for k, v in self._seen.items() if v > floor}
        if not new:
            return 0
        for run in new:
            self._fold_run(run)
        self._fold_outputs(new)
        self.edges.add_runs([r.run_id for r in new])
        return len(new)

    def _fold_run(self, run: RunInfo) -> None:
        comp = self.guard("component", run.component)
        state = self.components.setdefault(comp, ComponentState())
        state.version += 1
        state.runs[run.status] = state.runs.get(run.status, 0) + 1
        state.duration.add_value(max(0, run.end_ns - run.start_ns) / 1e9)
        if run.start_ns > state.last_start_ns:
            state.last_start_ns, state.last_run_id = run.start_ns, run.run_id
            state.n_inputs, state.n_outputs = run.n_inputs, run.n_outputs
        if run.status != "error":
            state.last_success_ns = max(state.last_success_ns or 0, run.end_ns)

    def _fold_outputs(self, new: list[RunInfo]) -> None:
        by_id = {r.run_id: r for r in new}
        ids = list(by_id)
        batch: dict[tuple[str, str], list[tuple[RunInfo, OutputSummary]]] = {}
        for i in range(0, len(ids), CHUNK):
            part = ids[i : i + CHUNK]
            marks = ", ".join("?" * len(part))
            sql = f"SELECT run_id, name, summary FROM run_outputs WHERE run_id IN ({marks})"  # noqa: S608
            rows = self.store.query(sql, part)
            for row in rows:
                summary = self._decode(row)
                if summary is None:
                    continue
                run = by_id[row["run_id"]]
                key = (self.guard("component", run.component), self.guard("output", row["name"]))
                batch.setdefault(key, []).append((run, summary))
        for items in batch.values():
            items.sort(key=lambda rs: (rs[0].start_ns, rs[0].run_id))
        self._store_new_bounds(batch)
        for key, items in batch.items():
            self._fold_pair(key, items)

    def _decode(self, row: Row) -> OutputSummary | None:
        try:
            return decode_summary(json.loads(row["summary"]))
        except Exception as exc:  # one bad row must never fail a scrape
            log.warning(
                "metrics: skipping output %r of run %s: unreadable summary (%s)",
                row.get("name"),
                row.get("run_id"),
                exc,
            )
            return None

    def _fold_pair(self, key: tuple[str, str], items: list[tuple[RunInfo, OutputSummary]]) -> None:
        state = self.outputs.get(key)
        if state is None:
            state = self.outputs[key] = OutputState(*key)
        state.version += 1
        if state.hist is None:
            bounds = self._bounds(key, [s for _, s in items])
            if bounds is not None:
                state.hist = Hist(bounds)
        changed = False
        for run, summary in items:
            if state.hist is not None and summary.sketch is not None:
                state.hist.add_summary(summary, run)
            changed = state.keep((run.start_ns, run.run_id, summary), self.keep_n) or changed
        if changed:
            newest = state.recent[-1]
            state.latest = latest_gauges(newest[2], self.guard)
            state.latest_run = newest[1]

    # -- histogram bounds ---------------------------------------------------------------
    def _stored(self) -> dict[tuple[str, str], list[float]]:
        if self._stored_bounds is None:
            rows = self.store.query("SELECT component, output, bounds FROM metric_histogram_bounds")
            self._stored_bounds = {
                (r["component"], r["output"]): json.loads(r["bounds"]) for r in rows
            }
        return self._stored_bounds

    def _store_new_bounds(
        self, batch: dict[tuple[str, str], list[tuple[RunInfo, OutputSummary]]]
    ) -> None:
        """Derive the bounds of every pair getting its first numeric values in this batch
        and store them in one transaction (a cold fold meets every pair at once); the
        rows are then read back, as another replica may have stored some first."""
        stored, rows, now = self._stored(), [], time.time_ns()
        for key, items in batch.items():
            state = self.outputs.get(key)
            if (state is not None and state.hist is not None) or key in stored or OTHER in key:
                continue
            if configured_bounds(self.bucket_spec, *key) is not None:
                continue
            bounds = self._derived([s for _, s in items])
            if bounds is not None:
                rows.append((*key, json.dumps(bounds), "reference", now))
        if rows:
            self.store.write_many(
                "INSERT INTO metric_histogram_bounds (component, output, bounds, source, "
                "created_ns) VALUES (?, ?, ?, ?, ?) ON CONFLICT (component, output) DO NOTHING",
                rows,
            )
            self._stored_bounds = None

    def _derived(self, summaries: list[OutputSummary]) -> list[float] | None:
        data = [s for s in summaries if s.sketch is not None and s.count > 0][: self.keep_n]
        ref = _merged(data)
        return None if ref is None else derive_bounds(ref)

    def _bounds(self, key: tuple[str, str], summaries: list[OutputSummary]) -> list[float] | None:
        """Configured, else stored, else derived from these (first) runs and stored."""
        comp, out = key
        configured = configured_bounds(self.bucket_spec, comp, out)
        if configured is not None:
            return configured
        stored = self._stored().get(key)
        if stored is not None:
            return stored
        bounds = self._derived(summaries)
        if bounds is None:
            return None  # no numeric values yet: decide when some arrive
        if OTHER in key:
            return bounds  # a mix of overflowed outputs: not worth persisting
        self.store.write_many(
            "INSERT INTO metric_histogram_bounds (component, output, bounds, source, created_ns) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (component, output) DO NOTHING",
            [(comp, out, json.dumps(bounds), "reference", time.time_ns())],
        )
        rows = self.store.query(
            "SELECT bounds FROM metric_histogram_bounds WHERE component = ? AND output = ?",
            (comp, out),
        )  # another replica may have won the insert: everyone uses the stored row
        bounds = json.loads(rows[0]["bounds"]) if rows else bounds
        self._stored()[key] = bounds
        return bounds

    # -- drift --------------------------------------------------------------------------
    def _reference_for(
        self, state: OutputState
    ) -> tuple[tuple[str, ...], Callable[[], OutputSummary | None]]:
        """IDs of the reference runs, and how to build their merged summary."""
        ref = self.reference
        latest = state.recent[-1][1]
        if ref.mode == "run":
            pinned = self._pinned_outputs()
            if state.component != self._pinned_component or state.output not in pinned:
                return (), lambda: None
            return (ref.run_id,), lambda: pinned[state.output]
        others = [r for r in (state.earliest if ref.mode == "first" else state.recent)]
        others = [r for r in others if r[1] != latest]
        chosen = others[-ref.n :] if ref.mode == "window" else others[: ref.n]
        return tuple(r[1] for r in chosen), lambda: _merged(r[2] for r in chosen)

    def _pinned_outputs(self) -> dict[str, OutputSummary]:
        if self._pinned is None:
            run = self.store.get_run(self.reference.run_id)
            if run is None:
                return {}  # not ingested (yet): asked again at the next scrape
            self._pinned_component = self.guard("component", run["component"])
            self._pinned = {}
            for row in self.store.run_outputs(run["run_id"]):
                summary = self._decode({**row, "summary": json.dumps(row["summary"])})
                if summary is not None:
                    self._pinned[self.guard("output", row["name"])] = summary
        return self._pinned

    def drift(self, state: OutputState) -> dict[str, float | None]:
        """``{"psi", "js", "ks"}`` of the latest run vs the reference; {} without one."""
        if not state.recent or OTHER in (state.component, state.output):
            return {}
        ids, chosen = self._reference_for(state)
        key = (state.latest_run, *ids)
        if key != state.drift_key:
            state.drift_key = key
            state.drift = {}
            if ids != state.ref_ids:  # merged only when the reference runs changed
                state.ref_ids, state.ref = ids, chosen()
            ref = state.ref
            if ref is not None:
                try:
                    state.drift = compare(ref, state.recent[-1][2])
                except ValueError as exc:  # e.g. the output changed kind
                    log.warning("metrics: no drift for %s/%s: %s", *state_key(state), exc)
        return state.drift


def state_key(state: OutputState) -> tuple[str, str]:
    return state.component, state.output
