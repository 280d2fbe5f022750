"""The series the exporter keeps per (component, output) and per component.

:class:`Hist` is a classic histogram with fixed bounds that folds a whole run's sketch at
once (one pass over its buckets, never one call per value) and keeps, per bucket, an
exemplar of the newest run that contributed; :func:`latest_gauges` computes the gauges
of an output's latest run once, when that run changes.

Example::

    h = Hist([0.5, 1.0])
    h.add_summary(summarize("score", [0.2, 0.7, 3.0]), run_info)
    h.cumulative()              # [1, 2, 3]
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_mltrace import semconv as sc
from otel_mltrace.distributions import OutputSummary, Sketch
from otel_mltrace.metricdefs import MAX_CATEGORY_SERIES, OTHER, QUANTILES, LabelGuard


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    component: str
    status: str
    start_ns: int
    end_ns: int
    trace_id: str
    span_id: str
    n_inputs: int
    n_outputs: int


@dataclass
class Hist:
    """A classic histogram with fixed bounds; ``counts`` per bucket (last one is +Inf).

    ``exemplars[i]`` is ``(start_ns, trace_id, span_id, value, end_s)`` of the newest run
    (by start) that put values in bucket ``i``.
    """

    bounds: list[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    exemplars: list[tuple[int, str, str, float, float] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)
        self.exemplars = self.exemplars or [None] * (len(self.bounds) + 1)

    def _exemplar(self, i: int, run: RunInfo, value: float) -> None:
        old = self.exemplars[i]
        if old is None or run.start_ns >= old[0]:
            self.exemplars[i] = (run.start_ns, run.trace_id, run.span_id, value, run.end_ns / 1e9)

    def add_summary(self, summary: OutputSummary, run: RunInfo) -> None:
        """Fold one run's sketch in bulk (one pass over its buckets, not per value).

        Each sketch bucket counts at its representative value (``Sketch.value``, inlined:
        the same float operations); the exemplar of a histogram bucket is the sketch
        bucket with the most values in it (ties: the greater value).
        """
        sk = summary.sketch
        if sk is None or summary.count == 0:
            return
        bounds, counts = self.bounds, self.counts
        lg, off, exp = math.log(sk.gamma), math.log(2.0 / (sk.gamma + 1.0)), math.exp
        best: dict[int, tuple[int, float]] = {}
        if sk.zero_count:
            i = bisect_left(bounds, 0.0)
            counts[i] += sk.zero_count
            best[i] = (sk.zero_count, 0.0)
        for store, sign in ((sk.positive, 1.0), (sk.negative, -1.0)):
            for index, n in store.items():
                if not n:
                    continue
                x = index * lg + off
                value = exp(x if x < 709.78 else 709.78)
                if sign < 0:
                    value = -value
                i = bisect_left(bounds, value)  # bucket le=b holds v <= b
                counts[i] += n
                old = best.get(i)
                if old is None or (n, value) > old:
                    best[i] = (n, value)
        self.total += summary.sum or 0.0
        for i, (_, value) in best.items():
            self._exemplar(i, run, value)

    def add_value(self, value: float, run: RunInfo | None = None) -> None:
        i = bisect_left(self.bounds, value)
        self.counts[i] += 1
        self.total += value
        if run is not None:
            self._exemplar(i, run, value)

    def cumulative(self) -> list[int]:
        out, acc = [], 0
        for c in self.counts:
            acc += c
            out.append(acc)
        return out


@dataclass
class Latest:
    """Gauges of the newest run that reported an output (computed once per new latest)."""

    values: int
    null_ratio: float | None
    invalid_ratio: float | None
    quantiles: dict[float, float]
    shares: dict[str, float]


def latest_gauges(s: OutputSummary, guard: LabelGuard) -> Latest:
    total = s.count + s.null_count + s.invalid_count
    quantiles: dict[float, float] = {}
    if s.sketch is not None and s.count > 0:  # as OutputSummary.quantile, in one pass
        for q, v in zip(QUANTILES, s.sketch.quantiles(QUANTILES), strict=True):
            if v is not None:
                if s.min is not None and s.max is not None:
                    v = min(max(v, s.min), s.max)
                quantiles[q] = v
    shares: dict[str, float] = {}
    if s.categories and s.count > 0:
        ranked = sorted(s.categories.items(), key=lambda kv: (-kv[1], kv[0]))
        top = ranked[:MAX_CATEGORY_SERIES]
        rest = s.count - sum(n for _, n in top)
        for cat, n in top:
            label = guard("category", cat)
            shares[label] = shares.get(label, 0.0) + n / s.count
        if rest > 0:
            shares[OTHER] = shares.get(OTHER, 0.0) + rest / s.count
    return Latest(
        values=total,
        null_ratio=s.null_count / total if total else None,
        invalid_ratio=s.invalid_count / total if total else None,
        quantiles=quantiles,
        shares=shares,
    )


def _store(raw: Any) -> dict[int, int]:
    if not raw:
        return {}
    return dict(zip(map(int, raw), map(int, raw.values()), strict=True))


def decode_summary(data: Mapping[str, Any]) -> OutputSummary:
    """Rebuild a summary from the index (``OutputSummary.to_json`` form).

    The processor validated it on receipt (``from_event_attributes``), so only the shape
    and the count/sketch consistency are checked again: ~10x cheaper than ``from_json``,
    which matters when a cold scrape folds a whole index. ``ValueError`` when malformed.
    """
    try:
        kind = data["kind"]
        s = OutputSummary(
            str(data["name"]),
            kind,
            int(data["count"]),
            int(data.get("null_count") or 0),
            int(data.get("invalid_count") or 0),
        )
        sk: Any = data.get("sketch")
        if kind == sc.OUTPUT_KIND_NUMERIC:
            for key in ("sum", "min", "max"):
                if data.get(key) is not None:
                    setattr(s, key, float(data[key]))
            s.sketch = Sketch(
                float(sk["gamma"]),
                int(sk.get("zero_count") or 0),
                _store(sk.get("positive")),
                _store(sk.get("negative")),
            )
            if s.sketch.count != s.count:
                raise ValueError(f"count {s.count} differs from the sketch total")
        elif kind == sc.OUTPUT_KIND_CATEGORICAL:
            s.categories = {str(k): int(v) for k, v in (data.get("categories") or {}).items()}
            s.other_count = int(data.get("other_count") or 0)
            distinct = data.get("distinct_count")
            s.distinct_count = None if distinct is None else int(distinct)
        else:
            raise ValueError(f"unknown kind {kind!r}")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed summary: {type(exc).__name__}: {exc}") from None
    return s
