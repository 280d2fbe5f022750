"""``/metrics``: the collector's Prometheus exporter (names: ``docs/metrics.md``).

One ``prometheus_client`` custom collector: every scrape folds the newly ingested runs
into :class:`~mltrace_collector.exporters.metric_state.StoreAggregates` and yields one
MetricFamily per metric — never one ``observe()`` per value. Store-derived series are
exported by the leader only (:mod:`~mltrace_collector.exporters.leader`); per-replica
series (``mltrace_ingest_spans_total``, ``mltrace_exporter_leader``) by every replica. A
failure while building one metric is logged and that metric skipped: a scrape never fails.
The route sits behind the listener's bearer auth and negotiates OpenMetrics (with
exemplars carrying ``trace_id``/``span_id``) or the classic text format.

Other features add their metrics as *providers* (functions yielding MetricFamily objects),
e.g. ``mltrace_check_failures_total`` or ``mltrace_forward_*``::

    from mltrace_collector.exporters.prometheus import add_provider
    add_provider(collector, lambda: [CounterMetricFamily(...)], store_derived=True)

Settings: ``MLTRACE_LABEL_LIMIT``, ``MLTRACE_DRIFT_REFERENCE``, ``MLTRACE_DRIFT_THRESHOLDS``,
``MLTRACE_HISTOGRAM_BUCKETS``, ``MLTRACE_STALE_AFTER_SECONDS`` (``otel_mltrace.config``).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mltrace_collector.exporters.families import (
    Families,
    add_hist,
    go_float,
    histogram,
    parse_thresholds,
)
from mltrace_collector.exporters.leader import Leadership
from mltrace_collector.exporters.metric_state import StoreAggregates, parse_reference
from mltrace_collector.exporters.staleness import StaleCache
from mltrace_collector.queries import LineageQueries
from mltrace_collector.store.base import Store
from otel_mltrace import metricdefs as md
from otel_mltrace.config import resolve

if TYPE_CHECKING:
    from mltrace_collector.service import Collector

log = logging.getLogger("mltrace_collector.metrics")

Provider = Callable[[], Iterable[Metric]]


class MetricsExporter:
    """The custom collector (``collect()``) plus rendering; one per collector service."""

    def __init__(
        self,
        store: Store,
        stats: Callable[[], Mapping[str, int]] | None = None,
        *,
        label_limit: int | None = None,
        drift_reference: str | None = None,
        drift_thresholds: str | None = None,
        histogram_buckets: str | None = None,
        stale_after_s: float | None = None,
    ) -> None:
        self.store = store
        self.stats = stats or (lambda: {})
        self.guard = md.LabelGuard(int(resolve("label_limit", label_limit)))
        self.thresholds = parse_thresholds(resolve("drift_thresholds", drift_thresholds))
        self.aggregates = StoreAggregates(
            store,
            guard=self.guard,
            reference=parse_reference(resolve("drift_reference", drift_reference)),
            bucket_spec=md.parse_bucket_spec(resolve("histogram_buckets", histogram_buckets)),
        )
        stale_s = float(resolve("stale_after_seconds", stale_after_s))
        self.stale = StaleCache(LineageQueries(store), stale_s)
        self.leadership = Leadership(store)
        self._providers: list[tuple[Provider, bool]] = []
        self._lock = threading.Lock()
        self._version = 0
        self._cache: tuple[tuple[str, int, bool], bytes] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def add_provider(self, provider: Provider, *, store_derived: bool) -> None:
        """Add a source of MetricFamily objects; ``store_derived`` ones run on the leader only."""
        self._providers.append((provider, store_derived))

    def describe(self) -> list[Metric]:
        return []  # names are dynamic; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        """Every family, freshly built (for a registry of your own; ``/metrics`` uses
        :meth:`render`, which caches the store-derived part between ingests)."""
        with self._lock:
            leader = self._refresh()
            families = self._build(self._static_builders(leader) + self._live_builders(leader))
        yield from families

    def _refresh(self) -> bool:
        leader = self.leadership.is_leader()
        if leader:
            try:
                if self.aggregates.refresh():
                    self._version += 1
            except Exception:  # store down or a bug: export what is already folded
                log.exception("metrics: folding new runs failed")
        return leader

    def _static_builders(self, leader: bool) -> list[Callable[[], Iterable[Metric]]]:
        """Families that change only when runs are folded in (cached by :meth:`render`)."""
        return [self._outputs, self._drift, self._runs] if leader else []

    def _live_builders(self, leader: bool) -> list[Callable[[], Iterable[Metric]]]:
        builders: list[Callable[[], Iterable[Metric]]] = [lambda: self._replica(leader)]
        if leader:
            builders.append(self._staleness)  # ages move with the clock
        for provider, store_derived in self._providers:
            if leader or not store_derived:
                builders.append(provider)
        builders.append(self._dropped)
        return builders

    def _build(self, builders: list[Callable[[], Iterable[Metric]]]) -> list[Metric]:
        families: list[Metric] = []
        for build in builders:
            try:
                families.extend(build())
            except Exception:
                log.exception("metrics: building %r failed; skipped in this scrape", build)
        return families

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition for an ``Accept`` header: ``(body, content type)``.

        The store-derived part is encoded once per ingest (version) and format; a scrape
        with nothing new only encodes the per-replica and clock-dependent families.
        """
        encoder, content_type = choose_encoder(accept or "")
        with self._lock:
            leader = self._refresh()
            key = (content_type, self._version, leader)
            if self._cache is None or self._cache[0] != key:
                static = Families(self._build(self._static_builders(leader)))
                self._cache = (key, encoder(static))
            live = encoder(Families(self._build(self._live_builders(leader))))
        head = self._cache[1]
        if head.endswith(b"# EOF\n"):  # OpenMetrics: one EOF, at the very end
            head = head[: -len(b"# EOF\n")]
        return head + live, content_type

    def close(self) -> None:
        self.leadership.close()

    # -- families -------------------------------------------------------------------------
    def _replica(self, leader: bool) -> list[Metric]:
        stats = self.stats()
        received = stats.get("spans_received", 0)
        runs, rejected = stats.get("runs_committed", 0), stats.get("spans_rejected", 0)
        spans = CounterMetricFamily(
            md.INGEST_SPANS, "Spans received by this replica, by outcome.", labels=["outcome"]
        )
        spans.add_metric(["run"], runs)
        spans.add_metric(["rejected"], rejected)
        spans.add_metric(["passthrough"], max(0, received - runs - rejected))
        lead = GaugeMetricFamily(
            md.EXPORTER_LEADER, "1 on the replica that exports the store-derived series."
        )
        lead.add_metric([], 1.0 if leader else 0.0)
        return [spans, lead]

    def _outputs(self) -> list[Metric]:
        lab = ["component", "output"]
        hist = histogram(md.OUTPUT_VALUE, "Numeric output values of all runs (cumulative).", lab)
        quant = GaugeMetricFamily(
            md.OUTPUT_QUANTILE, "Quantiles of the latest run's output.", labels=[*lab, "q"]
        )
        nulls = GaugeMetricFamily(
            md.OUTPUT_NULL_RATIO, "Nulls / all values, latest run.", labels=lab
        )
        invalid = GaugeMetricFamily(
            md.OUTPUT_INVALID_RATIO,
            "Invalid (non-numeric, inf) / all values, latest run.",
            labels=lab,
        )
        values = GaugeMetricFamily(
            md.OUTPUT_VALUES,
            "Values (valid + null + invalid) in the latest run's output.",
            labels=lab,
        )
        shares = GaugeMetricFamily(
            md.OUTPUT_CATEGORY_SHARE,
            "Share of each top category, latest run.",
            labels=[*lab, "category"],
        )
        for (comp, out), state in self.aggregates.outputs.items():
            if state.hist is not None:
                add_hist(hist, [comp, out], state.hist, exemplars=True)
            latest = state.latest
            if latest is None:
                continue
            values.add_metric([comp, out], latest.values)
            if latest.null_ratio is not None:
                nulls.add_metric([comp, out], latest.null_ratio)
            if latest.invalid_ratio is not None:
                invalid.add_metric([comp, out], latest.invalid_ratio)
            for q, v in latest.quantiles.items():
                quant.add_metric([comp, out, go_float(q)], v)
            for cat, share in latest.shares.items():
                shares.add_metric([comp, out, cat], share)
        return [hist, quant, nulls, invalid, values, shares]

    def _drift(self) -> list[Metric]:
        drift = GaugeMetricFamily(
            md.OUTPUT_DRIFT,
            "Drift of the latest run's output vs the reference (MLTRACE_DRIFT_REFERENCE).",
            labels=["component", "output", "method"],
        )
        for (comp, out), state in self.aggregates.outputs.items():
            try:
                scores = self.aggregates.drift(state)
            except Exception:  # one output's bad data must not hide the others
                log.exception("metrics: drift of %s/%s failed", comp, out)
                continue
            for method, score in scores.items():
                if score is not None:
                    drift.add_metric([comp, out, method], score)
        threshold = GaugeMetricFamily(
            md.OUTPUT_DRIFT_THRESHOLD, "Alerting threshold of each drift method.", labels=["method"]
        )
        for method, value in self.thresholds.items():
            threshold.add_metric([method], value)
        return [drift, threshold]

    def _runs(self) -> list[Metric]:
        lab = ["component"]
        runs = CounterMetricFamily(
            md.RUNS, "Runs indexed, by status.", labels=["component", "status"]
        )
        dur = histogram(md.RUN_DURATION, "Run durations.", lab, unit="seconds")
        last = GaugeMetricFamily(
            md.LAST_RUN, "Start of the newest run.", labels=lab, unit="seconds"
        )
        ok = GaugeMetricFamily(
            md.LAST_SUCCESS,
            "End of the newest run with status ok/unset.",
            labels=lab,
            unit="seconds",
        )
        n_in = GaugeMetricFamily(md.COMPONENT_INPUTS, "Inputs of the newest run.", labels=lab)
        n_out = GaugeMetricFamily(md.COMPONENT_OUTPUTS, "Outputs of the newest run.", labels=lab)
        for comp, state in self.aggregates.components.items():
            # ok and error always exist (at 0) so increase() sees a component's first failure
            for status, n in sorted({"ok": 0, "error": 0, **state.runs}.items()):
                runs.add_metric([comp, status], n)
            add_hist(dur, [comp], state.duration, exemplars=False)
            last.add_metric([comp], state.last_start_ns / 1e9)
            if state.last_success_ns is not None:
                ok.add_metric([comp], state.last_success_ns / 1e9)
            n_in.add_metric([comp], state.n_inputs)
            n_out.add_metric([comp], state.n_outputs)
        edges = GaugeMetricFamily(
            md.LINEAGE_EDGE,
            "1 per component -> component lineage edge.",
            labels=["source", "target"],
        )
        for source, target in sorted(self.aggregates.edges.edges):
            edges.add_metric([source, target], 1.0)
        return [runs, dur, last, ok, n_in, n_out, edges]

    def _staleness(self) -> list[Metric]:
        newest = {
            comp: (state.last_run_id, state.last_start_ns)
            for comp, state in self.aggregates.components.items()
            if comp != md.OTHER  # overflowed components: a bounded cost, no staleness
        }
        merged = self.stale.get(newest, self.aggregates.watermark_ns)
        flag = GaugeMetricFamily(
            md.COMPONENT_STALE, "1 when the newest run is stale.", labels=["component"]
        )
        age_fam = GaugeMetricFamily(
            md.COMPONENT_INPUT_AGE,
            "Age of the newest input of the newest run.",
            labels=["component"],
            unit="seconds",
        )
        for comp, (stale, age) in merged.items():
            flag.add_metric([comp], 1.0 if stale else 0.0)
            if age is not None:
                age_fam.add_metric([comp], age)
        return [flag, age_fam]

    def _dropped(self) -> list[Metric]:
        fam = CounterMetricFamily(
            md.LABEL_VALUES_DROPPED,
            "Label values folded into __other__ by the cardinality cap (MLTRACE_LABEL_LIMIT).",
            labels=["label"],
        )
        dropped = self.guard.dropped()
        for label in ("component", "output", "category"):
            dropped.setdefault(label, 0)
        for label, n in sorted(dropped.items()):
            fam.add_metric([label], n)
        return [fam]


