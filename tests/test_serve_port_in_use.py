"""`otel-mltrace serve` on a port something else listens on (a Jaeger or OTel Collector
on the standard OTLP ports 4317/4318, a second collector) stops with one line naming the
listener, the address and the flag that moves it — not a Python traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_process import REPO_ROOT
from tests.servers.ports import free_port


@pytest.fixture
def taken() -> Iterator[int]:
    """A port held by a listening socket, as another server would hold it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def serve(tmp_path: Path, grpc_port: int, http_port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRACE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    cmd = [
        sys.executable, "-m", "otel_mltrace.cli", "serve", "--db", str(tmp_path / "x.db"),
        "--grpc-address", f"127.0.0.1:{grpc_port}", "--http-address", f"127.0.0.1:{http_port}",
        "--decode-workers", "1",
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_http_port_in_use_names_the_address_and_the_flag(tmp_path: Path, taken: int) -> None:
    proc = serve(tmp_path, free_port(), taken)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        f"Error: cannot listen for OTLP/HTTP + API on 127.0.0.1:{taken}: address already in use"
        in proc.stderr
    )
    assert "--http-address HOST:PORT (or MLTRACE_HTTP_ADDRESS)" in proc.stderr


def test_grpc_port_in_use_names_the_address_and_the_flag(tmp_path: Path, taken: int) -> None:
    proc = serve(tmp_path, taken, free_port())
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        f"Error: cannot listen for OTLP/gRPC on 127.0.0.1:{taken}: address already in use"
        in proc.stderr
    )
    assert "--grpc-address HOST:PORT (or MLTRACE_GRPC_ADDRESS)" in proc.stderr
