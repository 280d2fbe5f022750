"""A real OpenTelemetry Collector (the gateway tier) on loopback ports, for tests.

The binary is the one ``scripts/bootstrap.sh`` builds with the OpenTelemetry Collector
Builder from ``deploy/otelcol/builder-config.yaml`` and caches outside the repo
(``${MLTRACE_CACHE:-~/.cache/otel-mltrace}/bin/otelcol-mltrace``; ``$MLTRACE_OTELCOL``
names another one). When it is missing, :func:`find_otelcol` raises
``OtelcolUnavailable`` with the reason — including the one bootstrap recorded in
``otelcol-mltrace.failed`` beside the binary — which tests turn into a skip.

:func:`gateway_config` loads the shipped ``deploy/otelcol/gateway.yaml`` and rewrites only
addresses (listeners on free loopback ports, the static resolver's replica list), so the
tests run the deployed configuration, not a copy of it. :class:`OtelcolServer` runs it in
its own process group, waits (bounded) for the ``health_check`` extension, and ``stop()``
(idempotent, also at exit) terminates the group.

Example::

    cfg = gateway_config(["127.0.0.1:4317", "127.0.0.1:5317"])
    with OtelcolServer.start(cfg) as gw:
        post_otlp(gw.http_endpoint + "/v1/traces", body)
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from .cache import cache_dir
from .ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
GATEWAY_YAML = REPO_ROOT / "deploy" / "otelcol" / "gateway.yaml"
BINARY_NAME = "otelcol-mltrace"


class OtelcolUnavailable(RuntimeError):
    """The collector binary is missing or would not start; ``str()`` says why."""


def find_otelcol() -> Path:
    """Path of the built collector; raises ``OtelcolUnavailable`` saying why there is none."""
    explicit = os.environ.get("MLTRACE_OTELCOL")
    if explicit:
        if os.access(explicit, os.X_OK):
            return Path(explicit)
        raise OtelcolUnavailable(f"MLTRACE_OTELCOL={explicit!r} is not an executable file")
    binary = cache_dir() / "bin" / BINARY_NAME
    if os.access(binary, os.X_OK):
        return binary
    failed = binary.with_name(BINARY_NAME + ".failed")
    reason = failed.read_text("utf-8", "replace").strip() if failed.exists() else ""
    raise OtelcolUnavailable(
        f"no OpenTelemetry Collector build at {binary} "
        + (f"(bootstrap failed: {reason})" if reason else "(run scripts/bootstrap.sh)")
    )


def load_gateway_yaml() -> dict[str, Any]:
    """The shipped gateway configuration as a dict."""
    data = yaml.safe_load(GATEWAY_YAML.read_text("utf-8"))
    assert isinstance(data, dict), f"{GATEWAY_YAML} is not a mapping"
    return data


def gateway_config(
    replicas: Sequence[str],
    *,
    grpc_port: int | None = None,
    http_port: int | None = None,
    health_port: int | None = None,
    metrics_port: int | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``deploy/otelcol/gateway.yaml`` with loopback listeners and ``replicas`` as backends.

    Unset ports are free loopback ports picked now. Nothing else is changed.
    """
    cfg = copy.deepcopy(dict(base) if base is not None else load_gateway_yaml())
    protocols = cfg["receivers"]["otlp"]["protocols"]
    protocols["grpc"]["endpoint"] = f"127.0.0.1:{grpc_port or free_port()}"
    protocols["http"]["endpoint"] = f"127.0.0.1:{http_port or free_port()}"
    cfg["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{health_port or free_port()}"
    cfg["exporters"]["load_balancing"]["resolver"] = {"static": {"hostnames": list(replicas)}}
    prom = cfg["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    prom["host"] = "127.0.0.1"
    prom["port"] = metrics_port or free_port()
    return cfg


class OtelcolServer:
    """One running collector process; see the module docstring.

    Attributes: ``config`` (the dict it runs), ``grpc_endpoint`` / ``http_endpoint``
    (``http://127.0.0.1:PORT``), ``health_url``, ``metrics_url``, ``log`` (its output file).
    """

    def __init__(self, binary: Path, config: dict[str, Any], workdir: Path) -> None:
        self.binary = binary
        self.config = config
        self.workdir = workdir
        self.config_path = workdir / "otelcol.yaml"
        self.log = workdir / "otelcol.log"
        self.proc: subprocess.Popen[bytes] | None = None
        protocols = config["receivers"]["otlp"]["protocols"]
        self.grpc_endpoint = "http://" + protocols["grpc"]["endpoint"]
        self.http_endpoint = "http://" + protocols["http"]["endpoint"]
        self.health_url = "http://" + config["extensions"]["health_check"]["endpoint"] + "/"
        prom = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
        self.metrics_url = (
            f"http://{prom['prometheus']['host']}:{prom['prometheus']['port']}/metrics"
        )
        self._stopped = False

    @classmethod
    def start(
        cls, config: dict[str, Any], *, binary: Path | None = None, timeout: float = 60.0
    ) -> OtelcolServer:
        """Write ``config``, start the collector, wait until its health check answers 200."""
        binary = binary or find_otelcol()
        workdir = Path(tempfile.mkdtemp(prefix="mltrace-otelcol-"))
        server = cls(binary, config, workdir)
        atexit.register(server.stop)
        try:
            server.config_path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
            with server.log.open("wb") as log:
                server.proc = subprocess.Popen(
                    [str(binary), "--config", str(server.config_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group: stop() kills it whole
                )
            server._wait_healthy(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise OtelcolUnavailable(
                    f"collector exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise OtelcolUnavailable(
                    f"collector not healthy after {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no collector log)"

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group (the collector drains its queues), SIGKILL after
        ``grace_s``; delete the work folder. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        proc = self.proc
        try:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        finally:
            if os.environ.get("MLTRACE_KEEP_LOGS") is None:
                import shutil

                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> OtelcolServer:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def validate(config_path: Path, *, binary: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``otelcol validate --config PATH`` with the built binary (bounded)."""
    binary = binary or find_otelcol()
    return subprocess.run(
        [str(binary), "validate", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


__all__ = [
    "GATEWAY_YAML",
    "OtelcolServer",
    "OtelcolUnavailable",
    "find_otelcol",
    "gateway_config",
    "load_gateway_yaml",
    "validate",
]
