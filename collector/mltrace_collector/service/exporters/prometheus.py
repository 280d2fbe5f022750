"""``/metrics``: the collector's Prometheus exporter (names: ``docs/metrics.md``).

One ``prometheus_client`` custom collector: every scrape folds the newly ingested runs
into :class:`~mltrace_collector.service.exporters.metric_state.StoreAggregates` and yields one
MetricFamily per metric — never one ``observe()`` per value. Store-derived series are
exported by the leader only (:mod:`~mltrace_collector.service.exporters.leader`); per-replica
series (``mltrace_ingest_spans_total``, ``mltrace_records_dropped_total``,
``mltrace_exporter_leader``) by every replica. A failure while building one metric is
logged and that metric skipped: a scrape never fails.
The route sits behind the listener's bearer auth and negotiates OpenMetrics (with
exemplars carrying ``trace_id``/``span_id``) or the classic text format.

Other features add their metrics as *providers* (functions yielding MetricFamily objects),
e.g. ``mltrace_check_failures_total`` or ``mltrace_forward_*``::

    from mltrace_collector.service.exporters.prometheus import add_provider
    add_provider(collector, lambda: [CounterMetricFamily(...)], store_derived=True)

Settings: ``MLTRACE_LABEL_LIMIT``, ``MLTRACE_DRIFT_REFERENCE``, ``MLTRACE_DRIFT_THRESHOLDS``,
``MLTRACE_HISTOGRAM_BUCKETS``, ``MLTRACE_STALE_AFTER_SECONDS`` (``otel_mltrace.config``).
"""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from functools import partial
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

from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store.base import Store
from mltrace_collector.service.exporters.encoded import Build, Encoder, GroupCache
from mltrace_collector.service.exporters.families import (
    Families,
    component_families,
    edge_family,
    pair_families,
    parse_thresholds,
    threshold_family,
)
from mltrace_collector.service.exporters.leader import Leadership
from mltrace_collector.service.exporters.metric_state import (
    ComponentState,
    OutputState,
    StoreAggregates,
    parse_reference,
)
from mltrace_collector.service.exporters.staleness import StaleCache
from otel_mltrace import metricdefs as md
from otel_mltrace.config import resolve

if TYPE_CHECKING:
    from mltrace_collector.service.exporters.host import CollectorHost

log = logging.getLogger("mltrace_collector.metrics")

Provider = Callable[[], Iterable[Metric]]
FREEZE_AFTER_RUNS = 1000
"""A fold of at least this many runs (a cold start) is followed by ``gc.freeze()``."""


