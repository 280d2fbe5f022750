"""Helpers of the ``/metrics`` exporter: drift thresholds and histogram families.

Example::

    parse_thresholds("psi=0.3")          # {"psi": 0.3, "js": 0.1, "ks": 0.1}
    fam = histogram("mltrace_run_duration_seconds", "Run durations.", ["component"])
    add_hist(fam, ["train"], hist, exemplars=False)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

from mltrace_collector.exporters.series import Hist
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
