"""The digits pipeline runner: every step in its own process, the way a scheduler runs them.

::

    python -m examples.digits.pipeline --workdir /tmp/digits [--shift 3] [--show-lineage]

It first writes the raw data drop ``source/digits_raw.csv`` (not a traced step: it stands
for data arriving from outside), then runs ``ingest``, ``split``, ``featurize``, ``train``,
``evaluate`` and ``predict`` as ``python -m examples.digits.<step>`` subprocesses, in order.
The runs share nothing but files in the work directory; the lineage index stitches them
together by artifact ID alone.

Where spans go: if neither ``MLTRACE_INDEX`` nor an endpoint (``MLTRACE_ENDPOINT``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, the children
get ``MLTRACE_INDEX=<workdir>/lineage.db``; otherwise the user's setting applies.

Exit status: 0, or the exit code of the first failing step (named on stderr).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import otel_mltrace
from examples.digits import source
from examples.digits._common import Paths

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the ``examples`` package; put on the children's PYTHONPATH."""

ENDPOINT_VARS = (
    "MLTRACE_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


class StepFailed(RuntimeError):
    """A step process exited with a non-zero status."""

    def __init__(self, step: str, returncode: int) -> None:
        super().__init__(f"step {step!r} failed with exit code {returncode}")
        self.step = step
        self.returncode = returncode


def child_env(paths: Paths, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the step processes (see the module docstring)."""
    env = dict(os.environ if environ is None else environ)
    if not env.get("MLTRACE_INDEX") and not any(env.get(v) for v in ENDPOINT_VARS):
        env["MLTRACE_INDEX"] = str(paths.index)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    return env


def destination(env: Mapping[str, str]) -> tuple[str, str]:
    """Where the steps' runs go (SDK precedence): ``("otlp", url)`` or ``("index", path)``."""
    for var in ENDPOINT_VARS:
        if env.get(var):
            return "otlp", env[var]
    return "index", env.get("MLTRACE_INDEX", "")


def step_commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """``(step, extra arguments)`` of the six traced steps, in execution order."""
    return [
        ("ingest", []),
        ("split", ["--test-size", str(args.test_size), "--seed", str(args.seed)]),
        ("featurize", ["--pca", str(args.pca), "--seed", str(args.seed)]),
        ("train", ["--C", str(args.C), "--max-iter", str(args.max_iter)]),
        ("evaluate", []),
        ("predict", []),
    ]


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_step(step: str, extra: Sequence[str], paths: Paths, env: Mapping[str, str]) -> float:
    """Run one step as a subprocess; returns its wall time. Raises :class:`StepFailed`.

    The step's stderr passes through (tracebacks stay visible); its stdout is captured and
    its last line shown next to the duration.
    """
    cmd = [sys.executable, "-m", f"examples.digits.{step}", "--workdir", str(paths.root), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=dict(env), stdout=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout)
        print(f"{step:<10} FAILED {elapsed:6.2f} s", flush=True)
        raise StepFailed(step, proc.returncode)
    print(f"{step:<10} ok     {elapsed:6.2f} s  {_last_line(proc.stdout)}", flush=True)
    return elapsed


def show_lineage(paths: Paths, env: Mapping[str, str], server: str | None = None) -> int:
    """Print the lineage of the predictions file with ``otel-mltrace trace``.

    Embedded mode queries the index file; collector mode needs the collector's query URL
    (``--server`` or ``MLTRACE_SERVER``), which is not the OTLP endpoint the runs went to.
    """
    artifact = otel_mltrace.artifact_id(paths.predictions)
    print(f"\nlineage of {artifact}", flush=True)
    mode, target = destination(env)
    server = server or env.get("MLTRACE_SERVER")
    if mode == "index":
        where = ["--db", target]
    elif server:
        where = ["--server", server]
    else:
        print(f"runs went to {target}; add --server <collector query URL> to trace them")
        return 0
    cmd = [sys.executable, "-m", "otel_mltrace.cli", *where, "trace", artifact]
    if importlib.util.find_spec("otel_mltrace.cli") is None:
        print("otel_mltrace.cli is not available in this install; run: " + " ".join(cmd))
        return 0
    return subprocess.run(cmd, env=dict(env), check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the runner."""
    p = argparse.ArgumentParser(
        prog="python -m examples.digits.pipeline",
        description="Run the traced digits pipeline, one process per step.",
    )
    p.add_argument("--workdir", required=True, help="work directory (created if missing)")
    p.add_argument(
        "--shift",
        type=float,
        default=0.0,
        help="shift raw pixels to clip(x*(1+0.1*shift)+shift, 0, 16) (default 0: none)",
    )
    p.add_argument("--show-lineage", action="store_true", help="trace the predictions file")
    p.add_argument(
        "--server", help="collector query URL for --show-lineage when runs go to a collector"
    )
    p.add_argument("--test-size", type=float, default=0.25, help="test fraction (split)")
    p.add_argument("--seed", type=int, default=0, help="random seed (split, PCA)")
    p.add_argument("--pca", type=int, default=0, help="PCA components, 0 = none (featurize)")
    p.add_argument("--C", type=float, default=1.0, help="inverse regularization (train)")
    p.add_argument("--max-iter", type=int, default=200, help="solver iterations (train)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    paths = Paths(args.workdir)
    paths.root.mkdir(parents=True, exist_ok=True)
    env = child_env(paths)
    target = destination(env)[1]
    print(f"digits pipeline in {paths.root} (shift={args.shift}); runs -> {target}", flush=True)

    total = time.perf_counter()
    start = time.perf_counter()
    source.materialize(paths.root, args.shift)
    print(f"{'source':<10} ok     {time.perf_counter() - start:6.2f} s  {paths.source}")
    try:
        for step, extra in step_commands(args):
            run_step(step, extra, paths, env)
    except StepFailed as exc:
        print(f"digits pipeline: {exc}; later steps were not run", file=sys.stderr)
        return exc.returncode
    print(f"{'total':<10}        {time.perf_counter() - total:6.2f} s", flush=True)
    if args.show_lineage:
        return show_lineage(paths, env, args.server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
