"""``otel-mltrace serve``: OTLP receivers + lineage index + query API in one process.

Wiring (the data flow, in order): receivers (gRPC, HTTP) -> ``IngestPipeline`` (decode,
group commit to the store) -> observers (metrics, forwarding) ; API reads the store.

Example::

    collector = Collector(CollectorSettings.resolve(db="lineage.db"))
    collector.start(); ...; collector.stop()
"""

from __future__ import annotations

import errno
import gc
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from starlette.routing import BaseRoute

from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import Store, open_store
from mltrace_collector.index.store.sqlite import SqliteStore
from mltrace_collector.service.api.app import create_app
from mltrace_collector.service.ingest.pipeline import IngestPipeline
from mltrace_collector.service.receivers.grpc_receiver import GrpcReceiver, start_grpc_server
from mltrace_collector.service.receivers.grpc_refusals import watch_grpc_core_log
from mltrace_collector.service.receivers.http_receiver import HttpServer, start_http_server
from mltrace_collector.service.receivers.refusals import REFUSALS, REQUESTS, refusal_metrics
from otel_mltrace.config import resolve, resolve_settings
from otel_mltrace.extras import MissingExtra, require

log = logging.getLogger("mltrace_collector")


@dataclass(frozen=True)
class CollectorSettings:
    """Everything ``serve`` needs; build it with :meth:`resolve` (flag > env > default)."""

    db: str
    grpc_address: str
    http_address: str
    max_body_bytes: int
    auth_token: str | None
    tls_cert: str | None
    tls_key: str | None
    max_inflight: int
    decode_workers: int

    @classmethod
    def resolve(cls, **explicit: Any) -> CollectorSettings:
        return resolve_settings(cls, "collector", explicit)


class ListenError(OSError):
    """A listener of ``serve`` could not bind its address; the message names the address,
    the likely cause and the flag / variable that moves it."""

    def __init__(self, what: str, address: str, flag: str, cause: OSError) -> None:
        busy = cause.errno == errno.EADDRINUSE or (cause.errno is None and _busy(address))
        why = (
            "address already in use (another otel-mltrace serve, or a Jaeger / "
            "OTel Collector on the standard OTLP ports 4317/4318?)"
            if busy
            else str(cause)
        )
        env = f"MLTRACE_{flag.upper()}_ADDRESS"
        super().__init__(
            f"cannot listen for {what} on {address}: {why}; "
            f"choose another with --{flag}-address HOST:PORT (or {env})"
        )


