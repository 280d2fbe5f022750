"""In-process Prometheus metrics of outputs, for long-running services (a prediction API).

The collector's ``/metrics`` publishes what *runs* reported, which suits batch components.
A service that predicts all day has no run boundaries worth waiting for: it can expose the
same output-distribution series itself, from its own ``/metrics``, scraped directly.

- **collector-side** (default, nothing to do): batch and scheduled components, anything
  short-lived; histograms with per-output bounds, drift vs a reference, staleness, run
  health, lineage edges. Values appear when the run's span reached the collector.
- **in-process** (this module): long-running services; the series update as soon as
  ``observe_output`` (or ``Run.log_output`` after :func:`enable`) is called, and the
  service's own scrape carries them. Quantiles, null/invalid ratios, value counts and
  category shares describe the *latest batch*; the histogram is cumulative. No drift,
  staleness or lineage here: those need the index.

Same metric names as the collector (``docs/metrics.md``), built on prometheus_client's
own metric classes with *bulk* bucket increments (one sketch per batch, never one
``observe()`` per value). One bucket layout per :class:`OutputMetrics` (``buckets=``, for
all its outputs). Multi-process servers (gunicorn, uvicorn workers): set
``PROMETHEUS_MULTIPROC_DIR`` *before* the workers start, as prometheus_client
requires; histograms then sum across processes and the gauges use
``multiprocess_mode="mostrecent"`` (the latest batch of any worker); serve with
:func:`start_http_server`, which aggregates the directory. Exemplars (the run's
``trace_id``) are attached in single-process mode only (prometheus_client keeps none in
multi-process mode). ``prometheus_client`` is imported only here: the SDK does not need it.

Example::

    from otel_mltrace.metrics import OutputMetrics, enable, start_http_server
    metrics = enable(OutputMetrics(buckets=[0.1, 0.25, 0.5, 0.75, 0.9, 1.0]))
    start_http_server(9464)
    with otel_mltrace.run("predict") as run:
        run.log_output("score", scores)            # also updates the metrics
    metrics.observe_output("predict", "score", more_scores)   # or directly, without a run
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from otel_mltrace import _hooks
from otel_mltrace import metricdefs as md
from otel_mltrace.config import resolve
from otel_mltrace.distributions import OutputSummary, summarize

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram
    from prometheus_client.samples import Exemplar
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "otel_mltrace.metrics needs prometheus_client: pip install 'prometheus-client>=0.20' "
        "(or the otel-mltrace[collector] extra)"
    ) from exc

DEFAULT_BUCKETS: tuple[float, ...] = (
    -1000.0, -100.0, -10.0, -5.0, -2.0, -1.0, -0.5, -0.2, -0.1, -0.01, 0.0,
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0,
    2.0, 5.0, 10.0, 100.0, 1000.0,
)  # fmt: skip
"""Generic layout (fine in [0, 1] for scores and probabilities, coarse elsewhere): pass
``buckets=`` that fit your outputs."""


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class OutputMetrics:
    """Output-distribution metrics of this process (see the module doc).

    ``registry``: where the metrics register (default: prometheus_client's global
    ``REGISTRY``); ``buckets``: ascending histogram bounds for every output;
    ``label_limit``: distinct values per label before ``__other__`` (default
    ``MLTRACE_LABEL_LIMIT``). Thread-safe.

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> m = OutputMetrics(CollectorRegistry(), buckets=[0.5, 1.0])
    >>> _ = m.observe_output("predict", "score", [0.2, 0.7, 0.9, None])
    >>> b'mltrace_output_value_bucket{component="predict",le="0.5",output="score"} 1.0' in (
    ...     generate_latest(m.registry))
    True
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        buckets: Sequence[float] | None = None,
        label_limit: int | None = None,
    ) -> None:
        self.registry = registry
        self.buckets = md.check_bounds(buckets or DEFAULT_BUCKETS, "OutputMetrics(buckets=...)")
        self.guard = md.LabelGuard(int(resolve("label_limit", label_limit)))
        lab = ["component", "output"]
        self.histogram = Histogram(
            md.OUTPUT_VALUE,
            "Numeric output values observed by this process (cumulative).",
            lab,
            buckets=self.buckets,
            registry=registry,
        )

        def gauge(name: str, doc: str, extra: Iterable[str] = ()) -> Gauge:
            return Gauge(
                name, doc, [*lab, *extra], registry=registry, multiprocess_mode="mostrecent"
            )

        self.quantile = gauge(md.OUTPUT_QUANTILE, "Quantiles of the latest batch.", ["q"])
        self.null_ratio = gauge(md.OUTPUT_NULL_RATIO, "Nulls / all values, latest batch.")
        self.invalid_ratio = gauge(
            md.OUTPUT_INVALID_RATIO, "Invalid (non-numeric, inf) / all values, latest batch."
        )
        self.values = gauge(md.OUTPUT_VALUES, "Values (valid + null + invalid), latest batch.")
        self.category_share = gauge(
            md.OUTPUT_CATEGORY_SHARE, "Share of each top category, latest batch.", ["category"]
        )
        self._shown: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()

    def observe_output(
        self, component: str, name: str, values: Any, kind: str | None = None
    ) -> OutputSummary:
        """Summarize ``values`` (as ``Run.log_output`` does) and update the metrics."""
        summary = summarize(name, values, kind=kind)
        self.observe_summary(component, summary)
        return summary

    def observe_summary(
        self, component: str, summary: OutputSummary, trace_id: str | None = None
    ) -> None:
        """Update the metrics from an existing summary (one batch of ``component``)."""
        comp = self.guard("component", component)
        out = self.guard("output", summary.name)
        with self._lock:
            if summary.sketch is not None and summary.count > 0:
                self._add_sketch(comp, out, summary, trace_id)
            total = summary.count + summary.null_count + summary.invalid_count
            self.values.labels(comp, out).set(total)
            if total:
                self.null_ratio.labels(comp, out).set(summary.null_count / total)
                self.invalid_ratio.labels(comp, out).set(summary.invalid_count / total)
            if summary.sketch is not None and summary.count > 0:
                for q in md.QUANTILES:
                    v = summary.quantile(q)
                    if v is not None:
                        self.quantile.labels(comp, out, str(q)).set(v)
            if summary.categories and summary.count > 0:
                self._set_shares(comp, out, summary)

    def _add_sketch(
        self, comp: str, out: str, summary: OutputSummary, trace_id: str | None
    ) -> None:
        assert summary.sketch is not None
        child = self.histogram.labels(comp, out)
        bounds = [*self.buckets, float("inf")]
        cum = summary.sketch.bucket_counts(bounds)
        prev = 0
        ts = time.time()
        for i, c in enumerate(cum):
            if c > prev:
                child._buckets[i].inc(c - prev)  # bulk: one increment per bucket
                if trace_id and not _multiprocess():
                    child._buckets[i].set_exemplar(
                        Exemplar({"trace_id": trace_id}, min(bounds[i], summary.max or 0.0), ts)
                    )
            prev = c
        child._sum.inc(summary.sum or 0.0)

    def _set_shares(self, comp: str, out: str, summary: OutputSummary) -> None:
        ranked = sorted(summary.categories.items(), key=lambda kv: (-kv[1], kv[0]))
        top = ranked[: md.MAX_CATEGORY_SERIES]
        shares: dict[str, float] = {}
        for cat, n in top:
            label = self.guard("category", cat)
            shares[label] = shares.get(label, 0.0) + n / summary.count
        rest = summary.count - sum(n for _, n in top)
        if rest > 0:
            shares[md.OTHER] = shares.get(md.OTHER, 0.0) + rest / summary.count
        shown = self._shown.setdefault((comp, out), set())
        for cat in shown - shares.keys():
            self.category_share.labels(comp, out, cat).set(0.0)  # no longer among the top
        for cat, share in shares.items():
            self.category_share.labels(comp, out, cat).set(share)
            shown.add(cat)

    def _on_log_output(self, component: str, summary: OutputSummary, span: Any) -> None:
        ctx = span.get_span_context() if hasattr(span, "get_span_context") else None
        trace_id = format(ctx.trace_id, "032x") if ctx is not None and ctx.trace_id else None
        self.observe_summary(component, summary, trace_id)


