#!/usr/bin/env bash
# The main job: set up, start a collector, run the digits pipeline (six steps, six
# processes) twice through it — normal data, then shifted data — and show where one
# prediction came from, the runs' metrics, and the Prometheus series (drift included).
#   bash scripts/demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m examples.digits.demo --workdir "${1:-examples/digits/workdir}"
