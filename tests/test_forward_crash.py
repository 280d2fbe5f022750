"""kill -9 of a forwarding ``otel-mltrace serve``: spans it acknowledged before the kill reach
the downstream after the restart.

A (real ``serve`` process, forwarding over OTLP/gRPC with ``MLTRACE_FORWARD_SPILL_DIR``)
acknowledges runs while its downstream B (another real ``serve``) is down, so every span
is waiting in A's forward queue. A is killed with SIGKILL (no drain, no shutdown hook),
B comes up on the port A forwards to, A restarts on the same spill directory: every
acknowledged run must be indexed by B, and A's spill must empty (segments are deleted
once B acknowledged them), so the disk bound is not eaten by replayed data.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.otlp_builders import request, run_span, send_grpc
from tests.serve_process import ServeProcess
from tests.servers.ports import free_port
from tests.test_forwarding import forwarding_collector

PB = {"Content-Type": "application/x-protobuf"}
REQUESTS, RUNS_PER_REQUEST = 8, 5


def forwarding_env(spill: Path, grpc_port: int) -> dict[str, str]:
    return {
        "MLTRACE_FORWARD_ENDPOINT": f"http://127.0.0.1:{grpc_port}",
        "MLTRACE_FORWARD_SPILL_DIR": str(spill),
        "MLTRACE_FORWARD_HOLD_SECONDS": "0",
    }


def test_acknowledged_spans_survive_kill_9(tmp_path: Path) -> None:
    b_ports = (free_port(), free_port())  # B's (gRPC, HTTP), down until after the kill
    spill = tmp_path / "spill"
    env = forwarding_env(spill, b_ports[0])
    a = ServeProcess.start(str(tmp_path / "a.db"), tmp_path / "a.log", env=env)
    b: ServeProcess | None = None
    a2: ServeProcess | None = None
    run_ids: list[str] = []
    try:
        for i in range(REQUESTS):
            ids = [f"crash-{i}-{j}-{os.urandom(4).hex()}" for j in range(RUNS_PER_REQUEST)]
            body = request([run_span("crash", run_id=r) for r in ids]).SerializeToString()
            resp = httpx.post(a.http_url + "/v1/traces", content=body, headers=PB, timeout=30)
            assert resp.status_code == 200  # acknowledged: from here on it must not be lost
            run_ids += ids
        stats = httpx.get(a.http_url + "/api/v1/forward", timeout=30).json()
        assert stats["sent"] == 0 and stats["dropped"] == 0
        assert stats["queue_spans"] == len(run_ids)  # all waiting for the dead downstream

        a.proc.kill()  # SIGKILL: no drain, no shutdown hook
        assert a.proc.wait(10) == -9

        b = ServeProcess.start(str(tmp_path / "b.db"), tmp_path / "b.log", ports=b_ports)
        a2 = ServeProcess.start(str(tmp_path / "a.db"), tmp_path / "a2.log", env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if httpx.get(b.http_url + "/healthz", timeout=30).json()["runs"] >= len(run_ids):
                break
            time.sleep(0.1)
        missing = [
            rid
            for rid in run_ids
            if httpx.get(f"{b.http_url}/api/v1/runs/{rid}", timeout=30).status_code != 200
        ]
        assert not missing, f"{len(missing)} of {len(run_ids)} acknowledged runs never arrived"

        deadline = time.monotonic() + 10
        while list(spill.glob("segment-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not list(spill.glob("segment-*")), "forwarded segments must be deleted"
        stats = httpx.get(a2.http_url + "/api/v1/forward", timeout=30).json()
        assert stats["sent"] >= len(run_ids) and stats["queue_spans"] == 0
        assert a2.terminate() == 0
    finally:
        for proc in (a, a2, b):
            if proc is not None:
                proc.kill()


def test_full_spill_drops_are_counted_and_explained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The disk bound holds: past ``MLTRACE_FORWARD_SPILL_MAX_BYTES`` a request is dropped,
    counted in the stats (``mltrace_forward_spans_total{outcome="dropped"}``) and warned
    about with the setting to change; what fit is all still on disk."""
    spill = tmp_path / "spill"
    a, fwd = forwarding_collector(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",  # nothing listens: every span stays queued
        forward_spill_dir=str(spill),
        forward_spill_max_bytes=5_000,
        forward_hold_seconds=0,
        forward_grace_seconds=0.2,
        forward_timeout=1.0,
    )
    caplog.set_level(logging.WARNING, logger="mltrace_collector.forward")
    try:
        for i in range(20):
            spans = [run_span("full", run_id=f"full-{i}-{j}") for j in range(5)]
            send_grpc(a.grpc_endpoint, request(spans).SerializeToString())
        stats = fwd.stats()
        assert stats["dropped"] > 0 and stats["spilled"] > 0
        assert stats["dropped"] + stats["spilled"] == 100 and stats["sent"] == 0
        assert fwd.spill is not None and fwd.spill.size_bytes <= 5_000
        assert "MLTRACE_FORWARD_SPILL_MAX_BYTES=5000" in caplog.text
        assert "dropped instead of forwarded" in caplog.text
    finally:
        a.stop(grace_s=0.5)
    assert sum(s.stat().st_size for s in spill.glob("segment-*")) <= 5_000


def test_a_failed_spill_write_leaves_no_torn_record(tmp_path: Path) -> None:
    """The kernel refuses a write half-way (here a file size limit, as a full disk would):
    the record is cut back, and the records appended after it are all read back."""
    import resource
    import signal

    from mltrace_collector.service.exporters.forward_spill import SpillDir

    spill = SpillDir(str(tmp_path / "spill"), 64 << 20)
    assert spill.append(b"A" * 100, 1, 1)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))
        with pytest.raises(OSError):
            spill.append(b"B" * 100_000, 1, 2)  # larger than the limit: written in part
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert spill.append(b"C" * 100, 1, 3)
    segment = spill.take_oldest()
    assert segment is not None
    assert [r.payload[:1] for r in segment.records] == [b"A", b"C"]