_enabled: list[OutputMetrics] = []


def enable(metrics: OutputMetrics | None = None) -> OutputMetrics:
    """Feed every ``Run.log_output`` of this process into ``metrics`` (default: a new
    :class:`OutputMetrics` on the global registry). Returns it; :func:`disable` undoes."""
    disable()
    chosen = metrics if metrics is not None else OutputMetrics()
    _enabled.append(chosen)
    _hooks.output_observers.append(chosen._on_log_output)
    return chosen


def disable() -> None:
    """Stop feeding ``Run.log_output`` into the metrics set by :func:`enable`."""
    while _enabled:
        m = _enabled.pop()
        if m._on_log_output in _hooks.output_observers:
            _hooks.output_observers.remove(m._on_log_output)


def start_http_server(
    port: int, addr: str = "0.0.0.0", registry: CollectorRegistry | None = None
) -> Any:
    """Serve ``/metrics`` of this process on ``addr:port`` in a daemon thread.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, serves the aggregate of every process
    (prometheus_client's ``MultiProcessCollector``). Returns ``(server, thread)``.
    """
    from prometheus_client import multiprocess
    from prometheus_client import start_http_server as _start

    if registry is None:
        registry = REGISTRY
        if _multiprocess():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return _start(port, addr=addr, registry=registry)