def _busy(address: str) -> bool:
    """Whether something listens on ``host:port`` (gRPC's bind error carries no errno)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
        except ValueError:
            return False
    return False


class Collector:
    """The running service. ``start()`` binds every listener; ``stop()`` drains and closes."""

    def __init__(self, settings: CollectorSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.db)
        if isinstance(self.store, SqliteStore):
            self.store.checkpoint_in_background()  # commits then only append to the WAL
        self.pipeline = IngestPipeline(
            self.store,
            max_inflight=settings.max_inflight,
            decode_workers=settings.decode_workers,
        )
        self.queries = LineageQueries(self.store)
        self.http: HttpServer | None = None
        self.grpc: GrpcReceiver | None = None
        self._started = time.time()
        self._stopped = threading.Event()
        self.routes: list[BaseRoute] = []
        """Extra HTTP routes (e.g. ``/metrics``) served beside the API; add before start()."""
        self.on_stop: list[Callable[[], None]] = []
        """Called in order after the receivers stopped and before the store closes."""
        self.install_features()

    def install_features(self) -> None:
        """Plug the optional parts (exporters, forwarders) into the data flow, in order."""
        from mltrace_collector.service.exporters.prometheus import install_metrics

        install_metrics(self)  # GET /metrics on the HTTP listener (docs/metrics.md)
        from mltrace_collector.service.exporters.prometheus import add_provider

        add_provider(self, refusal_metrics, store_derived=False)  # refused compressions
        from mltrace_collector.service.exporters.store_metrics import install_check_metrics

        install_check_metrics(self)  # mltrace_check_failures_total{component,check}
        from mltrace_collector.service.exporters.store_metrics import install_open_run_metrics

        install_open_run_metrics(self)  # mltrace_runs_abandoned_total, mltrace_runs_running
        if resolve("openlineage_url") or resolve("openlineage_transport"):  # else no import
            require(
                "openlineage.client",
                extra="openlineage",
                feature="OpenLineage export (MLTRACE_OPENLINEAGE_URL / _TRANSPORT)",
            )
            from mltrace_collector.service.exporters.openlineage import install_openlineage

            install_openlineage(self)  # RunEvents out
        from mltrace_collector.service.exporters.forward import install_forwarding

        install_forwarding(self)  # MLTRACE_FORWARD_ENDPOINT set: forward spans downstream

    def health(self) -> dict[str, Any]:
        counts = self.store.counts()
        return {
            "status": "ok",
            "store": self.store.backend,
            "uptime_s": round(time.time() - self._started, 3),
            "runs": counts["runs"],
            **self.pipeline.stats,
            "refused_encodings": REFUSALS.snapshot(),  # receivers/refusals.py
            "refused_requests": REQUESTS.snapshot(),  # by reason: too_large, invalid, ...
        }

    def start(self) -> None:
        s = self.settings
        app = create_app(
            self.pipeline,
            self.queries,
            self.health,
            max_body_bytes=s.max_body_bytes,
            auth_token=s.auth_token,
            extra_routes=self.routes,
        )
        try:
            self.http = start_http_server(
                app, s.http_address, tls_cert=s.tls_cert, tls_key=s.tls_key
            )
        except OSError as exc:
            raise ListenError("OTLP/HTTP + API", s.http_address, "http", exc) from exc
        try:
            self.grpc = start_grpc_server(
                self.pipeline,
                s.grpc_address,
                max_body_bytes=s.max_body_bytes,
                auth_token=s.auth_token,
                tls_cert=s.tls_cert,
                tls_key=s.tls_key,
                # as many exports in flight as the pipeline admits (bigger group commits;
                # the one past the limit gets UNAVAILABLE rather than waiting in gRPC's queue)
                max_workers=max(16, s.max_inflight),
            )
        except OSError as exc:
            raise ListenError("OTLP/gRPC", s.grpc_address, "grpc", exc) from exc
        log.info(
            "otel-mltrace collector: OTLP/gRPC on %s, OTLP/HTTP + API on %s, store %s",
            self.grpc_endpoint,
            self.http_endpoint,
            self.store.backend,
        )

    @property
    def http_endpoint(self) -> str:
        assert self.http is not None
        return self._endpoint(self.settings.http_address, self.http.port)

    @property
    def grpc_endpoint(self) -> str:
        assert self.grpc is not None
        return self._endpoint(self.settings.grpc_address, self.grpc.port)

    def _endpoint(self, address: str, port: int) -> str:
        """The URL a client reaches a listener bound to ``address`` at (its real ``port``)."""
        host = address.rpartition(":")[0] or "127.0.0.1"
        scheme = "https" if self.settings.tls_cert else "http"
        return f"{scheme}://{host}:{port}"

    def stop(self, grace_s: float = 10.0) -> None:
        """Graceful shutdown: stop accepting, finish in-flight exports, commit, close."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.grpc is not None:
            self.grpc.stop(grace_s)
        if self.http is not None:
            self.http.stop(grace_s)
        self.pipeline.close(grace_s)
        for hook in self.on_stop:
            try:
                hook()
            except Exception:  # one failing hook must not keep the store open
                log.exception("shutdown hook %r failed", hook)
        self.store.close()


def tune_gc() -> None:
    """Garbage collection policy of a collector process: everything allocated so far
    (imports, settings, connections) is permanent, and collections run per 50,000
    container allocations instead of 700. Ingest allocates ~60 tuples per span and frees
    them in order (reference counting, no cycles); with the defaults, gen-0/1 collections
    and the gen-2 walks they trigger took ~15% of the CPU of a busy collector."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@click.command("serve")
@click.option("--db", help="SQLite path or postgresql:// URL (MLTRACE_DB)")
@click.option("--grpc-address", help="OTLP/gRPC listen host:port (MLTRACE_GRPC_ADDRESS)")
@click.option("--http-address", help="OTLP/HTTP + API listen host:port (MLTRACE_HTTP_ADDRESS)")
@click.option("--max-body-bytes", type=int, help="request body limit (MLTRACE_MAX_BODY_BYTES)")
@click.option("--auth-token", help="require this bearer token (MLTRACE_AUTH_TOKEN)")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key")
@click.option("--max-inflight", type=int, help="queued batches before 503 (MLTRACE_MAX_INFLIGHT)")
@click.option("--decode-workers", type=int, help="ingest worker processes (MLTRACE_DECODE_WORKERS)")
@click.option("--log-level", default="INFO", show_default=True)
def serve_command(log_level: str, **options: Any) -> None:
    """Run the collector: OTLP receivers, lineage index and query API."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    settings = CollectorSettings.resolve(**options)
    watch_grpc_core_log()  # count gRPC core's refusals of unknown grpc-encodings
    try:
        collector = Collector(settings)
    except MissingExtra as exc:  # a configured feature whose extra is not installed
        raise click.ClickException(str(exc)) from None
    try:
        collector.start()
    except ListenError as exc:
        collector.stop(grace_s=1.0)
        raise click.ClickException(str(exc)) from None
    tune_gc()
    click.echo(
        f"otel-mltrace collector ready: OTLP/gRPC {collector.grpc_endpoint}  "
        f"OTLP/HTTP+API {collector.http_endpoint}  store {settings.db.split('@')[-1]}",
        err=True,
    )
    done = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: draining and shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    done.wait()
    collector.stop()
    log.info("stopped")
