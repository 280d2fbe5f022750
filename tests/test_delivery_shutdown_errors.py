"""Export problems never reach user code, also at shutdown.

``shutdown()`` spools what the worker could not send in time; encoding those spans ran
outside any guard, so an encoder error (a span the OTLP encoder cannot take, a bug in it)
escaped from ``mlt.shutdown()`` — or from the exit hook — into the user's program.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

import otel_mltrace as mlt
from otel_mltrace.delivery_processor import DeliveringProcessor
from tests.servers.ports import free_port

pytestmark = pytest.mark.usefixtures("no_start_records")


def test_spans_left_at_shutdown_that_cannot_be_encoded_are_counted_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def stuck(self: DeliveringProcessor, batch: Sequence[ReadableSpan]) -> None:
        release.wait(30)  # the worker is busy with the first run until the test ends

    def broken(self: DeliveringProcessor, spans: Sequence[ReadableSpan]) -> bytes:
        raise RuntimeError("encoder bug")

    monkeypatch.setattr(DeliveringProcessor, "_deliver", stuck)
    monkeypatch.setattr(DeliveringProcessor, "_encode", broken)
    mlt.configure(
        endpoint=f"http://127.0.0.1:{free_port()}", protocol="http/protobuf",
        spool_dir=str(tmp_path / "spool"),
    )  # fmt: skip
    try:
        with mlt.run("first"):
            pass
        time.sleep(0.6)  # past the worker's batching delay: it took the first run
        for _ in range(4):
            with mlt.run("later"):
                pass
        report = mlt.shutdown(timeout_s=0.2)  # must not raise
    finally:
        release.set()
    assert report.dropped == 4, report
    assert any("could not be encoded" in reason for reason in report.dropped_reasons), report
