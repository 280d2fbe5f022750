"""Every configuration setting of otel-mltrace (SDK, collector and CLI), declared once.

Precedence, everywhere: **explicit argument / CLI flag > environment variable > default**.
All variables share the ``MLTRACE_`` prefix; the SDK also honours the standard
``OTEL_EXPORTER_OTLP_*`` variables for where to send spans, as every OTel SDK does.

Example::

    from otel_mltrace.config import SETTINGS, resolve
    db = resolve("index", explicit=None)        # -> $MLTRACE_INDEX or the default path
    print(SETTINGS["index"].env)                 # "MLTRACE_INDEX"
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ENV_PREFIX = "MLTRACE_"
T = TypeVar("T")
D = TypeVar("D")


def default_index_path() -> str:
    """Where the embedded index lives when nothing else is configured.

    ``$XDG_DATA_HOME/otel-mltrace/index.db`` (``~/.local/share/otel-mltrace/index.db``).
    """
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "otel-mltrace" / "index.db")


def default_spool_dir() -> str:
    """Where OTLP runs wait while the collector cannot take them: next to the embedded
    index, ``$XDG_DATA_HOME/otel-mltrace/spool`` (one subdirectory per endpoint)."""
    return str(Path(default_index_path()).parent / "spool")


def default_decode_workers() -> int:
    """Collector ingest worker processes when not configured: one per usable CPU (at most
    4), none on a single CPU (a worker there would only add a process hop)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = min(cpus or 1, 4)
    return n if n > 1 else 0


def _parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false/1/0), got {raw!r}")


def _parse_check_errors(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"warn", "fail"}:
        raise ValueError(f"expected warn or fail, got {raw!r}")
    return value


def _positive_seconds(raw: str) -> float:
    value = float(raw)
    if not value > 0:  # also rejects nan
        raise ValueError(f"expected a number of seconds > 0, got {raw!r}")
    return value


