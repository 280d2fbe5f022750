"""Prometheus metric names, histogram bounds and the label cap, shared by SDK and collector.

The names are the contract of ``docs/metrics.md`` (change them there first). Nothing here
imports ``prometheus_client``: the collector's ``/metrics`` exporter and the SDK's in-process
:mod:`otel_mltrace.metrics` both build on these helpers.

Example::

    from otel_mltrace.metricdefs import LabelGuard, derive_bounds, parse_bucket_spec
    guard = LabelGuard(limit=200)
    guard("component", "train")                 # "train" (or "__other__" past 200 values)
    derive_bounds(summarize("score", scores))   # [0.0, 0.05, 0.1, ..., 1.1]
    parse_bucket_spec("train/loss=0.1,0.5,1;*/score=0,0.5,1")
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from fnmatch import fnmatchcase

from otel_mltrace.distributions import OutputSummary

PREFIX = "mltrace_"
OUTPUT_VALUE = "mltrace_output_value"
OUTPUT_QUANTILE = "mltrace_output_quantile"
OUTPUT_NULL_RATIO = "mltrace_output_null_ratio"
OUTPUT_INVALID_RATIO = "mltrace_output_invalid_ratio"
OUTPUT_VALUES = "mltrace_output_values"
OUTPUT_CATEGORY_SHARE = "mltrace_output_category_share"
OUTPUT_DRIFT = "mltrace_output_drift"
OUTPUT_DRIFT_THRESHOLD = "mltrace_output_drift_threshold"
RUNS = "mltrace_runs"  # counter: exposed as mltrace_runs_total
RUN_DURATION = "mltrace_run_duration_seconds"
LAST_RUN = "mltrace_component_last_run_timestamp_seconds"
LAST_SUCCESS = "mltrace_component_last_success_timestamp_seconds"
COMPONENT_INPUTS = "mltrace_component_inputs"
COMPONENT_OUTPUTS = "mltrace_component_outputs"
COMPONENT_STALE = "mltrace_component_stale"
COMPONENT_STALE_RUNS = "mltrace_component_stale_runs"
COMPONENT_INPUT_AGE = "mltrace_component_input_age_seconds"
LINEAGE_EDGE = "mltrace_lineage_edge"
CHECK_FAILURES = "mltrace_check_failures"  # counter, owned by the checks feature
LABEL_VALUES_DROPPED = "mltrace_label_values_dropped"  # counter
INGEST_SPANS = "mltrace_ingest_spans"  # counter
RECORDS_DROPPED = "mltrace_records_dropped"  # counter, label reason (DROP_REASONS)
DROP_REASONS = ("duplicate_run",)
"""``reason`` values of ``mltrace_records_dropped_total`` (bounded; all always exported)."""
EXPORTER_LEADER = "mltrace_exporter_leader"

QUANTILES = (0.5, 0.9, 0.99)
"""Quantiles published as ``mltrace_output_quantile{quantile=...}``."""
MAX_CATEGORY_SERIES = 10
"""Top categories published per output; the rest is summed into category ``__other__``."""
OTHER = "__other__"
"""Label value that replaces values beyond the cap (and the sum of minor categories)."""
MAX_BOUNDS = 60
"""Most bucket bounds a histogram may have (configured or derived)."""
DURATION_BOUNDS = (
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0
)  # fmt: skip
"""``mltrace_run_duration_seconds`` buckets: 100 ms to one day, fixed."""


class LabelGuard:
    """Per-label cap on distinct values: the first ``limit`` values seen of each label are
    admitted, later ones become ``__other__`` and are counted once each in :meth:`dropped`.

    In memory: after a restart the collector re-admits values in the same order (it re-reads
    the store in ingest order), so the admitted set is stable for a given index. Memory is
    one set entry per distinct value seen.

    >>> g = LabelGuard(limit=1)
    >>> g("component", "a"), g("component", "b"), g("component", "a"), g.dropped()
    ('a', '__other__', 'a', {'component': 1})
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"label limit must be >= 1, got {limit}; set MLTRACE_LABEL_LIMIT")
        self.limit = limit
        self._admitted: dict[str, set[str]] = {}
        self._refused: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: str) -> str:
        with self._lock:
            admitted = self._admitted.setdefault(label, set())
            if value in admitted:
                return value
            if len(admitted) < self.limit and value != OTHER:
                admitted.add(value)
                return value
            self._refused.setdefault(label, set()).add(value)
            return OTHER

    def dropped(self) -> dict[str, int]:
        """Distinct values folded into ``__other__``, per label name."""
        with self._lock:
            return {label: len(values) for label, values in sorted(self._refused.items())}


def _nice_step(raw: float) -> float:
    """Smallest of 1, 2, 2.5, 5 x 10^k that is >= ``raw`` (``raw`` > 0)."""
    exp = math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = m * 10.0**exp
        if step >= raw * (1 - 1e-9):
            return step
    return 10.0 ** (exp + 1)  # pragma: no cover - 10 * 10^exp always qualifies


def _clean(x: float) -> float:
    return float(f"{x:.12g}") + 0.0  # drops float noise (0.30000000000000004) and -0.0


