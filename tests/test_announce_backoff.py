"""The run announcer keeps the OTLP retry back-off while the collector is down.

Every run still open ~0.1 s after it started is announced (a start record) and flushed at
once. That flush used to make the next export probe the collector again, so a pipeline of
long runs tried a collector that is down once per run instead of backing off (0.5 s,
1 s, 2 s, … up to 30 s). A real TCP listener that accepts and closes every connection
stands for the broken collector and counts the attempts.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import otel_mltrace as mlt
from otel_mltrace import lifecycle


class _Refuser:
    """Accepts every TCP connection on 127.0.0.1 and closes it at once, counting them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def refuser(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Refuser]:
    monkeypatch.setenv("MLTRACE_ANNOUNCE_RUNS", "true")
    lifecycle._announce_setting.clear()
    server = _Refuser()
    try:
        yield server
    finally:
        server.close()
        lifecycle._announce_setting.clear()


def test_announcements_keep_the_back_off_of_a_collector_that_is_down(
    refuser: _Refuser, tmp_path: Path
) -> None:
    mlt.configure(
        endpoint=f"http://127.0.0.1:{refuser.port}",
        protocol="http/protobuf",
        spool_dir=str(tmp_path / "spool"),
    )
    runs = 16
    t0 = time.monotonic()
    for i in range(runs):  # each run outlives the announce delay: one announcement each
        with mlt.run("long-step", inputs=[f"s3://bucket/part-{i}.parquet"]):
            time.sleep(lifecycle.ANNOUNCE_DELAY_S + 0.1)
    elapsed = time.monotonic() - t0
    time.sleep(0.3)  # the last announcement's flush
    attempts = refuser.count
    report = mlt.shutdown(timeout_s=10)
    # back-off 0.5, 1, 2, 4 s: about log2(elapsed) attempts, not one per announcement
    print(f"{runs} announced runs in {elapsed:.1f} s: {attempts} connection attempts")
    assert 1 <= attempts <= 6, (attempts, elapsed)
    assert report.dropped == 0 and report.delivered == 0, report
    assert report.pending_in_spool == report.spooled >= 2 * runs, report  # starts + ends
