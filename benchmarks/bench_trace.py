"""`trace` latency on a synthetic index of 1,000,000 runs with a 100-deep chain and a
10,000-run fan-in. Target (issue 3): p50 < 20 ms for the chain.

    python benchmarks/bench_trace.py                         # SQLite, 1,000,000 runs
    python benchmarks/bench_trace.py --runs 200000 --backend sqlite --backend postgres
    python benchmarks/bench_trace.py --repeat 50 --fanin-repeat 5

The index is built with ``Store.ingest`` in big batches (no OTLP: building is not what is
measured) in a temporary folder that is deleted afterwards; PostgreSQL is a throwaway
server (tests/servers/postgres.py). Background runs form 10-run chains (each reads the
previous one's output) so that ``run_io`` and the artifact indexes have realistic size.
``trace`` runs through ``LineageQueries`` — the code behind the CLI and the HTTP API.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "collector")]

from benchmarks._common import databases  # noqa: E402
from mltrace_collector.index.model import RunRecord  # noqa: E402
from mltrace_collector.index.queries.lineage_queries import LineageQueries  # noqa: E402
from mltrace_collector.index.store import Store, open_store  # noqa: E402

TARGET_CHAIN_P50_MS = 20.0
CHAIN_DEPTH = 100
FANIN = 10_000
T0 = 1_700_000_000 * 10**9


def _run(run_id: str, comp: str, t: int, ins: tuple[str, ...], outs: tuple[str, ...]) -> RunRecord:
    return RunRecord(
        run_id=run_id, component=comp, trace_id=f"{hash(run_id) & (2**128 - 1):032x}",
        span_id=f"{hash(comp + run_id) & (2**64 - 1):016x}", parent_span_id=None,
        service="bench", start_ns=t, end_ns=t + 1000, status="ok", status_message=None,
        inputs=ins, outputs=outs, params={"seed": 1}, metrics={"rows": 10.0},
    )  # fmt: skip


def art(kind: str, n: int) -> str:
    return f"s3://bench/{kind}/{n}.parquet@sha256:{n:064x}"


def chain_runs() -> Iterator[RunRecord]:
    """c0 reads raw data; c_i reads c_{i-1}'s output; trace(chain-out 99) has 100 runs."""
    for i in range(CHAIN_DEPTH):
        ins = (art("chain", i - 1) if i else "s3://bench/chain/raw.csv@sha256:" + "0" * 64,)
        yield _run(f"chain-{i:03d}", f"chain-{i % 10}", T0 + i * 10**6, ins, (art("chain", i),))


def fanin_runs() -> Iterator[RunRecord]:
    """10,000 producers, each from its own raw file, and one consumer reading all outputs."""
    for j in range(FANIN):
        yield _run(f"fan-{j:05d}", "fan-producer", T0 + j * 1000,
                   (art("fanraw", j),), (art("fan", j),))  # fmt: skip
    ins = tuple(art("fan", j) for j in range(FANIN))
    yield _run("fan-consumer", "fan-consumer", T0 + 10**12, ins, (art("fanout", 0),))


def background_runs(n: int) -> Iterator[RunRecord]:
    for k in range(n):
        link = k % 10
        ins = (art("bg", k - 1),) if link else (art("bgraw", k),)
        yield _run(f"bg-{k:08d}", f"bg-step-{link}", T0 + k * 10**5, ins, (art("bg", k),))


def build(store: Store, total: int, batch: int) -> float:
    background = total - CHAIN_DEPTH - FANIN - 1
    start = time.perf_counter()
    pending: list[RunRecord] = []
    done = 0
    for gen in (background_runs(background), chain_runs(), fanin_runs()):
        for run in gen:
            pending.append(run)
            if len(pending) >= batch:
                store.ingest(pending)
                done += len(pending)
                pending = []
                if done % (batch * 20) == 0:
                    rate = done / (time.perf_counter() - start)
                    print(f"  built {done:,} runs ({rate:,.0f}/s)", flush=True)
    store.ingest(pending)
    return time.perf_counter() - start


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench(store: Store, backend: str, args: argparse.Namespace) -> list[str]:
    counts = store.counts()
    if counts["runs"] < args.runs:
        took = build(store, args.runs, args.batch)
        store.analyze()  # planner statistics, as autovacuum would make them within a minute
        counts = store.counts()
        print(f"  {backend}: built {counts['runs']:,} runs, {counts['io']:,} run_io rows in "
              f"{took:,.0f} s", flush=True)  # fmt: skip
    q = LineageQueries(store)
    chain_root = art("chain", CHAIN_DEPTH - 1)
    graph = q.trace(chain_root)
    assert len(graph["runs"]) == CHAIN_DEPTH and not graph["truncated"], len(graph["runs"])
    fan_root = art("fanout", 0)
    fan = q.trace(fan_root)
    assert len(fan["runs"]) == FANIN + 1, len(fan["runs"])
    chain_ms = timed(lambda: q.trace(chain_root), args.repeat)
    by_run_ms = timed(lambda: q.trace(f"chain-{CHAIN_DEPTH - 1:03d}"), args.repeat)
    fan_ms = timed(lambda: q.trace(fan_root), args.fanin_repeat)
    down_ms = timed(lambda: q.downstream("s3://bench/chain/raw.csv@sha256:" + "0" * 64),
                    args.repeat)  # fmt: skip
    lines = []
    for name, ms in (
        (f"trace chain ({CHAIN_DEPTH} runs, from artifact)", chain_ms),
        (f"trace chain ({CHAIN_DEPTH} runs, from run)", by_run_ms),
        (f"downstream chain ({CHAIN_DEPTH} runs, from raw)", down_ms),
        (f"trace fan-in ({FANIN + 1} runs)", fan_ms),
    ):
        verdict = ""
        if name.startswith("trace chain") and "artifact" in name:
            ok = pct(ms, 0.5) < TARGET_CHAIN_P50_MS
            verdict = f"  {'MEETS' if ok else 'MISSES'} target p50 < {TARGET_CHAIN_P50_MS:g} ms"
        lines.append(
            f"{backend:8} {name:44} p50 {pct(ms, 0.5):9.1f} ms  p95 {pct(ms, 0.95):9.1f} ms"
            f"  (n={len(ms)}, index {counts['runs']:,} runs){verdict}"
        )
        print("  " + lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000, help="runs per Store.ingest call")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--fanin-repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"bench_trace: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="mltrace-bench-trace-"))
    summary: list[str] = []
    try:
        for backend, db in databases(args.backend or ["sqlite"], workdir / "trace.db", summary):
            store = open_store(db)
            try:
                summary += bench(store, backend, args)
            finally:
                store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(["", "summary:", *summary]))


if __name__ == "__main__":
    main()