def _parse_headers(raw: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` as in ``OTEL_EXPORTER_OTLP_HEADERS``."""
    out: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"header {part!r} is not of the form key=value")
        key, value = part.split("=", 1)
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Setting:
    """One configuration setting: its name, environment variable, parser and default."""

    name: str
    env: str
    parse: Callable[[str], Any]
    default: Callable[[], Any]
    help: str


def _s(name: str, parse: Callable[[str], Any], default: Any, help: str) -> Setting:
    factory = default if callable(default) else (lambda: default)
    return Setting(name, ENV_PREFIX + name.upper(), parse, factory, help)


_ALL = [
    # SDK
    _s("service_name", str, "ml-pipeline", "service.name of pipeline spans"),
    _s("endpoint", str, None, "OTLP endpoint of a collector; unset = embedded index"),
    _s("protocol", str, "grpc", "OTLP protocol to the collector: grpc or http/protobuf"),
    _s("headers", _parse_headers, None, "extra OTLP headers, k=v,k2=v2"),
    _s("index", str, default_index_path, "embedded SQLite index path (no endpoint)"),
    _s("export_timeout", float, 10.0, "seconds one OTLP export (and shutdown) may take"),
    _s("certificate", str, None, "PEM CA bundle verifying the collector's TLS certificate"),
    _s("client_certificate", str, None, "PEM client certificate for mTLS to the collector"),
    _s("client_key", str, None, "PEM private key of the client certificate"),
    _s("insecure", _parse_bool, False, "plaintext gRPC to a host:port endpoint (no scheme)"),
    _s("queue_size", int, 8192, "finished spans held in memory; full = wait (embedded) or spool"),
    _s("spool_dir", str, default_spool_dir, "OTLP spool: runs the collector could not take yet"),
    _s("spool_max_bytes", int, 256 * 1024 * 1024, "spool size cap (drops are counted; 0 = off)"),
    _s("stat_cache", str, None, "path of the persistent artifact stat cache (unset = memory)"),
    _s("disabled", _parse_bool, False, "runs execute, nothing is exported, indexed or spooled"),
    _s("check_errors", _parse_check_errors, "warn", "a check that cannot run: warn or fail"),
    _s("metric_series_points", int, 1000, "points kept per metric series and run (thinned)"),
    _s("announce_runs", _parse_bool, True, "announce open runs by a start record (SIGKILL / OOM)"),
    _s("handle_sigterm", _parse_bool, True, "on SIGTERM end open runs as error and flush"),
    # collector
    _s("db", str, default_index_path, "collector store: SQLite path or postgresql:// URL"),
    _s("grpc_address", str, "127.0.0.1:4317", "OTLP/gRPC listen address"),
    _s("http_address", str, "127.0.0.1:4318", "OTLP/HTTP + API + /metrics listen address"),
    _s("max_body_bytes", int, 64 * 1024 * 1024, "largest accepted request body (413 above)"),
    _s("auth_token", str, None, "bearer token required on every listener (unset = none)"),
    _s("tls_cert", str, None, "PEM certificate for TLS on every listener"),
    _s("tls_key", str, None, "PEM private key for TLS on every listener"),
    _s("max_inflight", int, 64, "batches queued for the store before 503 / UNAVAILABLE"),
    _s("decode_workers", int, default_decode_workers, "ingest worker processes (0 = in-process)"),
    _s("openlineage_url", str, None, "OpenLineage/Marquez base URL: export RunEvents over HTTP"),
    _s("openlineage_transport", str, None, "OpenLineage transport: http, file or console"),
    _s("openlineage_endpoint", str, "api/v1/lineage", "OpenLineage HTTP endpoint path"),
    _s("openlineage_api_key", str, None, "OpenLineage HTTP API key (Bearer)"),
    _s("openlineage_file", str, None, "file transport: append events (JSON lines) here"),
    _s("openlineage_namespace", str, "otel-mltrace", "OpenLineage job namespace"),
    _s("openlineage_queue_size", int, 10000, "runs queued for OpenLineage before drops"),
    _s("forward_endpoint", str, None, "downstream OTLP endpoint to forward spans to"),
    _s("forward_protocol", str, "grpc", "downstream protocol: grpc or http/protobuf"),
    _s("forward_queue_size", int, 10000, "spans held for forwarding before drops"),
    _s("forward_hold_seconds", float, 2.0, "wait for late producers before forwarding"),
    _s("forward_spill_dir", str, None, "forward queue dir (default: beside the db; memory: off)"),
    _s("forward_spill_max_bytes", int, 256 * 1024 * 1024, "bound of the forward spill dir"),
    _s("forward_headers", _parse_headers, None, "headers on forwarded exports, k=v,k2=v2"),
    _s("forward_insecure", _parse_bool, False, "plaintext gRPC to a host:port endpoint"),
    _s("forward_ca_file", str, None, "PEM CA bundle to verify the downstream's TLS"),
    _s("forward_timeout", float, 10.0, "seconds one forwarded export may take"),
    _s("forward_grace_seconds", float, 5.0, "seconds to drain the forward queue at stop"),
    _s("label_limit", int, 200, "max distinct values per Prometheus label"),
    _s("drift_reference", str, "first:5", "drift reference: first:N, run:<id>, window:N"),
    _s("drift_thresholds", str, None, "drift alert thresholds, e.g. psi=0.25,js=0.1,ks=0.1"),
    _s("histogram_buckets", str, None, "histogram bounds: component/output=b1,b2;*/score=..."),
    _s("stale_after_seconds", float, 86400.0, "inputs older than this make a run stale"),
    _s("abandon_after", _positive_seconds, 86400.0, "seconds until an unended run is abandoned"),
    # CLI
    _s("server", str, None, "collector base URL for CLI queries (instead of --db)"),
]

SETTINGS: Mapping[str, Setting] = {s.name: s for s in _ALL}


def resolve(name: str, explicit: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    """Value of setting ``name``: ``explicit`` if given, else its env var, else the default.

    Raises ``ValueError`` naming the variable and the bad value when the env var is malformed.
    """
    setting = SETTINGS[name]
    if explicit is not None:
        return explicit
    env = os.environ if environ is None else environ
    raw = env.get(setting.env)
    if raw is not None and raw != "":
        try:
            return setting.parse(raw)
        except ValueError as exc:
            raise ValueError(f"{setting.env}={raw!r} is invalid: {exc}") from None
    return setting.default()


def resolve_settings(cls: type[D], kind: str, explicit: Mapping[str, Any]) -> D:
    """Build the dataclass ``cls`` whose field names are settings, each via :func:`resolve`.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Limits:
    ...     max_body_bytes: int
    >>> resolve_settings(Limits, "limit", {}).max_body_bytes > 0
    True
    """
    names = cls.__dataclass_fields__  # type: ignore[attr-defined]
    unknown = set(explicit) - set(names)
    if unknown:
        raise TypeError(f"unknown {kind} settings {sorted(unknown)}; known: {sorted(names)}")
    return cls(**{name: resolve(name, explicit.get(name)) for name in names})


def otlp_endpoint_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The standard OTel variables that point the SDK at a collector, most specific first."""
    env = os.environ if environ is None else environ
    for var in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        if env.get(var):
            return env[var]
    return None
