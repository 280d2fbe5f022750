"""``otel-mltrace serve`` as a real child process on free loopback ports, for tests and benchmarks.

``ServeProcess.start(db)`` launches ``python -m otel_mltrace.cli serve`` with its own OTLP/gRPC
and OTLP/HTTP ports, waits (bounded) until ``/healthz`` answers, and hands back the endpoints.
``terminate()`` sends SIGTERM and returns the exit status; ``kill()`` is the last resort used
by finalizers. A port taken between ``free_port()`` and the bind is retried.

Example::

    with ServeProcess.start("/tmp/x.db") as serve:
        httpx.get(serve.http_url + "/healthz")
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

try:
    from tests.servers.ports import free_port
except ModuleNotFoundError:  # pragma: no cover - tests/ itself on sys.path
    from servers.ports import free_port  # type: ignore[import-not-found,no-redef]

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 60.0


class ServeProcess:
    """One running ``otel-mltrace serve`` child process."""

    def __init__(
        self, proc: subprocess.Popen[bytes], grpc_port: int, http_port: int, log: Path
    ) -> None:
        self.proc = proc
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.log = log

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @classmethod
    def start(
        cls,
        db: str,
        log: Path,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        attempts: int = 3,
        ports: tuple[int, int] | None = None,
        python: str | None = None,
    ) -> ServeProcess:
        """Start the collector on ``db`` (SQLite path or URL); its output goes to ``log``.
        ``python``: another interpreter (a virtual environment with otel-mltrace installed),
        run outside this repository so that it imports its own installed copy."""
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRACE_")}
        child_env.update(env or {})
        cwd = REPO_ROOT
        if python is None:
            child_env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + child_env.get("PYTHONPATH", "")
        else:
            child_env.pop("PYTHONPATH", None)
            cwd = log.parent
        last = ""
        for _ in range(attempts):
            grpc_port, http_port = ports or (free_port(), free_port())  # (gRPC, HTTP)
            cmd = [
                python or sys.executable, "-m", "otel_mltrace.cli", "serve", "--db", db,
                "--grpc-address", f"127.0.0.1:{grpc_port}",
                "--http-address", f"127.0.0.1:{http_port}",
                *extra_args,
            ]  # fmt: skip
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env, cwd=cwd
                )
            serve = cls(proc, grpc_port, http_port, log)
            if serve._wait_healthy():
                return serve
            serve.kill()
            last = log.read_text("utf-8", "replace")[-3000:]
            if "address already in use" not in last.lower():
                break
        raise RuntimeError(f"otel-mltrace serve did not become healthy; log tail:\n{last}")

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.http_url + "/healthz", timeout=2).status_code == 200:
                    return True
            time.sleep(0.1)
        return False

    def healthy(self) -> bool:
        try:
            return httpx.get(self.http_url + "/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def children(self) -> list[int]:
        """PIDs of the live child processes (the decode workers, multiprocessing's
        resource tracker); Linux /proc."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
        return found

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit status (SIGKILL if it does not come in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """Stop this process for sure (finalizers). Idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.proc.poll() is None:
                self.terminate(30)
        finally:
            self.kill()


@contextlib.contextmanager
def serving(base: Path) -> Iterator[ServeProcess]:
    """An ``otel-mltrace serve`` on ``base/c.db`` (log ``base/serve.log``) for the body of
    the ``with`` (a module fixture), which must then exit cleanly (status 0).

    Example::

        with serving(tmp_path_factory.mktemp("compression")) as serve:
            send_grpc(f"http://127.0.0.1:{serve.grpc_port}", body)
    """
    proc = ServeProcess.start(str(base / "c.db"), base / "serve.log")
    try:
        yield proc
        assert proc.terminate() == 0
    finally:
        proc.kill()
