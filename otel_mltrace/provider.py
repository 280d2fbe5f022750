"""``configure()``: where run spans go, and the tracer the SDK uses.

Example::

    import otel_mltrace as mlt
    mlt.configure(service_name="digits")                         # embedded index
    mlt.configure(service_name="digits", endpoint="http://collector:4317")

Rules (documented in the README):

* Not called: the first run calls ``configure()`` with defaults (env vars apply).
* Called again: the previous destination is flushed and shut down, then replaced.
* With ``endpoint`` (argument, ``MLTRACE_ENDPOINT`` or the standard
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``) spans are sent
  over OTLP; otherwise they are indexed locally in ``index`` (``MLTRACE_INDEX``).
* If the application already installed an SDK ``TracerProvider`` globally (or passes
  ``tracer_provider=``), it is reused: its resource and sampler stay, and our export
  path is added as one more span processor (``add_exporter=False`` skips that when the
  application's own exporter already reaches an otel-mltrace collector).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_mltrace import semconv
from otel_mltrace._version import __version__
from otel_mltrace.config import otlp_endpoint_from_env, resolve

log = logging.getLogger("otel_mltrace")

_OTLP_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.sdk.trace.export",
)


@dataclass(frozen=True)
class Configuration:
    """What ``configure()`` set up: ``destination`` is the endpoint URL or the index path."""

    service_name: str
    mode: str
    """``"otlp"`` or ``"embedded"``."""
    destination: str
    provider: TracerProvider
    owns_provider: bool
    tracer: trace.Tracer


class _ExportScope(threading.local):
    active = False
    last_message = ""


_scope = _ExportScope()


class _QuietDuringOurExports(logging.Filter):
    """Drops the OTLP exporter's per-retry log lines while *our* exporter is exporting.

    ``SafeExporter`` logs the loss once instead; other exporters in the process log as usual.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _scope.active and record.levelno >= logging.WARNING:
            _scope.last_message = record.getMessage()[:300]
            return False
        return True


_quiet = _QuietDuringOurExports()
for _name in _OTLP_LOGGERS:
    logging.getLogger(_name).addFilter(_quiet)


