#!/usr/bin/env bash
# Sets up everything the demo and the tests need on a fresh Debian machine. Idempotent.
#  - a virtualenv in .venv with the project installed editable, all extras and dev tools
#  - (as root, when missing) Debian packages for the real servers the tests run:
#    prometheus + promtool, prometheus-alertmanager, postgresql
#  - with --test-servers (scripts/test.sh): Jaeger v2 and an OpenTelemetry Collector built
#    with Go into ${MLTRACE_CACHE:-~/.cache/otel-mltrace}/bin when missing
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Reinstall only when pyproject.toml or the C extension's source (every _otlp_fast*.c unit
# and its header) changed since the last successful install (the editable install builds
# mltrace_collector/index/decode/_otlp_fast*.so in place; a failed compile is not an error:
# the collector then decodes in pure Python).
stamp=.venv/.otel-mltrace-installed
fast_dir=collector/mltrace_collector/index/decode
want=$(cat pyproject.toml "$fast_dir"/_otlp_fast*.c "$fast_dir"/_otlp_fast*.h | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing otel-mltrace and its extras into .venv (log: .venv/pip.log)"
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -e ".[all,dev]"; } >.venv/pip.log 2>&1; then
    tail -n 30 .venv/pip.log >&2
    echo "bootstrap: pip install failed (full log: .venv/pip.log)" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
  if ! compgen -G "$fast_dir/_otlp_fast.*.so" >/dev/null; then
    echo "bootstrap: the C extension mltrace_collector.index.decode._otlp_fast was not" \
         "built (no C compiler?); the collector falls back to its pure-Python decode" >&2
  fi
fi

if [ "${MLTRACE_SKIP_APT:-}" != "1" ]; then
  need=()
  command -v prometheus >/dev/null || need+=(prometheus)
  command -v promtool >/dev/null || need+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need+=(prometheus-alertmanager)
  { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || need+=(postgresql)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
      echo "bootstrap: installing Debian packages: ${need[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    else
      echo "bootstrap: missing ${need[*]} and not root with apt-get; their tests will skip" >&2
    fi
  fi
fi

# The servers only the tests need (Go builds, slow on a cold machine: ~15-30 min each):
#   bash scripts/bootstrap.sh --test-servers
if [ "${1:-}" = "--test-servers" ]; then
  # OpenTelemetry Collector (gateway tier) for the scale-out tests: built with the
  # OpenTelemetry Collector Builder when missing; on failure the tests skip with the reason.
  bash scripts/build_otelcol.sh || true
  # Jaeger v2 for the forwarding tests (tests/test_jaeger.py), built with Go when missing;
  # on failure the tests skip with the reason it records.
  bash scripts/build_jaeger.sh || true
fi
