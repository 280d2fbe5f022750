"""Benchmark: ``run.log_output`` on 1,000,000 values vs ``Histogram.observe`` per value.

``run.log_output`` is timed as a pipeline pays it: inside an active run whose span goes to
an in-memory exporter (summarize + event encoding + span event + metric hooks). Against
it, the usual alternative: ``prometheus_client.Histogram.observe`` once per value (default
buckets, fresh registry). Also shown: ``OutputMetrics.observe_output`` (the in-process
metrics of :mod:`otel_mltrace.metrics`, bulk bucket increments) and the summary alone
(``summarize`` + ``to_event_attributes``, no span) with its event size. Best of ``--repeat``.
Target: ``log_output`` at least 30x faster than ``observe`` per value.

Usage::

    .venv/bin/python benchmarks/bench_log_output.py [--n 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from importlib.metadata import version

import numpy as np
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, Histogram

import otel_mltrace as mlt
from otel_mltrace.distributions import summarize, to_event_attributes
from otel_mltrace.metrics import OutputMetrics


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    values = np.random.default_rng(42).normal(loc=0.5, scale=2.0, size=args.n)
    as_list = values.tolist()  # observe() takes Python floats: conversion not timed

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    mlt.configure(service_name="bench", tracer_provider=provider, add_exporter=False)
    run = mlt.run("bench")
    run.__enter__()

    def log_output() -> object:
        return run.log_output("prediction", values)

    def observe() -> object:
        hist = Histogram("prediction", "values", registry=CollectorRegistry())
        for v in as_list:
            hist.observe(v)
        return hist

    metrics = OutputMetrics(CollectorRegistry())

    def summary_only() -> object:
        return to_event_attributes(summarize("prediction", values))

    def observe_output() -> object:
        return metrics.observe_output("bench", "prediction", values)

    log_output()  # warm-up: lazy imports, first-touch allocations
    t_log = best_of(args.repeat, log_output)
    t_bulk = best_of(args.repeat, observe_output)
    t_summary = best_of(args.repeat, summary_only)
    t_prom = best_of(args.repeat, observe)
    run.__exit__(None, None, None)
    mlt.shutdown()
    print(f"python {platform.python_version()} numpy {np.__version__} on {platform.machine()}")
    print(f"prometheus_client {version('prometheus_client')}; {args.n:,} float64 values")
    print(f"run.log_output (in a run, in-memory exporter): {t_log:.4f} s")
    print(f"OutputMetrics.observe_output (bulk buckets):    {t_bulk:.4f} s")
    print(f"summarize + to_event_attributes (no span):     {t_summary:.4f} s")
    print(f"Histogram.observe per value:                   {t_prom:.4f} s")
    print(f"ratio observe / log_output: {t_prom / t_log:.1f}x (target >= 30x)")
    attrs = to_event_attributes(summarize("prediction", values))
    print(f"event size: {len(json.dumps(attrs)):,} bytes as JSON, {len(attrs)} attributes")


if __name__ == "__main__":
    main()
