#!/usr/bin/env bash
# Sets up everything the demo and the tests need on a fresh Debian machine. Idempotent.
#  - a virtualenv in .venv with the project installed editable, all extras and dev tools
#  - (as root, when missing) Debian packages for the real servers the tests run:
#    prometheus + promtool, prometheus-alertmanager, postgresql
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[all,dev]"

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
