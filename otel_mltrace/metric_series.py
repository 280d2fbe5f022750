"""Metric series: every ``run.log_metric(name, value, step=…)`` call of a run, bounded.

A run that logs a metric more than once (a loss per epoch) keeps the series, not just the
last value. When the run ends, the series of every metric logged at least twice travels
on the run span as one JSON attribute, ``mltrace.metric_series``; the collector stores it
with the run, and ``otel-mltrace inspect`` shows last / min / max / count (the series with
``--format json``). ``mltrace.metric.<name>`` keeps carrying the last value.

Bound: at most ``MLTRACE_METRIC_SERIES_POINTS`` points (default 1000) per metric and run.
Past that, the series is thinned: every other stored point is dropped and from then on
only every 2nd (then 4th, …) call is stored, so the points stay spread over the whole run;
the newest point is always kept. ``count``, ``min``, ``max`` and ``last`` are exact over
every call, and ``thinned`` says how many points were dropped. All series of one run
together ship at most ``MAX_POINTS_PER_RUN`` points (the longest series are halved until
they fit), so the attribute stays well under the 4 MiB an OTLP/gRPC message may carry.

Example::

    with mlt.run("train") as run:
        for epoch in range(100):
            run.log_metric("loss", loss_of(epoch), step=epoch)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["MAX_POINTS_PER_RUN", "MetricSeries", "SeriesSet", "parse_series", "to_ns"]

MAX_POINTS_PER_RUN = 20_000
"""Points shipped for all series of one run together (~40 bytes each in the JSON)."""


def to_ns(timestamp: float | int | datetime | None) -> int:
    """``timestamp`` (a ``datetime`` or Unix seconds) -> Unix ns; None -> now."""
    if timestamp is None:
        return time.time_ns()
    if isinstance(timestamp, datetime):
        return int(timestamp.timestamp() * 1e9)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise TypeError(
            f"timestamp must be a datetime or Unix seconds, got {type(timestamp).__name__} "
            f"{timestamp!r}"
        )
    return int(timestamp * 1e9)


@dataclass
class MetricSeries:
    """The bounded series of one metric (see the module docstring)."""

    max_points: int
    steps: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    count: int = 0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    last: float = 0.0
    stride: int = 1
    thinned: int = 0
    _pending: tuple[int, int, float] | None = None

    def add(self, value: float, step: int | None, ts_ns: int) -> None:
        step = self.count if step is None else step
        self.count += 1
        self.minimum, self.maximum, self.last = (
            min(self.minimum, value),
            max(self.maximum, value),
            value,
        )
        if (self.count - 1) % self.stride:
            if self._pending is not None:
                self.thinned += 1
            self._pending = (step, ts_ns, value)  # the newest point is shipped even if skipped
            return
        if self._pending is not None:
            self.thinned += 1
            self._pending = None
        self.steps.append(step)
        self.timestamps.append(ts_ns)
        self.values.append(value)
        if len(self.values) >= self.max_points:
            self.thinned += len(self.values) - len(self.values[::2])
            self.steps, self.timestamps = self.steps[::2], self.timestamps[::2]
            self.values = self.values[::2]
            self.stride *= 2

    def to_dict(self) -> dict[str, Any]:
        steps, stamps, values = list(self.steps), list(self.timestamps), list(self.values)
        if self._pending is not None:
            steps.append(self._pending[0])
            stamps.append(self._pending[1])
            values.append(self._pending[2])
        return {
            "count": self.count, "min": self.minimum, "max": self.maximum, "last": self.last,
            "thinned": self.thinned, "steps": steps, "timestamps_ns": stamps, "values": values,
        }  # fmt: skip


class SeriesSet:
    """All metric series of one run."""

    def __init__(self, max_points: int) -> None:
        if max_points < 2:
            raise ValueError(
                f"MLTRACE_METRIC_SERIES_POINTS={max_points} is too small; use 2 or more"
            )
        self.max_points = max_points
        self.series: dict[str, MetricSeries] = {}

    def add(self, name: str, value: float, step: int | None, timestamp: Any) -> None:
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise TypeError(f"metric {name!r}: step must be an int >= 0, got {step!r}")
        ts_ns = to_ns(timestamp)
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = MetricSeries(self.max_points)
        series.add(value, step, ts_ns)

    def to_json(self) -> str | None:
        """The span attribute value: series of metrics logged at least twice (else None)."""
        found = {n: s.to_dict() for n, s in sorted(self.series.items()) if s.count > 1}
        total = sum(len(d["values"]) for d in found.values())
        while total > MAX_POINTS_PER_RUN:
            longest = max(found.values(), key=lambda d: len(d["values"]))
            before = len(longest["values"])
            for col in ("steps", "timestamps_ns", "values"):  # keep the newest point
                longest[col] = longest[col][-1::-2][::-1]
            longest["thinned"] += before - len(longest["values"])
            total -= before - len(longest["values"])
        return json.dumps(found, separators=(",", ":")) if found else None


def parse_series(attributes: dict[str, Any], key: str) -> dict[str, Any]:
    """The stored ``mltrace.metric_series`` of a run; ``{}`` if none, an error entry if bad."""
    raw = attributes.get(key)
    if raw is None:
        return {}
    try:
        data = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {"_error": f"{key} is not a JSON object; the SDK that sent it is incompatible"}
    return data