class MetricsExporter:
    """The custom collector (``collect()``) plus rendering; one per collector service."""

    def __init__(
        self,
        store: Store,
        stats: Callable[[], Mapping[str, float]] | None = None,
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
        self.stale = StaleCache(LineageQueries(store), stale_s, background=True)
        self.leadership = Leadership(store)
        self._providers: list[tuple[Provider, bool]] = []
        self._lock = threading.Lock()
        self._version = 0
        self._cache: tuple[tuple[str, int, bool], bytes] | None = None
        self._groups = GroupCache()
        self._frozen = False
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
                folded = self.aggregates.refresh()
                if folded:
                    self._version += 1
                if folded >= FREEZE_AFTER_RUNS and not self._frozen:
                    # the cold fold leaves a large long-lived state behind: move it out of
                    # the cyclic GC's reach, or every later full collection (~100 ms+)
                    # walks it again, often in the middle of a scrape
                    self._frozen = True
                    gc.freeze()
            except Exception:  # store down or a bug: export what is already folded
                log.exception("metrics: folding new runs failed")
        return leader

    def _static_builders(self, leader: bool) -> list[Callable[[], Iterable[Metric]]]:
        """Families that change only when runs are folded in (cached by :meth:`render`)."""
        if not leader:
            return []
        agg = self.aggregates
        return [
            lambda: self._pair_families(agg.outputs.items()),
            self._thresholds,
            lambda: self._component_families(agg.components.items()),
            self._edges,
        ]

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

        The store-derived part is assembled once per ingest (version) and format from
        per-pair and per-component encoded text (:mod:`.encoded`), re-encoding only the
        groups whose state changed; a scrape with nothing new only encodes the per-replica
        and clock-dependent families.
        """
        encoder, content_type = choose_encoder(accept or "")
        with self._lock:
            leader = self._refresh()
            key = (content_type, self._version, leader)
            if self._cache is None or self._cache[0] != key:
                static = self._static_text(content_type, encoder) if leader else ""
                self._cache = (key, static.encode("utf-8"))
            live = encoder(Families(self._build(self._live_builders(leader))))
        return self._cache[1] + live, content_type

    def _static_text(self, fmt: str, encoder: Encoder) -> str:
        try:
            return self._assemble(fmt, encoder)
        except Exception:  # a bug in the incremental path: encode everything at once
            log.exception("metrics: incremental encoding failed; encoding all store series")
            text = encoder(Families(self._build(self._static_builders(True)))).decode("utf-8")
            return text.removesuffix("# EOF\n")

    def _assemble(self, fmt: str, encoder: Encoder) -> str:
        """Store-derived families from cached group text, in :meth:`_static_builders` order."""
        agg, groups = self.aggregates, self._groups
        # a pair's drift changes only with its state, or when a pinned reference arrives
        epoch = agg.reference_epoch
        pairs = [
            (key, (state.version, epoch), partial(self._pair_families, [(key, state)]))
            for key, state in agg.outputs.items()
        ]
        comps = [
            (comp, state.version, partial(self._component_families, [(comp, state)]))
            for comp, state in agg.components.items()
        ]
        return "".join(
            [
                self._section(fmt, encoder, "pair", pairs, partial(self._pair_families, [])),
                groups.text(fmt, encoder, "thresholds", 0, self._thresholds),
                self._section(
                    fmt, encoder, "component", comps, partial(self._component_families, [])
                ),
                groups.text(fmt, encoder, "edges", len(agg.edges.edges), self._edges),
            ]
        )

    def _section(
        self,
        fmt: str,
        encoder: Encoder,
        kind: str,
        items: Sequence[tuple[Hashable, Hashable, Build]],
        empty: Build,
    ) -> str:
        """Each family's header, then every group's samples of it (group order kept)."""
        heads = self._groups.headers(fmt, encoder, kind, empty)
        columns: list[list[str]] = [[] for _ in heads]
        for group, stamp, build in items:
            try:
                bodies = self._groups.bodies(fmt, encoder, (kind, group), stamp, build)
            except Exception:  # one bad group must not hide the others
                log.exception("metrics: encoding %s %r failed; skipped", kind, group)
                bodies = self._groups.forget(fmt, (kind, group), stamp, len(heads))
            for column, body in zip(columns, bodies, strict=True):
                column.append(body)
        return "".join(head + "".join(column) for head, column in zip(heads, columns, strict=True))

    def close(self) -> None:
        self.stale.close()
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
        dropped = CounterMetricFamily(
            md.RECORDS_DROPPED,
            "Record rows deleted by this replica's commits, by reason; duplicate_run: records "
            "a duplicate run's record chunk spans wrote before the run ID's span was indexed.",
            labels=["reason"],
        )
        for reason in md.DROP_REASONS:
            dropped.add_metric([reason], stats.get(f"records_dropped_{reason}", 0))
        return [spans, lead, dropped]

    def _drift_of(self, state: OutputState) -> dict[str, float | None]:
        try:
            return self.aggregates.drift(state)
        except Exception:  # one output's bad data must not hide the others
            log.exception("metrics: drift of %s/%s failed", state.component, state.output)
            return {}

    def _pair_families(self, pairs: Iterable[tuple[tuple[str, str], OutputState]]) -> list[Metric]:
        return pair_families(pairs, self._drift_of)

    def _thresholds(self) -> list[Metric]:
        return [threshold_family(self.thresholds)]

    def _component_families(self, comps: Iterable[tuple[str, ComponentState]]) -> list[Metric]:
        return component_families(comps)

    def _edges(self) -> list[Metric]:
        return [edge_family(self.aggregates.edges.edges)]

    def _staleness(self) -> list[Metric]:
        comps = [c for c in self.aggregates.components if c != md.OTHER]  # the label cap
        merged = self.stale.get(comps, self.aggregates.watermark_ns)
        flag = GaugeMetricFamily(
            md.COMPONENT_STALE,
            "1 when at least one live run of the component is stale, as otel-mltrace stale "
            "lists it: it or a run upstream of it read an input that has a newer version or "
            "is older than the threshold.",
            labels=["component"],
        )
        count = GaugeMetricFamily(
            md.COMPONENT_STALE_RUNS,
            "How many live runs of the component are stale (rows of otel-mltrace stale).",
            labels=["component"],
        )
        age_fam = GaugeMetricFamily(
            md.COMPONENT_INPUT_AGE,
            "Age of the newest input of the component's newest run (largest start).",
            labels=["component"],
            unit="seconds",
        )
        for comp, info in merged.items():
            flag.add_metric([comp], 1.0 if info.stale else 0.0)
            count.add_metric([comp], float(info.stale_runs))
            if info.input_age_s is not None:
                age_fam.add_metric([comp], info.input_age_s)
        return [flag, count, age_fam]

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


def add_provider(collector: CollectorHost, provider: Provider, *, store_derived: bool) -> None:
    """Register extra metric families for ``collector``'s ``/metrics`` (before or after
    :func:`install_metrics`). ``store_derived=True``: exported by the leader only."""
    exporter = _exporters.get(collector)
    if exporter is not None:
        exporter.add_provider(provider, store_derived=store_derived)
    else:
        _pending.setdefault(collector, []).append((provider, store_derived))


def metrics_exporter(collector: CollectorHost) -> MetricsExporter | None:
    """The exporter :func:`install_metrics` attached to ``collector`` (None if none)."""
    return _exporters.get(collector)


def install_metrics(collector: CollectorHost) -> MetricsExporter:
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