# -- wiring into the collector ---------------------------------------------------------------
_exporters: weakref.WeakKeyDictionary[Any, MetricsExporter] = weakref.WeakKeyDictionary()
_pending: weakref.WeakKeyDictionary[Any, list[tuple[Provider, bool]]] = weakref.WeakKeyDictionary()


def add_provider(collector: Collector, provider: Provider, *, store_derived: bool) -> None:
    """Register extra metric families for ``collector``'s ``/metrics`` (before or after
    :func:`install_metrics`). ``store_derived=True``: exported by the leader only."""
    exporter = _exporters.get(collector)
    if exporter is not None:
        exporter.add_provider(provider, store_derived=store_derived)
    else:
        _pending.setdefault(collector, []).append((provider, store_derived))


def metrics_exporter(collector: Collector) -> MetricsExporter | None:
    """The exporter :func:`install_metrics` attached to ``collector`` (None if none)."""
    return _exporters.get(collector)


def install_metrics(collector: Collector) -> MetricsExporter:
    """Serve ``/metrics`` on the collector's HTTP listener; call from ``install_features``."""
    pipeline = collector.pipeline
    exporter = MetricsExporter(collector.store, lambda: dict(pipeline.stats))
    for provider, store_derived in _pending.pop(collector, []):
        exporter.add_provider(provider, store_derived=store_derived)
    _exporters[collector] = exporter

    def metrics(request: Request) -> Response:  # sync: Starlette runs it in a thread pool
        body, content_type = exporter.render(request.headers.get("accept"))
        return Response(body, media_type=None, headers={"Content-Type": content_type})

    collector.routes.append(Route("/metrics", metrics, methods=["GET"]))
    collector.on_stop.append(exporter.close)
    return exporter
