"""Benchmark: ``/metrics`` scrape cost with the staleness gauge on a 20,000-run fan-out.

Builds an index (SQLite) of one ``ingest`` run writing ``s3://bench/clean`` and ``--runs``
``score`` runs spread over ``--components`` components, each reading it and writing its own
output, then a second ``ingest`` run that overwrites ``s3://bench/clean``: every ``score``
run is live and stale. Starts a real collector on loopback and times ``GET /metrics``:

- cold: the first scrape (folds the index, computes staleness);
- warm: later scrapes with nothing new (median of ``--repeat``);
- after 1 new run: a scrape 2 s after one new run was ingested (median of ``--repeat``);
- starting a pass: a scrape after one new run with the staleness recompute interval forced
  to have elapsed, so that it starts a staleness pass (the old code: computes it inline;
  the new one: starts it in the background and waits at most ``WAIT_S`` for it).

Also times ``otel-mltrace stale``'s query (``LineageQueries.stale``) on the same index.

Usage::

    .venv/bin/python benchmarks/bench_stale_gauge.py [--runs 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "collector")]


from benchmarks._common import timed_get  # noqa: E402
from mltrace_collector.index.model import RunRecord  # noqa: E402
from mltrace_collector.index.queries.lineage_queries import LineageQueries  # noqa: E402
from mltrace_collector.service.collector import Collector, CollectorSettings  # noqa: E402
from mltrace_collector.service.exporters.prometheus import metrics_exporter  # noqa: E402


def run(
    run_id: str, comp: str, start: int, ins: tuple[str, ...], outs: tuple[str, ...]
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        component=comp,
        trace_id=f"{abs(hash(run_id)) % 16**32:032x}",
        span_id=f"{start % 16**16:016x}",
        parent_span_id=None,
        service="bench",
        start_ns=start,
        end_ns=start + 1_000,
        status="ok",
        status_message=None,
        inputs=ins,
        outputs=outs,
    )


def stats(xs: list[float]) -> str:
    ms = [x * 1000 for x in xs]
    return f"median {statistics.median(ms):8.1f} ms  (range {min(ms):.1f} .. {max(ms):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    t0 = time.time_ns() - 3_600 * 10**9
    with tempfile.TemporaryDirectory() as tmp:
        settings = CollectorSettings.resolve(
            db=str(Path(tmp) / "bench.db"), grpc_address="127.0.0.1:0", http_address="127.0.0.1:0"
        )
        collector = Collector(settings)
        clean = "s3://bench/clean"
        runs = [run("ingest-0", "ingest", t0, (), (clean,))]
        runs += [
            run(f"score-{i}", f"score{i % args.components:03d}", t0 + 10_000 * (i + 1), (clean,),
                (f"s3://bench/score/{i}",))
            for i in range(args.runs)
        ]  # fmt: skip
        runs.append(run("ingest-1", "ingest", t0 + 10_000 * (args.runs + 2), (), (clean,)))
        collector.store.ingest(runs)
        collector.start()
        url = collector.http_endpoint + "/metrics"
        try:
            cold, text = timed_get(url)
            warm = [timed_get(url)[0] for _ in range(args.repeat)]
            after = []
            for k in range(args.repeat):
                time.sleep(2.0)  # past the exporter's minimum recompute interval
                start = t0 + 10_000 * (args.runs + 10 + k)
                collector.store.ingest([run(f"extra-{k}", "extra", start, (clean,), ())])
                after.append(timed_get(url)[0])
            exporter = metrics_exporter(collector)
            assert exporter is not None
            kicked = []  # scrapes that start a staleness pass (the interval forced to elapse)
            for k in range(args.repeat):
                start = t0 + 10_000 * (args.runs + 100 + k)
                collector.store.ingest([run(f"kick-{k}", "extra", start, (clean,), ())])
                exporter.stale._full_at = 0.0
                kicked.append(timed_get(url)[0])
                time.sleep(4.0)  # let that pass finish
            final = timed_get(url)[1]
            queries = LineageQueries(collector.store)
            cli, passes = [], []
            for _ in range(max(1, args.repeat // 2)):
                start_t = time.perf_counter()
                rows = queries.stale(86400.0)
                cli.append(time.perf_counter() - start_t)
                try:  # the gauges' pass (a background thread since it exists)
                    from mltrace_collector.index.queries.stale_live import live_staleness
                except ImportError:
                    continue
                start_t = time.perf_counter()
                live_staleness(queries)
                passes.append(time.perf_counter() - start_t)
        finally:
            collector.stop()
    stale_lines = [ln for ln in final.splitlines() if ln.startswith("mltrace_component_stale")]
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"{len(runs):,} runs ({args.runs:,} score runs below one overwritten input)")
    print(f"stale rows (otel-mltrace stale): {sum(r['stale'] for r in rows):,} of {len(rows):,}")
    print(f"stale series: {len(stale_lines)}; e.g. {stale_lines[:2]}")
    print(f"cold scrape:                 {cold * 1000:8.1f} ms")
    print(f"warm scrape (nothing new):   {stats(warm)}")
    print(f"scrape after 1 new run:      {stats(after)}")
    print(f"scrape starting a pass:      {stats(kicked)}")
    print(f"stale query (the CLI's):     {stats(cli)}")
    if passes:
        print(f"gauge pass (background):     {stats(passes)}")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
