"""The store-derived families of ``/metrics``, and helpers: drift thresholds, histograms.

The builders take any iterable of states, so the exporter builds them for everything at
once (``collect()``) or for one pair / one component (its per-group encoded text).

Example::

    parse_thresholds("psi=0.3")          # {"psi": 0.3, "js": 0.1, "ks": 0.1}
    fam = histogram("mltrace_run_duration_seconds", "Run durations.", ["component"])
    add_hist(fam, ["train"], hist, exemplars=False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

from mltrace_collector.service.exporters.metric_state import ComponentState, OutputState
from mltrace_collector.service.exporters.series import Hist
from otel_mltrace import metricdefs as md
from otel_mltrace.drift import JS_THRESHOLD, PSI_THRESHOLD

KS_THRESHOLD = 0.1
"""Default KS alert threshold: a 10-point gap between the CDFs (an effect size; at
n = m = 1000 the 5 % significance critical value is already 0.061, see
``otel_mltrace.drift.ks_critical_value``, so significance alone would flag tiny shifts)."""
go_float = cast(Callable[[float], str], floatToGoString)  # "0.5", "1e+06", "+Inf" as Go prints
DEFAULT_THRESHOLDS = {"psi": PSI_THRESHOLD, "js": JS_THRESHOLD, "ks": KS_THRESHOLD}


def parse_thresholds(text: str | None) -> dict[str, float]:
    """``MLTRACE_DRIFT_THRESHOLDS`` (``psi=0.25,js=0.1,ks=0.1``) over the defaults.

    >>> parse_thresholds("ks=0.2")
    {'psi': 0.25, 'js': 0.1, 'ks': 0.2}
    """
    out = dict(DEFAULT_THRESHOLDS)
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, _, value = part.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if name not in out or not number > 0:
            raise ValueError(
                f"MLTRACE_DRIFT_THRESHOLDS entry {part.strip()!r} is invalid: use method=value "
                f"with method in {sorted(out)} and value > 0, e.g. 'psi=0.25,js=0.1'"
            )
        out[name] = number
    return out


def histogram(name: str, doc: str, labels: list[str], unit: str = "") -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels, unit=unit)


def add_hist(fam: HistogramMetricFamily, labels: list[str], hist: Hist, exemplars: bool) -> None:
    cum = hist.cumulative()
    buckets: list[Any] = []
    for i, le in enumerate([*map(go_float, hist.bounds), "+Inf"]):
        ex = hist.exemplars[i] if exemplars else None
        if ex is not None:
            _, trace_id, span_id, value, ts = ex
            buckets.append(
                (le, cum[i], Exemplar({"trace_id": trace_id, "span_id": span_id}, value, ts))
            )
        else:
            buckets.append((le, cum[i]))
    with_sum = md.nonneg_sum(hist.bounds)
    fam.add_metric(labels, buckets, hist.total if with_sum else None)
    if not with_sum:  # prometheus_client then drops _count too: keep it (only _sum is unsafe)
        fam.samples.append(
            Sample(fam.name + "_count", dict(zip(fam._labelnames, labels, strict=True)), cum[-1])
        )


class Families:
    """A ready list of families in the shape an encoder takes (``collect()``)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def pair_families(
    pairs: Iterable[tuple[tuple[str, str], OutputState]],
    drift_of: Callable[[OutputState], Mapping[str, float | None]],
) -> list[Metric]:
    """The per-(component, output) families (distributions, latest run, drift)."""
    lab = ["component", "output"]
    hist = histogram(md.OUTPUT_VALUE, "Numeric output values of all runs (cumulative).", lab)
    quant = GaugeMetricFamily(
        md.OUTPUT_QUANTILE, "Quantiles of the latest run's output.", labels=[*lab, "q"]
    )
    nulls = GaugeMetricFamily(md.OUTPUT_NULL_RATIO, "Nulls / all values, latest run.", labels=lab)
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
    drift = GaugeMetricFamily(
        md.OUTPUT_DRIFT,
        "Drift of the latest run's output vs the reference (MLTRACE_DRIFT_REFERENCE).",
        labels=["component", "output", "method"],
    )
    for (comp, out), state in pairs:
        for method, score in drift_of(state).items():
            if score is not None:
                drift.add_metric([comp, out, method], score)
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
    return [hist, quant, nulls, invalid, values, shares, drift]


def threshold_family(thresholds: Mapping[str, float]) -> Metric:
    threshold = GaugeMetricFamily(
        md.OUTPUT_DRIFT_THRESHOLD, "Alerting threshold of each drift method.", labels=["method"]
    )
    for method, value in thresholds.items():
        threshold.add_metric([method], value)
    return threshold


def component_families(comps: Iterable[tuple[str, ComponentState]]) -> list[Metric]:
    """The per-component run-health families."""
    lab = ["component"]
    runs = CounterMetricFamily(md.RUNS, "Runs indexed, by status.", labels=["component", "status"])
    dur = histogram(md.RUN_DURATION, "Run durations.", lab, unit="seconds")
    last = GaugeMetricFamily(md.LAST_RUN, "Start of the newest run.", labels=lab, unit="seconds")
    ok = GaugeMetricFamily(
        md.LAST_SUCCESS,
        "End of the newest run with status ok/unset.",
        labels=lab,
        unit="seconds",
    )
    n_in = GaugeMetricFamily(md.COMPONENT_INPUTS, "Inputs of the newest run.", labels=lab)
    n_out = GaugeMetricFamily(md.COMPONENT_OUTPUTS, "Outputs of the newest run.", labels=lab)
    for comp, state in comps:
        # ok and error always exist (at 0) so increase() sees a component's first failure
        for status, n in sorted({"ok": 0, "error": 0, **state.runs}.items()):
            runs.add_metric([comp, status], n)
        add_hist(dur, [comp], state.duration, exemplars=False)
        last.add_metric([comp], state.last_start_ns / 1e9)
        if state.last_success_ns is not None:
            ok.add_metric([comp], state.last_success_ns / 1e9)
        n_in.add_metric([comp], state.n_inputs)
        n_out.add_metric([comp], state.n_outputs)
    return [runs, dur, last, ok, n_in, n_out]


def edge_family(pairs: Iterable[tuple[str, str]]) -> Metric:
    edges = GaugeMetricFamily(
        md.LINEAGE_EDGE,
        "1 per component -> component lineage edge.",
        labels=["source", "target"],
    )
    for source, target in sorted(pairs):
        edges.add_metric([source, target], 1.0)
    return edges
