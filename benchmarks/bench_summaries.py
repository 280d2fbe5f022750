"""Benchmark: summarizing 1,000,000 float64 outputs vs a Prometheus histogram per value.

What a pipeline pays to report an output distribution: ``summarize`` + ``to_event_attributes``
(one mergeable sketch, sent as one span event) against the usual alternative of calling
``prometheus_client.Histogram.observe`` once per value (default buckets, fresh registry).
Both run in this process on the same values; each is timed ``--repeat`` times, best kept.
Target: the summary is at least 30x faster.

Usage::

    .venv/bin/python benchmarks/bench_summaries.py [--n 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from importlib.metadata import version

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from otel_mltrace.distributions import summarize, to_event_attributes


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Shortest wall time of ``repeat`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of float64 values")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method")
    args = parser.parse_args()

    values = np.random.default_rng(42).normal(loc=0.5, scale=2.0, size=args.n)
    as_list = values.tolist()  # Histogram.observe takes Python floats; not timed

    def sketch() -> object:
        return to_event_attributes(summarize("prediction", values))

    def prometheus() -> object:
        registry = CollectorRegistry()
        hist = Histogram("prediction", "prediction values", registry=registry)
        for v in as_list:
            hist.observe(v)
        return hist

    sketch()  # warm-up: lazy numpy import, first-touch allocations
    t_sketch = best_of(args.repeat, sketch)
    t_prom = best_of(args.repeat, prometheus)
    attrs = to_event_attributes(summarize("prediction", values))
    print(f"python {platform.python_version()} numpy {np.__version__} on {platform.machine()}")
    print(f"prometheus_client {version('prometheus_client')}")
    print(f"values: {args.n:,} float64, best of {args.repeat}")
    print(f"summarize + to_event_attributes: {t_sketch:.4f} s")
    print(f"Histogram.observe per value:     {t_prom:.4f} s")
    print(f"ratio: {t_prom / t_sketch:.1f}x (target >= 30x)")
    print(f"event size: {len(json.dumps(attrs)):,} bytes as JSON, {len(attrs)} attributes")


if __name__ == "__main__":
    main()