class SafeExporter(SpanExporter):
    """Wraps an exporter so that failures never reach user code and are logged once."""

    def __init__(self, inner: SpanExporter, destination: str) -> None:
        self._inner = inner
        self._destination = destination
        self._failing = False
        self.lost_spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _scope.active, _scope.last_message = True, ""
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # an exporter bug must not surface in a pipeline
            _scope.last_message = f"{type(exc).__name__}: {exc}"
            result = SpanExportResult.FAILURE
        finally:
            _scope.active = False
        if result is SpanExportResult.SUCCESS:
            if self._failing:
                log.warning(
                    "otel-mltrace: export to %s recovered; %d spans were lost while it failed",
                    self._destination,
                    self.lost_spans,
                )
                self._failing = False
            return result
        self.lost_spans += len(spans)
        if not self._failing:
            self._failing = True
            log.warning(
                "otel-mltrace: could not export %d spans to %s (%s); the pipeline goes on, "
                "further losses are counted, not logged. Check the collector is running "
                "or unset the endpoint to use the embedded index.",
                len(spans),
                self._destination,
                _scope.last_message or "export failed",
            )
        return result

    def shutdown(self) -> None:
        try:
            self._inner.shutdown()
        except Exception:  # shutting down must not raise at interpreter exit
            log.debug("exporter shutdown failed", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _git(args: Sequence[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and value else None


def detect_vcs(cwd: str | None = None) -> dict[str, str]:
    """``vcs.*`` semconv attributes of the git checkout at ``cwd`` (empty when none)."""
    where = cwd or os.getcwd()
    attrs: dict[str, str] = {}
    revision = _git(["rev-parse", "HEAD"], where)
    if revision:
        attrs[semconv.VCS_REVISION] = revision
        url = _git(["config", "--get", "remote.origin.url"], where)
        if url:
            attrs[semconv.VCS_REPOSITORY] = url
    return attrs


def build_resource(service_name: str, extra: Mapping[str, Any] | None = None) -> Resource:
    attrs: dict[str, Any] = {
        semconv.SERVICE_NAME: service_name,
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
        "telemetry.distro.name": "otel-mltrace",
        "telemetry.distro.version": __version__,
    }
    attrs.update(detect_vcs())
    attrs.update(extra or {})
    return Resource.create(attrs)


def _otlp_exporter(
    endpoint: str, protocol: str, headers: Mapping[str, str] | None, timeout: float
) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = endpoint.startswith("http://")
        return OTLPSpanExporter(
            endpoint=endpoint, headers=dict(headers or {}), timeout=timeout, insecure=insecure
        )
    if protocol in ("http/protobuf", "http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HTTPSpanExporter,
        )

        url = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint + "/v1/traces"
        return HTTPSpanExporter(endpoint=url, headers=dict(headers or {}), timeout=timeout)
    raise ValueError(f"protocol {protocol!r} is not supported; use 'grpc' or 'http/protobuf'")


class _SwitchableProcessor(SpanProcessor):
    """The one span processor we add to any provider; ``configure()`` swaps its target.

    Swapping (instead of replacing providers) keeps a provider the application already
    uses — or the global one we installed — valid across repeated ``configure()`` calls.
    """

    def __init__(self) -> None:
        self.delegate: SpanProcessor | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        delegate = self.delegate
        if delegate is not None:
            delegate.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        delegate = self.delegate
        if delegate is not None:
            delegate.on_end(span)

    def shutdown(self) -> None:
        delegate, self.delegate = self.delegate, None
        if delegate is not None:
            delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        delegate = self.delegate
        return delegate.force_flush(timeout_millis) if delegate is not None else True


_lock = threading.Lock()
_state: Configuration | None = None
_switch = _SwitchableProcessor()
_providers_with_switch: set[int] = set()
_created: set[int] = set()


def configure(
    service_name: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    index: str | None = None,
    *,
    protocol: str | None = None,
    tracer_provider: TracerProvider | None = None,
    add_exporter: bool = True,
    resource_attributes: Mapping[str, Any] | None = None,
) -> Configuration:
    """Set up where run spans go. See the module docstring for the rules.

    >>> cfg = configure(service_name="digits", index="/tmp/lineage.db")
    >>> cfg.mode
    'embedded'
    """
    global _state
    name = resolve("service_name", service_name)
    target = resolve("endpoint", endpoint) or otlp_endpoint_from_env()
    proto = resolve("protocol", protocol)
    if protocol is None and os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL"):
        proto = os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"]
    timeout = float(resolve("export_timeout"))
    if target is not None:
        exporter: SpanExporter = _otlp_exporter(target, proto, headers, timeout)
        mode, destination = "otlp", target
    else:
        from otel_mltrace.embedded import EmbeddedIndexExporter

        destination = str(resolve("index", index))
        exporter = EmbeddedIndexExporter(destination)
        mode = "embedded"
    with _lock:
        provider = tracer_provider
        global_provider = trace.get_tracer_provider()
        if provider is None and isinstance(global_provider, TracerProvider):
            if id(global_provider) not in _created:  # the application's own provider
                provider = global_provider
        owns = provider is None
        if provider is None:
            provider = TracerProvider(
                resource=build_resource(name, resource_attributes), shutdown_on_exit=False
            )
            _created.add(id(provider))
            if not isinstance(global_provider, TracerProvider):
                trace.set_tracer_provider(provider)
        if id(provider) not in _providers_with_switch:
            provider.add_span_processor(_switch)
            _providers_with_switch.add(id(provider))
        old = _switch.delegate
        _switch.delegate = (
            BatchSpanProcessor(
                SafeExporter(exporter, destination),
                schedule_delay_millis=500,
                export_timeout_millis=int(timeout * 1000),
            )
            if add_exporter
            else None
        )
        if old is not None:
            old.shutdown()  # flushes what the previous destination still held
        tracer = provider.get_tracer("otel_mltrace", __version__)
        _state = Configuration(name, mode, destination, provider, owns, tracer)
        return _state


def shutdown() -> None:
    """Flush and stop the export path set up by ``configure()`` (also done at exit)."""
    global _state
    with _lock:
        _switch.shutdown()
        _state = None


atexit.register(shutdown)


def flush(timeout_s: float = 10.0) -> bool:
    """Export every finished run span now; True when all were handed over in time."""
    return _switch.force_flush(int(timeout_s * 1000))


def current_configuration() -> Configuration | None:
    return _state


def get_tracer() -> trace.Tracer:
    """The SDK's tracer; configures defaults on first use."""
    state = _state
    if state is None:
        state = configure()
    return state.tracer
