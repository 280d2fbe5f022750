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
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from otel_mltrace import semconv
from otel_mltrace._version import __version__
from otel_mltrace.config import otlp_endpoint_from_env, resolve
from otel_mltrace.delivery import DeliveryReport, log_undelivered
from otel_mltrace.delivery_processor import DeliveringProcessor

log = logging.getLogger("otel_mltrace")


@dataclass(frozen=True)
class Configuration:
    """What ``configure()`` set up: ``destination`` is the endpoint URL or the index path."""

    service_name: str
    mode: str
    """``"otlp"``, ``"embedded"`` or ``"disabled"`` (``MLTRACE_DISABLED``)."""
    destination: str
    provider: TracerProvider
    owns_provider: bool
    tracer: trace.Tracer


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
# the providers themselves, weakly: an id() of a collected provider is reused by the next
# one, which then looked as if it had the switch already (its runs went nowhere, silently)
_providers_with_switch: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
_created: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


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
    queue_size: int | None = None,
    spool_dir: str | None = None,
    spool_max: int | None = None,
    timeout: float | None = None,
    certificate: str | None = None,
    client_certificate: str | None = None,
    client_key: str | None = None,
    insecure: bool | None = None,
) -> Configuration:
    """Set up where run spans go. See the module docstring for the rules.

    ``timeout`` (seconds per export), ``certificate`` (CA bundle), ``client_certificate`` /
    ``client_key`` (mTLS) and ``insecure`` (plaintext gRPC to ``host:port``) beat the
    ``MLTRACE_`` and standard ``OTEL_EXPORTER_OTLP_(TRACES_)*`` variables
    (``otel_mltrace.otlp_transport``).

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
    queue = int(resolve("queue_size", queue_size))
    disabled = bool(resolve("disabled"))
    if disabled:  # MLTRACE_DISABLED: runs execute, nothing is exported, indexed or spooled
        mode, destination, add_exporter = "disabled", "", False

        def build() -> DeliveringProcessor:
            raise AssertionError("not called: no exporter when disabled")
    elif target is not None:
        from otel_mltrace.otlp_transport import transport_settings
        from otel_mltrace.sender import headers_from_env, make_sender
        from otel_mltrace.spool import Spool

        transport = transport_settings(
            timeout, certificate, client_certificate, client_key, insecure
        )
        sender = make_sender(target, proto, headers or headers_from_env(), transport=transport)
        base, cap = resolve("spool_dir", spool_dir), int(resolve("spool_max_bytes", spool_max))
        spool = Spool.for_endpoint(str(base), target, proto, cap)
        mode, destination = "otlp", target

        def build() -> DeliveringProcessor:
            return DeliveringProcessor(target, queue_size=queue, sender=sender, spool=spool)
    else:
        from otel_mltrace import plugins

        exporter_class = plugins.load("embedded_index")  # the index: above the SDK
        destination = str(resolve("index", index))
        mode = "embedded"

        def build() -> DeliveringProcessor:
            index_exporter = exporter_class(destination)
            return DeliveringProcessor(destination, queue_size=queue, index=index_exporter)

    with _lock:
        provider = tracer_provider
        global_provider = trace.get_tracer_provider()
        if provider is None and isinstance(global_provider, TracerProvider):
            if global_provider not in _created:  # the application's own provider
                provider = global_provider
        owns = provider is None
        if provider is None:
            provider = TracerProvider(
                resource=build_resource(name, resource_attributes), shutdown_on_exit=False
            )
            _created.add(provider)
            if not isinstance(global_provider, TracerProvider):
                trace.set_tracer_provider(provider)
        if provider not in _providers_with_switch:
            provider.add_span_processor(_switch)
            _providers_with_switch.add(provider)
        old = _switch.delegate
        _switch.delegate = build() if add_exporter else None
        if old is not None:
            old.shutdown()  # flushes what the previous destination still held
        tracer = provider.get_tracer("otel_mltrace", __version__)
        _state = Configuration(name, mode, destination, provider, owns, tracer)
        return _state


def shutdown(timeout_s: float | None = None) -> DeliveryReport:
    """Flush and stop the export path set up by ``configure()`` (also done at exit).

    Returns the final :class:`DeliveryReport`; when something was not delivered, one
    warning line says how much, why, and where it waits (the spool).
    """
    global _state
    with _lock:
        delegate, _switch.delegate = _switch.delegate, None
        state, _state = _state, None
    wait = float(resolve("export_timeout")) if timeout_s is None else timeout_s
    if isinstance(delegate, DeliveringProcessor):
        report = delegate.close(wait)
        log_undelivered(report)
        return report
    if delegate is not None:
        delegate.shutdown()
    return DeliveryReport("none", state.destination if state else "")


atexit.register(shutdown)


def flush(timeout_s: float = 10.0) -> DeliveryReport:
    """Export every finished run span now (OTLP: also send the spool while the collector
    answers) and say what became of them; ``bool(report)`` is True when all arrived.

    >>> report = flush(timeout_s=5)
    >>> report.dropped
    0
    """
    delegate = _switch.delegate
    if isinstance(delegate, DeliveringProcessor):
        return delegate.flush(timeout_s)
    state = _state
    return DeliveryReport("none", state.destination if state else "")


def hand_over(timeout_s: float) -> None:
    """:func:`flush` for the SDK itself (run announcements, SIGTERM): no report returned
    or consumed, and no extra attempt on a collector that is down (its back-off holds)."""
    delegate = _switch.delegate
    if isinstance(delegate, DeliveringProcessor):
        delegate.hand_over(timeout_s)


def current_configuration() -> Configuration | None:
    return _state


def get_tracer() -> trace.Tracer:
    """The SDK's tracer; configures defaults on first use."""
    state = _state
    if state is None:
        state = configure()
    return state.tracer
