"""What every throwaway server process in the tests shares: log tail, stop, context manager."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from .ports import free_port


class StopOnExit:
    """``with x:`` calls ``x.stop()`` at the end of the block."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ManagedServer(StopOnExit):
    """A server child process with its own folder (``base``), log file and HTTP client.

    Subclasses call ``__init__(base, log_name)`` and start ``proc`` on ``port``; ``stop()``
    terminates it (then kills it), closes the client and deletes the folder, once.
    """

    host = "127.0.0.1"

    def __init__(self, base: Path, log_name: str) -> None:
        self.base = base
        self.log = base / log_name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(timeout=10.0)
        self._stopped = False

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log (for failure messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait_ready(self, url: str, timeout: float) -> bool:
        """Poll ``url`` until it answers 200; False if the process exited or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get(url).status_code == 200:
                    return True
            time.sleep(0.1)
        return False

    def _launch_on_free_port(
        self,
        command: Callable[[], list[str]],
        ready_path: str,
        timeout: float,
        unavailable: Callable[[str], Exception],
    ) -> None:
        """Start ``command()`` (built after ``self.port`` is chosen) on a free port until
        ``ready_path`` answers 200; another free port when the chosen one was taken before
        the server bound it (three tries). Raises ``unavailable(log tail)`` otherwise."""
        for attempt in range(3):
            self.port = free_port()
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            if self._wait_ready(f"http://{self.host}:{self.port}{ready_path}", timeout):
                return
            tail = self.log_tail()
            self._terminate()
            if "address already in use" not in tail or attempt == 2:
                raise unavailable(tail)

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def stop(self) -> None:
        """Stop the server and delete its folder (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._terminate()
        self.http.close()
        shutil.rmtree(self.base, ignore_errors=True)


class HttpServer(ManagedServer):
    """A managed server with an HTTP API at ``url`` (``http://`` + ``address``), logging to
    ``base / log_name`` (a class attribute)."""

    log_name: str

    def __init__(self, base: Path) -> None:
        super().__init__(base, self.log_name)

    @classmethod
    def _started(cls, prefix: str, launch: Callable[[Self], None]) -> Self:
        """A server in a new temporary folder, set up and started by ``launch(server)``;
        stopped (its folder deleted) when that fails, and at interpreter exit at the latest."""
        server = cls(Path(tempfile.mkdtemp(prefix=prefix)))
        atexit.register(server.stop)
        try:
            launch(server)
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"
