#!/usr/bin/env bash
# The whole test suite on a fresh machine: set up, lint, type-check, test.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k store   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test-servers
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff lint";   ruff check .
echo "== ruff format"; ruff format --check .
echo "== mypy --strict"; mypy otel_mltrace collector/mltrace_collector tests examples benchmarks
echo "== pytest"
# pytest exits 5 when it collected no test: that is a failure here, like any non-zero exit.
python -m pytest -p no:cacheprovider "$@"
