"""Ingest throughput of ``otel-mltrace serve`` with forwarding on vs off (target >= 0.8x).

Usage::

    python benchmarks/bench_forwarding.py                       # 40k run spans, 3 rounds
    python benchmarks/bench_forwarding.py --batches 200 --spans 200 --clients 4 --rounds 5
    python benchmarks/bench_forwarding.py --downstream jaeger   # Jaeger v2 from bootstrap

Setup, all real processes on 127.0.0.1 free ports:

* downstream: a second ``otel-mltrace serve`` (default) or Jaeger v2 (in-memory storage);
* the collector under test: ``otel-mltrace serve`` (SQLite in a temp dir), once with
  ``MLTRACE_FORWARD_ENDPOINT`` at the downstream (queue large enough for every span, default
  hold window) and once without, rounds interleaved;
* a load generator in a separate process: pre-encoded OTLP/gRPC batches of run spans,
  each run reading the previous batch's outputs (so every consumer gets a producer link),
  sent by ``--clients`` concurrent channels.

Ingest throughput = spans / time until the last export was acknowledged (the index
committed it). With forwarding on, "forwarded" is spans / time until the forwarder's
queue is empty (everything acknowledged downstream), from the same start. The ratio is
median(on) / median(off) of ingest throughput.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "collector")]

from tests.otlp_builders import GrpcSender, request, run_span  # noqa: E402
from tests.servers.jaeger import JaegerServer  # noqa: E402
from tests.servers.ports import free_port  # noqa: E402


def encode_batches(batches: int, spans: int) -> list[bytes]:
    """Chained runs: run j of batch i reads output j of batch i-1 and writes its own."""
    out: list[bytes] = []
    start = time.time_ns() - 3600 * 10**9
    for i in range(batches):
        runs = []
        for j in range(spans):
            inputs = [f"s3://bench/b{i - 1}/{j}@sha256:{(i - 1) * spans + j:064x}"] if i else []
            output = f"s3://bench/b{i}/{j}@sha256:{i * spans + j:064x}"
            runs.append(
                run_span("step", inputs=inputs, outputs=[output], start_ns=start + i * 10**6)
            )
        out.append(request(runs, service="bench").SerializeToString())
    return out


def load(endpoint: str, bodies: list[bytes], clients: int, result: Any) -> None:
    """Load generator process body: send every batch, report (start, end) wall times."""
    senders = [GrpcSender(endpoint) for _ in range(clients)]
    for sender in senders:  # connect before the clock starts
        sender.send(request([]).SerializeToString())
    started = time.time()

    def work(k: int) -> None:
        for body in bodies[k::clients]:
            sender = senders[k]
            for _attempt in range(100):  # Overloaded (UNAVAILABLE) -> retry shortly
                try:
                    sender.send(body)
                    break
                except Exception:
                    time.sleep(0.05)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.put((started, time.time()))


class Serve:
    """One ``otel-mltrace serve`` subprocess."""

    def __init__(self, workdir: Path, name: str, env_extra: dict[str, str]) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        env = dict(os.environ, **env_extra)
        env.update(
            MLTRACE_DB=str(workdir / f"{name}.db"),
            MLTRACE_GRPC_ADDRESS=f"127.0.0.1:{self.grpc_port}",
            MLTRACE_HTTP_ADDRESS=f"127.0.0.1:{self.http_port}",
            MLTRACE_MAX_INFLIGHT="256",
        )
        self.log = open(workdir / f"{name}.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "otel_mltrace.cli", "serve", "--log-level", "WARNING"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.http}/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{name} did not start; see {workdir / name}.log")

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def get(self, path: str) -> Any:
        return json.loads(urllib.request.urlopen(self.http + path, timeout=5).read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def one_round(
    workdir: Path, forward_to: str | None, bodies: list[bytes], spans: int, clients: int
) -> dict[str, float]:
    extra = {}
    if forward_to:
        extra = {"MLTRACE_FORWARD_ENDPOINT": forward_to, "MLTRACE_FORWARD_QUEUE_SIZE": str(spans)}
    name = f"under-test-{'on' if forward_to else 'off'}-{time.monotonic_ns()}"
    server = Serve(workdir, name, extra)
    try:
        result: Any = multiprocessing.Queue()
        gen = multiprocessing.Process(target=load, args=(server.grpc, bodies, clients, result))
        gen.start()
        started, acked = result.get(timeout=600)
        gen.join(30)
        out = {"ingest": spans / (acked - started)}
        if forward_to:
            deadline = time.monotonic() + 300
            stats = server.get("/api/v1/forward")
            while stats["queue_spans"] and time.monotonic() < deadline:
                time.sleep(0.05)
                stats = server.get("/api/v1/forward")
            out["forwarded"] = stats["sent"] / (time.time() - started)
            out["dropped"] = stats["dropped"]
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--spans", type=int, default=200, help="run spans per batch")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--downstream", choices=["collector", "jaeger"], default="collector")
    args = parser.parse_args()
    bodies = encode_batches(args.batches, args.spans)
    total = args.batches * args.spans
    print(
        f"{total} run spans in {args.batches} batches of {args.spans}, {args.clients} clients, "
        f"{args.rounds} rounds, downstream={args.downstream}, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        workdir = Path(tmp)
        jaeger: JaegerServer | None = None
        down: Serve | None = None
        if args.downstream == "jaeger":
            jaeger = JaegerServer.start(workdir / "jaeger")
            target = jaeger.otlp_grpc
        else:
            down = Serve(workdir, "downstream", {})
            target = down.grpc
        try:
            on: list[dict[str, float]] = []
            off: list[dict[str, float]] = []
            for r in range(args.rounds):
                off.append(one_round(workdir, None, bodies, total, args.clients))
                on.append(one_round(workdir, target, bodies, total, args.clients))
                print(
                    f"round {r + 1}: off {off[-1]['ingest']:9.0f} spans/s | on "
                    f"{on[-1]['ingest']:9.0f} spans/s ingest, {on[-1]['forwarded']:9.0f} "
                    f"spans/s forwarded, {on[-1]['dropped']:.0f} dropped"
                )
        finally:
            if jaeger is not None:
                jaeger.close()
            if down is not None:
                down.stop()
    med_off = statistics.median(x["ingest"] for x in off)
    med_on = statistics.median(x["ingest"] for x in on)
    med_fwd = statistics.median(x["forwarded"] for x in on)
    ratio = med_on / med_off
    print(f"ingest, forwarding off: {med_off:9.0f} spans/s (median)")
    print(f"ingest, forwarding on:  {med_on:9.0f} spans/s (median)")
    print(f"forwarded end to end:   {med_fwd:9.0f} spans/s (median)")
    print(f"ratio on/off: {ratio:.2f}x (target >= 0.8x) -> {'OK' if ratio >= 0.8 else 'BELOW'}")


if __name__ == "__main__":
    main()
