"""The README's main job: the digits pipeline traced through a real collector, shown three ways.

1. starts ``otel-mltrace serve`` on free loopback ports (SQLite index in the work dir),
2. runs the pipeline (six steps, six processes) over OTLP/gRPC, then again with its raw
   data deliberately shifted, as a new data drop would,
3. prints where the newest prediction file came from (``otel-mltrace trace``), the
   ``evaluate`` runs with their metrics (``otel-mltrace history``), why the two differ
   (``otel-mltrace compare``: the first divergence upstream is the raw data), and the
   Prometheus series the collector now publishes: output quantiles, drift per method, run
   counts,
4. stops the collector (SIGTERM: it drains and exits).

::

    python -m examples.digits.demo --workdir examples/digits/workdir
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from examples.digits._common import Paths

SHOWN_METRICS = re.compile(
    r"^(mltrace_output_drift\{component=\"ingest\"|"
    r"mltrace_output_drift_threshold|"
    r"mltrace_output_quantile\{component=\"predict\",output=\"confidence\"|"
    r"mltrace_output_null_ratio\{component=\"ingest\"|"
    r"mltrace_runs_total\{|mltrace_component_stale\{|mltrace_lineage_edge\{)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli() -> list[str]:
    return [sys.executable, "-m", "otel_mltrace.cli"]


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the collector exited with code {proc.returncode} at start")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the collector at {url} did not become healthy in {timeout_s:.0f} s")


def _heading(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="examples/digits/workdir")
    parser.add_argument("--shift", type=float, default=3.0, help="shift of the second run")
    args = parser.parse_args(argv)
    paths = Paths(Path(args.workdir).resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port = _free_port(), _free_port()
    server = f"http://127.0.0.1:{http_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRACE_", "OTEL_"))}
    log = (paths.root / "collector.log").open("wb")
    collector = subprocess.Popen(
        [*_cli(), "serve", "--db", str(paths.root / "collector.db")]
        + ["--grpc-address", f"127.0.0.1:{grpc_port}", "--http-address", f"127.0.0.1:{http_port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_healthy(server, collector)
        print(f"collector: OTLP/gRPC 127.0.0.1:{grpc_port}, API + /metrics {server}")
        step_env = {**env, "MLTRACE_ENDPOINT": f"http://127.0.0.1:{grpc_port}"}
        runner = [sys.executable, "-m", "examples.digits.pipeline", "--workdir", str(paths.root)]
        for label, extra in (("normal data", []), (f"shifted data (--shift {args.shift})", [
            "--shift", str(args.shift)
        ])):  # fmt: skip
            _heading(f"pipeline run: {label}")
            subprocess.run([*runner, *extra], env=step_env, check=True)
        predictions = str(paths.root / "predictions" / "predictions.csv")
        _heading("where did the newest predictions come from?  otel-mltrace trace")
        subprocess.run([*_cli(), "--server", server, "trace", predictions], env=env, check=True)
        first_prediction = _first_prediction_id(paths)
        _heading(f"and one prediction, by its ID:  otel-mltrace trace {first_prediction}")
        subprocess.run(
            [*_cli(), "--server", server, "trace", first_prediction], env=env, check=True
        )
        _heading("evaluate runs and their metrics  otel-mltrace history evaluate")
        newest, previous = _print_history(server, env)[:2]
        _heading("why do they differ?  otel-mltrace compare (first divergence upstream)")
        subprocess.run(
            [*_cli(), "--server", server, "compare", newest, previous], env=env, check=True
        )
        _heading(f"Prometheus series on {server}/metrics (selection)")
        with urllib.request.urlopen(server + "/metrics", timeout=30) as resp:
            body = resp.read().decode()
        for line in body.splitlines():
            if SHOWN_METRICS.match(line):
                print(line)
        return 0
    finally:
        collector.send_signal(signal.SIGTERM)
        try:
            collector.wait(30)
        except subprocess.TimeoutExpired:
            collector.kill()
        log.close()


def _first_prediction_id(paths: Paths) -> str:
    with (paths.root / "predictions" / "predictions.csv").open() as f:
        next(f)  # header
        return next(f).split(",", 1)[0]


def _print_history(server: str, env: dict[str, str]) -> list[str]:
    """Print the evaluate runs with their metrics; returns their run IDs, newest first."""
    out = subprocess.run(
        [*_cli(), "--server", server, "history", "evaluate", "--format", "json"],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    for run in json.loads(out):
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(run["metrics"].items()))
        print(f"{run['start'][:19]}  {run['run_id']}  {run['status']}  {metrics}")
    return [str(run["run_id"]) for run in json.loads(out)]


if __name__ == "__main__":
    raise SystemExit(main())
