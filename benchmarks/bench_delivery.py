"""Tight-loop throughput of ``otel_mltrace.run()`` with delivery guaranteed (issue 11).

Usage::

    python benchmarks/bench_delivery.py                      # 20,000 runs, 3 rounds
    python benchmarks/bench_delivery.py --runs 50000 --rounds 5
    python benchmarks/bench_delivery.py --sides raw,embedded  # no collector child

Each round, interleaved so machine noise hits every side alike:

* **raw**: a raw OTel span loop with the same attributes into a processor that drops every
  span (the cost floor of making a span at all);
* **run-drop**: the ``mlt.run`` loop into a processor that drops every span (what
  ``mlt.run`` itself costs the user's loop: the ceiling of any delivery in-process);
* **embedded**: ``configure(index=<fresh file>)``, the loop, ``shutdown()``;
* **otlp-grpc** / **otlp-http**: ``configure(endpoint=<otel-mltrace serve child>)``, the
  loop, ``shutdown()`` (which also sends what the loop spooled).

"loop" is the time the user's loop took; "delivered" is until ``shutdown()`` returned, i.e.
until every run was indexed / acknowledged by the collector. Loss = runs - runs found in
the index afterwards (must be 0). Ratios are median delivered throughput / median raw.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "collector")]

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

import otel_mltrace as mlt  # noqa: E402
from benchmarks._common import DropSpans, raw_run_span  # noqa: E402
from tests.serve_process import ServeProcess  # noqa: E402
from tests.support_index import runs_in  # noqa: E402

INPUTS = ["s3://bucket/raw.csv"]
OUTPUTS = ["s3://bucket/features.parquet"]
SIDES = ("raw", "run-drop", "embedded", "otlp-grpc", "otlp-http")


def _raw(n: int) -> tuple[float, float]:
    provider = TracerProvider()
    provider.add_span_processor(DropSpans())
    tracer = provider.get_tracer("bench")
    start = time.perf_counter()
    for _ in range(n):
        raw_run_span(tracer, "step", "_raw", INPUTS, OUTPUTS)
    elapsed = time.perf_counter() - start
    return elapsed, elapsed


def _run_drop(n: int) -> tuple[float, float]:
    provider = TracerProvider()
    provider.add_span_processor(DropSpans())
    mlt.configure(service_name="bench-delivery", tracer_provider=provider, add_exporter=False)
    start = time.perf_counter()
    for _ in range(n):
        with mlt.run("step", inputs=INPUTS, outputs=OUTPUTS):
            pass
    elapsed = time.perf_counter() - start
    mlt.shutdown()
    return elapsed, elapsed


def _ours(n: int, **configure: str) -> tuple[float, float, int, int]:
    """(loop seconds, seconds until delivered, spooled, dropped)."""
    mlt.configure(service_name="bench-delivery", **configure)  # type: ignore[arg-type]
    start = time.perf_counter()
    for _ in range(n):
        with mlt.run("step", inputs=INPUTS, outputs=OUTPUTS):
            pass
    loop = time.perf_counter() - start
    report = mlt.shutdown(timeout_s=600)
    delivered = time.perf_counter() - start
    return loop, delivered, report.spooled, report.dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"comma-separated subset of {','.join(SIDES)} (raw is always measured)",
    )
    args = parser.parse_args()
    n = args.runs
    sides = ["raw", *[s for s in SIDES[1:] if s in args.sides.split(",")]]
    unknown = set(args.sides.split(",")) - set(SIDES)
    if unknown:
        parser.error(f"unknown side(s) {', '.join(sorted(unknown))}; choose from {SIDES}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    otlp = any(s.startswith("otlp") for s in sides)
    serve = ServeProcess.start(str(tmp / "collector.db"), tmp / "serve.log") if otlp else None
    loop_s: dict[str, list[float]] = {s: [] for s in sides}
    done_s: dict[str, list[float]] = {s: [] for s in sides}
    notes: dict[str, list[str]] = {s: [] for s in sides}
    loss: dict[str, int] = dict.fromkeys(sides, 0)
    sent_to_collector = 0
    try:
        for r in range(args.rounds):
            for side in sides:
                if side == "raw":
                    loop, done = _raw(n)
                elif side == "run-drop":
                    loop, done = _run_drop(n)
                elif side == "embedded":
                    db = tmp / f"index-{r}.db"
                    loop, done, _, dropped = _ours(n, index=str(db))
                    loss[side] += n - runs_in(db)
                else:
                    assert serve is not None
                    url = serve.grpc_url if side == "otlp-grpc" else serve.http_url
                    proto = "grpc" if side == "otlp-grpc" else "http/protobuf"
                    loop, done, spooled, dropped = _ours(
                        n, endpoint=url, protocol=proto, spool_dir=str(tmp / "spool")
                    )
                    sent_to_collector += n
                    notes[side].append(f"{spooled} via spool")
                    loss[side] += dropped
                loop_s[side].append(loop)
                done_s[side].append(done)
        time.sleep(1)
        collector_loss = sent_to_collector - runs_in(tmp / "collector.db") if otlp else 0
    finally:
        if serve is not None:
            serve.terminate()
    load = os.getloadavg()
    print(f"runs per round: {n}, rounds: {args.rounds}; load average {load[0]:.2f} {load[1]:.2f}")
    raw_rate = n / statistics.median(done_s["raw"])
    print(f"{'side':<10} {'loop runs/s':>22} {'delivered runs/s':>26} {'vs raw':>7}  loss")
    for side in sides:
        rates = sorted(n / s for s in done_s[side])
        loops = sorted(n / s for s in loop_s[side])
        med = statistics.median(rates)
        lost = str(loss[side]) if side not in ("raw", "run-drop") else "-"
        if side.startswith("otlp"):
            lost = f"{loss[side]} dropped; collector total missing {collector_loss}"
        print(
            f"{side:<10} {statistics.median(loops):>9.0f} ({loops[0]:.0f}-{loops[-1]:.0f})"
            f" {med:>12.0f} ({rates[0]:.0f}-{rates[-1]:.0f}) {med / raw_rate:>6.2f}x  {lost}"
            + (f"  [{', '.join(notes[side])}]" if notes[side] else "")
        )


if __name__ == "__main__":
    main()
