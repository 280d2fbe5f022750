"""Sustained ingest rate of `otel-mltrace serve`: pre-encoded OTLP batches of component-run
spans, sent by load generators in separate processes, over OTLP/HTTP and OTLP/gRPC, into
SQLite and into a throwaway PostgreSQL. Target (issue 3): >= 20,000 spans/s into SQLite on
a 2-core machine (the OTel Collector's published OTLP pass-through figure is ~12,000
spans/s per core).

    python benchmarks/bench_ingest.py                     # both backends, both protocols
    python benchmarks/bench_ingest.py --backend sqlite --protocol http --spans 200000
    python benchmarks/bench_ingest.py --batch 500 --senders 2 --clients 4 --rounds 3
    python benchmarks/bench_ingest.py --stages --backend sqlite   # in-process CPU per stage

The collector is a real ``otel-mltrace serve`` child process (with its default ingest
workers); every acknowledged span is durably committed (SQLite: WAL fsynced before the
answer / PostgreSQL ``synchronous_commit=on``), and the run count in the index is checked
after each round. Encoding happens before the clock starts; the clock runs from the first
request to the last acknowledgement. One warm-up round per collector is not counted
(``--no-warmup`` counts from the start).

``--stages`` instead times the collector's stages in one thread, in process (CPU time per
span, best of the rounds): protobuf parse, ``decode_request``, ``ingest_rows.prepare`` (rows and
JSON), what an ingest worker runs instead of those two (``decode_and_prepare`` with the
C-built rows), and the store write of a group commit of ``--clients`` requests (CPU, and
wall time including the durable commit).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "collector")]

import httpx  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402

from benchmarks._common import databases  # noqa: E402
from otel_mltrace import semconv  # noqa: E402
from tests.otlp_builders import GrpcSender, request, run_span  # noqa: E402
from tests.serve_process import ServeProcess  # noqa: E402

TARGET_SQLITE = 20_000
COMPONENTS = ["ingest", "clean", "featurize", "train", "evaluate", "predict", "score", "export"]


def encode_batches(tag: str, batches: int, spans: int) -> list[bytes]:
    """Realistic run spans: 2 versioned inputs, 1 output, 2 params, 1 metric, code attrs."""
    out = []
    start = time.time_ns() - 3600 * 10**9
    for b in range(batches):
        runs = []
        for i in range(spans):
            n = b * spans + i
            span = run_span(
                COMPONENTS[n % len(COMPONENTS)],
                run_id=f"{tag}-{n:09d}",
                inputs=[
                    f"s3://lake/{tag}/in/{n % 977}.parquet@sha256:{n % 977:064x}",
                    "bq://proj.ds.features@v:3",
                ],
                outputs=[f"s3://lake/{tag}/out/{n}.parquet@sha256:{n:064x}"],
                start_ns=start + n * 1000,
            )
            span.attributes.extend(
                [
                    KeyValue(key="mltrace.param.lr", value=AnyValue(double_value=0.01)),
                    KeyValue(key="mltrace.param.seed", value=AnyValue(int_value=n % 7)),
                    KeyValue(key="mltrace.metric.rows", value=AnyValue(int_value=1000 + n)),
                    KeyValue(key=semconv.CODE_FUNCTION, value=AnyValue(string_value="step")),
                    KeyValue(key=semconv.CODE_FILE, value=AnyValue(string_value="/app/p.py")),
                ]
            )
            runs.append(span)
        out.append(request(runs, service="bench-ingest").SerializeToString())
    return out


def _sender(
    protocol: str, url: str, bodies: list[bytes], clients: int, conn: Connection, go: Any
) -> None:
    """Load generator process: ``clients`` threads, each with its own connection."""
    from concurrent.futures import ThreadPoolExecutor

    retries = 0
    if protocol == "http":
        pool = [httpx.Client(timeout=120) for _ in range(clients)]

        def send(i: int) -> int:
            client = pool[i % clients]
            while True:
                resp = client.post(
                    url + "/v1/traces",
                    content=bodies[i],
                    headers={"Content-Type": "application/x-protobuf"},
                )
                if resp.status_code == 200:
                    return 0
                if resp.status_code in (429, 503):
                    time.sleep(float(resp.headers.get("Retry-After", "1")) / 10)
                    continue
                raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")

    else:
        import grpc

        senders = [GrpcSender(url) for _ in range(clients)]

        def send(i: int) -> int:
            while True:
                try:
                    senders[i % clients].send(bodies[i], timeout_s=120)
                    return 0
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    time.sleep(0.1)

    warm = request([]).SerializeToString()
    for c in range(clients):  # connect before the clock starts
        if protocol == "http":
            pool[c].post(url + "/v1/traces", content=warm,
                         headers={"Content-Type": "application/x-protobuf"})  # fmt: skip
        else:
            senders[c].send(warm)
    conn.send("ready")
    go.wait()
    with ThreadPoolExecutor(clients) as ex:
        # each client thread walks its own slice in order
        def lane(c: int) -> int:
            return sum(send(i) for i in range(c, len(bodies), clients))

        cpu0 = time.process_time()
        retries = sum(ex.map(lane, range(clients)))
    conn.send(("done", time.time(), retries, time.process_time() - cpu0))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _collector_cpu(serve: ServeProcess) -> tuple[float, float]:
    """CPU seconds of the collector process and of its children (the decode workers)."""
    children = 0.0
    for child in serve.children():
        try:
            children += _cpu_seconds(child)
        except OSError:
            continue
    return _cpu_seconds(serve.proc.pid), children


def one_round(
    serve: ServeProcess, protocol: str, tag: str, args: argparse.Namespace
) -> tuple[float, int, list[float]]:
    """Elapsed seconds, spans sent, and CPU us/span of [collector, workers, load generator]."""
    per_sender = args.spans // args.senders // args.batch
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    url = serve.http_url if protocol == "http" else serve.grpc_url
    procs, pipes = [], []
    for s in range(args.senders):
        bodies = encode_batches(f"{tag}s{s}", per_sender, args.batch)
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_sender, args=(protocol, url, bodies, args.clients, child, go))
        p.start()
        procs.append(p)
        pipes.append(parent)
    for parent in pipes:
        if not parent.poll(120):
            raise RuntimeError("load generator did not get ready")
        assert parent.recv() == "ready"
    cpu_before = _collector_cpu(serve)
    start = time.time()
    go.set()
    ends, load_cpu = [], 0.0
    for parent in pipes:
        if not parent.poll(1800):
            raise RuntimeError("load generator did not finish")
        _, end, _, used = parent.recv()
        ends.append(end)
        load_cpu += used
    cpu_after = _collector_cpu(serve)
    for p in procs:
        p.join(60)
    elapsed = max(ends) - start
    spans = per_sender * args.batch * args.senders
    cpu = [cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1], load_cpu]
    return elapsed, spans, [c / spans * 1e6 for c in cpu]


def bench_stages(backend: str, db: str, args: argparse.Namespace) -> list[str]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from mltrace_collector.index.decode.processor import decode_request
    from mltrace_collector.index.store import open_store
    from mltrace_collector.index.store.ingest_rows import prepare
    from mltrace_collector.service.ingest.decode_workers import decode_and_prepare

    bodies = encode_batches(f"{backend}-stages", args.spans // args.batch, args.batch)
    n = len(bodies) * args.batch
    best: list[float] = []
    for r in range(args.rounds):
        store = open_store(db)
        cpu = [0.0] * 6
        clock = time.process_time
        for g in range(0, len(bodies), args.clients):
            group = []
            for body in bodies[g : g + args.clients]:
                t0 = clock()
                req = ExportTraceServiceRequest.FromString(body)
                t1 = clock()
                batch = decode_request(req, body)
                t2 = clock()
                prepare(batch.runs, batch.record_chunks)
                t3 = clock()
                decoded = decode_and_prepare(req, body, keep_runs=False)  # a worker's path
                t4 = clock()
                assert decoded.rows is not None
                group.append(decoded.rows)
                cpu[0] += t1 - t0
                cpu[1] += t2 - t1
                cpu[2] += t3 - t2
                cpu[5] += t4 - t3
            t3, w = clock(), time.perf_counter()
            store.ingest_prepared(group)
            cpu[3] += clock() - t3
            cpu[4] += time.perf_counter() - w
        store.close()
        per = [c / n * 1e6 for c in cpu]
        best = per if not best else [min(a, b) for a, b in zip(best, per, strict=True)]
        bodies = encode_batches(f"{backend}-stages-r{r + 1}", len(bodies), args.batch)
    return [
        f"{backend:8} stages (us/span, best of {args.rounds} x {n:,} spans): parse "
        f"{best[0]:.1f}, decode {best[1]:.1f}, prepare {best[2]:.1f} (a decode worker's "
        f"decode + prepare with the C rows: {best[5]:.1f}), write cpu {best[3]:.1f} "
        f"(wall {best[4]:.1f}, group of {args.clients} x {args.batch})"
    ]


def bench_backend(backend: str, db: str, workdir: Path, args: argparse.Namespace) -> list[str]:
    lines = []
    extra = ["--log-level", "WARNING", "--max-inflight", str(args.max_inflight)]
    if args.workers is not None:
        extra += ["--decode-workers", str(args.workers)]
    serve = ServeProcess.start(db, workdir / f"serve-{backend}.log", extra_args=extra)
    try:
        if args.warmup:
            # A fresh collector first grows its WAL file (to ~270 MB here) and its worker
            # caches; a sustained rate is the steady state after that, so one round is not
            # counted. It is printed all the same.
            elapsed, spans, _ = one_round(serve, args.protocol[0], f"{backend}-warm", args)
            print(f"  {backend:8} warm-up round (not counted): {spans / elapsed:,.0f} spans/s")
        stored_before = httpx.get(serve.http_url + "/healthz").json()["runs"]
        for protocol in args.protocol:
            rates = []
            for r in range(args.rounds):
                before = httpx.get(serve.http_url + "/healthz", timeout=60).json()
                elapsed, spans, cpu = one_round(serve, protocol, f"{backend}-{protocol}-r{r}", args)
                health = httpx.get(serve.http_url + "/healthz", timeout=60).json()
                stored = health["runs"]
                writer = {k: (health[k] - before[k]) for k in ("writer_busy_s", "writer_cpu_s")}
                commits = health["commits"] - before["commits"]
                assert stored - stored_before == spans, (stored, stored_before, spans)
                stored_before = stored
                rates.append(spans / elapsed)
                rate = f"{spans / elapsed:9,.0f}"
                print(f"  {backend:8} {protocol:4} round {r + 1}: {spans} spans in "
                      f"{elapsed:6.2f} s = {rate} spans/s; CPU us/span: collector "
                      f"{cpu[0]:.1f}, decode workers {cpu[1]:.1f}, load generator "
                      f"{cpu[2]:.1f}; writer {writer['writer_cpu_s'] / spans * 1e6:.1f} CPU, "
                      f"{writer['writer_busy_s'] / spans * 1e6:.1f} wall, "
                      f"{spans / max(commits, 1):,.0f} spans/commit", flush=True)  # fmt: skip
            med = statistics.median(rates)
            verdict = ""
            if backend == "sqlite":
                verdict = "  MEETS target" if med >= TARGET_SQLITE else "  BELOW target"
                verdict += f" ({TARGET_SQLITE:,} spans/s)"
            lines.append(
                f"{backend:8} {protocol:4}  median {med:9,.0f} spans/s  "
                f"(best {max(rates):,.0f}; {args.rounds} rounds of {args.spans:,} spans, "
                f"batch {args.batch}, {args.senders} sender procs x {args.clients} clients)"
                + verdict
            )
        assert serve.terminate() == 0
    finally:
        serve.kill()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--protocol", choices=["http", "grpc"], action="append")
    parser.add_argument("--spans", type=int, default=100_000, help="spans per round")
    parser.add_argument("--batch", type=int, default=512, help="spans per OTLP request")
    parser.add_argument("--senders", type=int, default=1, help="load generator processes")
    parser.add_argument("--clients", type=int, default=4, help="connections per sender")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, help="collector ingest workers (default: its own)")
    parser.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one uncounted round first (a fresh collector grows its WAL file)",
    )
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument("--stages", action="store_true", help="in-process CPU per stage")
    args = parser.parse_args()
    args.backend = args.backend or ["sqlite", "postgres"]
    args.protocol = args.protocol or ["http", "grpc"]
    print(f"bench_ingest: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="mltrace-bench-ingest-"))
    summary: list[str] = []

    def run(backend: str, db: str) -> list[str]:
        if args.stages:
            return bench_stages(backend, db, args)
        return bench_backend(backend, db, workdir, args)

    try:
        for backend, db in databases(args.backend, workdir / "bench.db", summary):
            summary += run(backend, db)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(["", "summary:", *summary]))


if __name__ == "__main__":
    main()
