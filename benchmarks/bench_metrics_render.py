"""Benchmark: ``/metrics`` render time of the collector for 1,000 (component, output) pairs.

Builds an index of ``--components`` x ``--outputs`` numeric outputs, ``--runs`` runs each
(so drift has a reference), each output summarizing ``--values`` normal values; starts a
real collector on loopback (SQLite) and times ``GET /metrics`` over HTTP:

- cold: the first scrape after start, which folds the whole index;
- warm: later scrapes with nothing new (best of ``--repeat``);
- warm + N runs: a scrape after 1 (then 10) new runs of distinct components, each
  reporting all of its outputs, were ingested (only those pairs are re-encoded).

Targets: warm render and warm + a few runs < 200 ms.

Usage::

    .venv/bin/python benchmarks/bench_metrics_render.py [--components 100] [--outputs 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "collector")]


import numpy as np  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from benchmarks._common import timed_get  # noqa: E402
from mltrace_collector.index.model import RunRecord  # noqa: E402
from mltrace_collector.service.collector import Collector, CollectorSettings  # noqa: E402
from otel_mltrace.distributions import summarize  # noqa: E402
from tests.support_records import summarized_run  # noqa: E402


def make_run(component: str, i: int, outputs: dict[str, dict[str, object]]) -> RunRecord:
    start = time.time_ns() - 3_600_000_000_000 + i * 1_000_000_000
    return summarized_run(
        f"{component}-{i}",
        component,
        i,
        outputs,
        start_ns=start,
        duration_ns=2_000_000_000,
        service="bench",
        artifacts="s3://bench",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=100)
    parser.add_argument("--outputs", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=0.0,
        help="wait after the cold scrape so the index is older than the exporter's 60 s "
        "re-read window (steady state of a long-running collector); 0 = measure at once",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    summaries = [
        summarize("x", rng.normal(rng.uniform(-5, 5), rng.uniform(0.5, 3), args.values)).to_json()
        for _ in range(20)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        settings = CollectorSettings.resolve(
            db=str(Path(tmp) / "bench.db"), grpc_address="127.0.0.1:0", http_address="127.0.0.1:0"
        )
        collector = Collector(settings)
        runs = []
        for c in range(args.components):
            for i in range(args.runs):
                outs = {
                    f"out{o}": {**summaries[(c + o + i) % 20], "name": f"out{o}"}
                    for o in range(args.outputs)
                }
                runs.append(make_run(f"comp{c:04d}", i, outs))
        collector.store.ingest(runs)
        collector.start()
        url = collector.http_endpoint + "/metrics"
        try:
            cold, text = timed_get(url)
            time.sleep(args.settle_seconds)
            warm = min(timed_get(url)[0] for _ in range(args.repeat))
            after: dict[int, float] = {}
            for n, first in ((1, 0), (10, 1)):  # new runs of components first .. first + n - 1
                fresh = []
                for c in range(first, first + n):
                    outs = {
                        f"out{o}": {**summaries[(c + o + 7) % 20], "name": f"out{o}"}
                        for o in range(args.outputs)
                    }
                    fresh.append(make_run(f"comp{c % args.components:04d}", args.runs, outs))
                collector.store.ingest(fresh)
                after[n], text = timed_get(url)
        finally:
            collector.stop()
    series = sum(len(f.samples) for f in text_string_to_metric_families(text))
    pairs = args.components * args.outputs
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"{pairs:,} (component, output) pairs, {len(runs):,} runs, {args.values:,} values each")
    print(f"exposition: {len(text):,} bytes, {series:,} samples")
    print(f"cold (first scrape, folds the index): {cold * 1000:8.1f} ms")
    print(f"then waited {args.settle_seconds:.0f} s (--settle-seconds)")
    print(f"warm (nothing new), best of {args.repeat}:    {warm * 1000:8.1f} ms  (target < 200 ms)")
    for n, took in after.items():
        print(f"warm + {n} new run(s) (all outputs):   {took * 1000:8.1f} ms  (target < 200 ms)")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
