"""A real Jaeger v2 on loopback for tests: in-memory storage, OTLP in, api/v3 out.

The binary comes from ``scripts/build_jaeger.sh`` (run by bootstrap), which builds it with
the machine's Go into ``${MLTRACE_CACHE:-~/.cache/otel-mltrace}/bin/jaeger-v1.76.0``;
``MLTRACE_JAEGER_BIN`` overrides. :func:`find_jaeger` raises ``JaegerUnavailable`` with
the reason when there is none, so tests skip instead of failing.

Example::

    jaeger = JaegerServer.start(tmp_path)
    try:
        exporter_endpoint = jaeger.otlp_grpc          # "http://127.0.0.1:PORT"
        services = jaeger.get("/api/v3/services")
        jaeger.stop(); jaeger.restart()               # same ports, storage emptied
    finally:
        jaeger.stop()
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from .cache import cache_dir
from .ports import free_port

JAEGER_VERSION = "v1.76.0"
"""Go module tag of Jaeger v2.13.0 (github.com/jaegertracing/jaeger/cmd/jaeger)."""

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
"""


class JaegerUnavailable(RuntimeError):
    """No Jaeger binary here, or it did not start; the message says why and what to run."""


def find_jaeger() -> Path:
    """The Jaeger v2 binary bootstrap built, or ``JaegerUnavailable`` naming the fix."""
    explicit = os.environ.get("MLTRACE_JAEGER_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise JaegerUnavailable(f"MLTRACE_JAEGER_BIN={explicit!r} is not an executable")
        return Path(explicit)
    path = cache_dir() / "bin" / f"jaeger-{JAEGER_VERSION}"
    if path.exists():
        return path
    failed = path.with_name(path.name + ".failed")
    tail = f" The last build failed: {failed.read_text().strip()}" if failed.exists() else ""
    raise JaegerUnavailable(
        f"no Jaeger binary at {path}: run `bash scripts/build_jaeger.sh` (builds "
        f"Jaeger {JAEGER_VERSION} with Go from the module proxy; bootstrap runs it) "
        f"or set MLTRACE_JAEGER_BIN.{tail}"
    )


class JaegerServer:
    """One Jaeger process; :meth:`stop` / :meth:`restart` keep the ports."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.ports = {
            name: free_port() for name in ("otlp_grpc", "otlp_http", "query_http", "query_grpc")
        }
        self.config = workdir / "jaeger.yaml"
        self.config.write_text(CONFIG.format(**self.ports))
        self.log = workdir / "jaeger.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.query_url, timeout=10.0)

    @classmethod
    def start(cls, workdir: Path, timeout_s: float = 60.0) -> JaegerServer:
        workdir.mkdir(parents=True, exist_ok=True)
        server = cls(find_jaeger(), workdir)
        server.restart(timeout_s)
        return server

    @property
    def otlp_grpc(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_grpc']}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_http']}/v1/traces"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['query_http']}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self, timeout_s: float = 60.0) -> None:
        """(Re)start on the same ports and wait until api/v3 answers."""
        if self.running:
            return
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(self.binary), "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise JaegerUnavailable(f"jaeger exited with {self.proc.returncode}: {tail}")
            try:
                if self._http.get("/api/v3/services").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise JaegerUnavailable(f"jaeger not ready after {timeout_s}s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s. Idempotent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        self._http.close()

    # -- api/v3 --------------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Any:
        """GET an api/v3 path and return the JSON (raises on HTTP errors)."""
        response = self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def trace_spans(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span of a trace (OTLP JSON, attributes flattened by the caller); [] if none."""
        response = self._http.get(f"/api/v3/traces/{trace_id}")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        spans: list[dict[str, Any]] = []
        for rs in response.json().get("result", {}).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                spans.extend(ss.get("spans", []))
        return spans