def derive_bounds(summary: OutputSummary, target: int = 20) -> list[float]:
    """Histogram bucket bounds for a numeric output, from a (reference) summary.

    Linear "nice" steps (1, 2, 2.5, 5 x 10^k) over the 1st-99th percentile range widened by
    half its span on each side (and up to min/max unless they are far outliers); for
    positive outputs spanning more than two decades, 1-2-5 log steps from a decade below
    the minimum to a decade above the maximum. Non-negative outputs get no negative bounds.
    ``ValueError`` if the summary has no numeric values.

    >>> from otel_mltrace.distributions import summarize
    >>> derive_bounds(summarize("p", [0.1, 0.2, 0.5, 0.9]), target=5)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if summary.sketch is None or summary.count == 0 or summary.min is None:
        raise ValueError(
            f"output {summary.name!r} has no numeric values to derive histogram bounds from"
        )
    assert summary.max is not None
    vmin, vmax = summary.min, summary.max
    # summary.quantile (clamped to [min, max]) for both, in one pass over the sketch
    lo, hi = (
        0.0 if q is None else (min(max(q, vmin), vmax) or 0.0)
        for q in summary.sketch.quantiles([0.01, 0.99])
    )
    if vmin > 0 and vmax / vmin > 100:
        first = math.floor(math.log10(vmin)) - 1
        last = math.ceil(math.log10(vmax)) + 1
        first = max(first, last - MAX_BOUNDS // 3 + 1)
        log_bounds = [_clean(m * 10.0**e) for e in range(first, last + 1) for m in (1, 2, 5)]
        return log_bounds[:MAX_BOUNDS]
    span = hi - lo
    if span <= 0:
        span = abs(hi) * 0.1 or 1.0
    low, high = lo - span / 2, hi + span / 2
    if vmax <= hi + 2 * span:  # cover the extremes unless they are far outliers
        high = max(high, vmax)
    if vmin >= lo - 2 * span:
        low = min(low, vmin)
    if vmin >= 0:
        low = max(low, 0.0)
    step = _nice_step((high - low) / max(target, 2))
    start, stop = math.floor(low / step), math.ceil(high / step)
    bounds = [_clean(k * step) for k in range(start, stop + 1)]
    return bounds[:MAX_BOUNDS]


def check_bounds(bounds: Sequence[float], where: str) -> list[float]:
    """Validated ascending finite bounds; ``ValueError`` naming ``where`` and the fix."""
    out = [float(b) for b in bounds]
    if not out:
        raise ValueError(f"{where}: no bucket bounds; give e.g. 0.1,0.5,1")
    if len(out) > MAX_BOUNDS:
        raise ValueError(f"{where}: {len(out)} bounds, more than {MAX_BOUNDS}; use fewer")
    if not all(math.isfinite(b) for b in out):
        raise ValueError(f"{where}: bounds must be finite (+Inf is implicit), got {out}")
    if any(b2 <= b1 for b1, b2 in zip(out, out[1:], strict=False)):
        raise ValueError(f"{where}: bounds must be strictly ascending, got {out}")
    return out


def parse_bucket_spec(spec: str | None) -> list[tuple[str, list[float]]]:
    """Parse ``MLTRACE_HISTOGRAM_BUCKETS``: ``pattern=b1,b2,...`` entries separated by ``;``.

    ``pattern`` is matched (shell-style, ``*`` and ``?``) against ``component/output``;
    the first matching entry wins.

    >>> parse_bucket_spec("train/loss=0.1,1;*/score=0,0.5,1")
    [('train/loss', [0.1, 1.0]), ('*/score', [0.0, 0.5, 1.0])]
    """
    entries: list[tuple[str, list[float]]] = []
    for part in (spec or "").split(";"):
        if not part.strip():
            continue
        pattern, sep, raw = part.rpartition("=")
        pattern = pattern.strip()
        if not sep or not pattern:
            raise ValueError(
                f"MLTRACE_HISTOGRAM_BUCKETS entry {part.strip()!r} is not 'component/output="
                "b1,b2,...' (e.g. 'train/loss=0.1,0.5,1' or '*/score=0,0.5,1')"
            )
        try:
            values = [float(x) for x in raw.split(",") if x.strip()]
        except ValueError:
            raise ValueError(
                f"MLTRACE_HISTOGRAM_BUCKETS entry {part.strip()!r}: bounds must be numbers "
                "separated by commas"
            ) from None
        entries.append((pattern, check_bounds(values, f"MLTRACE_HISTOGRAM_BUCKETS {pattern!r}")))
    return entries


def configured_bounds(
    entries: Sequence[tuple[str, list[float]]], component: str, output: str
) -> list[float] | None:
    """Bounds of the first entry whose pattern matches ``component/output``, else None."""
    key = f"{component}/{output}"
    for pattern, bounds in entries:
        if fnmatchcase(key, pattern):
            return bounds
    return None


def nonneg_sum(bounds: Sequence[float]) -> bool:
    """Whether a histogram with these bounds exposes ``_sum`` (OpenMetrics forbids ``_sum``
    when there are negative buckets, since the sum is then not a counter)."""
    return not bounds or bounds[0] >= 0
