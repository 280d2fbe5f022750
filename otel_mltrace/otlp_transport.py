"""How the SDK's OTLP sender connects: timeout, TLS trust, client certificate, plaintext.

Each value comes, most specific first, from the ``configure()`` argument, the
``MLTRACE_`` variable, ``OTEL_EXPORTER_OTLP_TRACES_<X>``, ``OTEL_EXPORTER_OTLP_<X>``, and
the default, so settings made for the official OTel exporters apply here too:

============================  =====================================================
``<X>``                       meaning
============================  =====================================================
``TIMEOUT``                   milliseconds one export may take (the OTel spec's unit;
                              ``MLTRACE_EXPORT_TIMEOUT`` and ``timeout=`` are seconds)
``CERTIFICATE``               PEM CA bundle that verifies the collector's certificate
``CLIENT_CERTIFICATE``        PEM client certificate (mTLS), with ``CLIENT_KEY``
``CLIENT_KEY``                PEM private key of the client certificate
``INSECURE``                  ``true``: plaintext gRPC to an endpoint given without a
                              scheme (``host:port``); a scheme decides by itself
============================  =====================================================

A file that cannot be read, a client certificate without its key (or the reverse) and a
timeout that is not a positive number are errors naming the variable and the fix, raised
by ``configure()`` rather than failing every later export.

Example::

    t = transport_settings(timeout=5)       # 5 s, whatever the environment says
    t.timeout_s, t.client_pair()            # (5.0, None)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from otel_mltrace.config import SETTINGS, _parse_bool

log = logging.getLogger("otel_mltrace")

_OTEL = "OTEL_EXPORTER_OTLP_"
_SECONDS_LIKE_MS = 100
"""An OTel timeout below this many ms was probably meant as seconds (see ``_timeout``)."""


@dataclass(frozen=True)
class Transport:
    """Resolved connection settings of one OTLP destination."""

    timeout_s: float
    certificate: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    insecure: bool = False
    """Plaintext for a scheme-less gRPC endpoint (``host:port``)."""

    def client_pair(self) -> tuple[str, str] | None:
        """``(certificate, key)`` paths for mTLS, or None."""
        if self.client_certificate and self.client_key:
            return self.client_certificate, self.client_key
        return None


def _lookup(
    name: str, otel: str, explicit: object, env: Mapping[str, str]
) -> tuple[str | None, str]:
    """``(raw value, where it came from)``: argument, MLTRACE_ variable, OTel variables."""
    if explicit is not None:
        return str(explicit), f"configure({name}=…)"
    for var in (SETTINGS[name].env, f"{_OTEL}TRACES_{otel}", f"{_OTEL}{otel}"):
        if env.get(var):
            return env[var], var
    return None, ""


def _readable(name: str, otel: str, explicit: str | None, env: Mapping[str, str]) -> str | None:
    path, source = _lookup(name, otel, explicit, env)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ValueError(
            f"{source}: cannot read {path!r} ({exc.strerror or exc}); give the path of a PEM "
            f"file or unset it"
        ) from None
    return path


def _timeout(explicit: float | None, env: Mapping[str, str]) -> float:
    """Seconds: ``timeout=`` and ``MLTRACE_EXPORT_TIMEOUT`` are seconds, OTel's are ms."""
    ours = SETTINGS["export_timeout"].env
    otel = [v for v in (f"{_OTEL}TRACES_TIMEOUT", f"{_OTEL}TIMEOUT") if env.get(v)]
    if explicit is not None:
        value, source = float(explicit), "configure(timeout=…)"
    elif env.get(ours):
        value, source = _number(env[ours], ours, "seconds"), ours
    elif otel:
        var = otel[0]
        raw_ms = env[var]
        value, source = _number(raw_ms, var, "milliseconds") / 1000, var
        if value * 1000 < _SECONDS_LIKE_MS:
            log.warning(
                "otel-mltrace: %s=%s is %s ms (the OTel spec's unit); opentelemetry-python "
                "reads it as seconds. Set %s=%d for %s s, or MLTRACE_EXPORT_TIMEOUT (seconds).",
                var, raw_ms, raw_ms, var, int(float(raw_ms) * 1000), raw_ms,
            )  # fmt: skip
    else:
        return float(SETTINGS["export_timeout"].default())
    if not value > 0:
        raise ValueError(f"{source}: timeout {value!r} must be a number > 0")
    return value


def _number(raw: str, var: str, unit: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"{var}={raw!r} is invalid: expected a number of {unit} > 0")
    return value


def transport_settings(
    timeout: float | None = None,
    certificate: str | None = None,
    client_certificate: str | None = None,
    client_key: str | None = None,
    insecure: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> Transport:
    """Resolve every setting (module docstring); raises ``ValueError`` naming a bad one."""
    env = os.environ if environ is None else environ
    cert = _readable("client_certificate", "CLIENT_CERTIFICATE", client_certificate, env)
    key = _readable("client_key", "CLIENT_KEY", client_key, env)
    if bool(cert) != bool(key):
        missing = "CLIENT_KEY" if cert else "CLIENT_CERTIFICATE"
        raise ValueError(
            f"mTLS needs a client certificate and its key, and {missing.lower()} is not set: "
            f"set {_OTEL}{missing} (or MLTRACE_{missing}, configure({missing.lower()}=…)), "
            "or unset the other"
        )
    raw_insecure, source = _lookup("insecure", "INSECURE", insecure, env)
    try:
        plain = _parse_bool(raw_insecure) if raw_insecure is not None else False
    except ValueError as exc:
        raise ValueError(f"{source}={raw_insecure!r} is invalid: {exc}") from None
    return Transport(
        timeout_s=_timeout(timeout, env),
        certificate=_readable("certificate", "CERTIFICATE", certificate, env),
        client_certificate=cert,
        client_key=key,
        insecure=plain,
    )
