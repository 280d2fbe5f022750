"""Spool cost during a long outage: ``put`` of N batches, then ``claim`` + ``done`` of all.

Usage::

    python benchmarks/bench_spool.py                 # 5,000 batches of 2 KiB
    python benchmarks/bench_spool.py --batches 20000 --size 512
    python benchmarks/bench_spool.py --no-fsync     # bookkeeping only, not the disk

A collector down for hours leaves thousands of files in the spool. Each phase is timed
in slices (first and last 500 operations) as well as in total: a per-operation cost
that grows with the number of files already spooled (a directory rescan per ``put`` or
``claim``) shows as a last slice much slower than the first.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from otel_mltrace.spool import Spool  # noqa: E402

SLICE = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=5000)
    parser.add_argument("--size", type=int, default=2048, help="payload bytes per batch")
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip fsync (not durable!): the bookkeeping cost alone, without the disk's",
    )
    args = parser.parse_args()
    if args.no_fsync:
        os.fsync = lambda fd: None
    n = args.batches
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as tmp:
        spool = Spool.for_endpoint(tmp, "http://127.0.0.1:4317", "grpc", 1 << 40)
        payload = os.urandom(args.size)
        put_s: list[float] = []
        for _ in range(n):
            t = time.perf_counter()
            assert spool.put(payload, 10)
            put_s.append(time.perf_counter() - t)
        assert spool.pending() == (10 * n, args.size * n)
        claim_s: list[float] = []
        while True:
            t = time.perf_counter()
            with spool.claim() as batch:
                if batch is None:
                    break
                batch.done()
            claim_s.append(time.perf_counter() - t)
        assert len(claim_s) == n and spool.pending() == (0, 0)
        assert not list(Path(spool.directory).glob("*.otlp"))
    for name, times in (("put", put_s), ("claim+done", claim_s)):
        first = sum(times[:SLICE]) / SLICE * 1e3
        last = sum(times[-SLICE:]) / SLICE * 1e3
        print(
            f"{name:>10}: {n} in {sum(times):6.2f} s; first {SLICE}: {first:.3f} ms each, "
            f"last {SLICE}: {last:.3f} ms each"
        )


if __name__ == "__main__":
    main()
