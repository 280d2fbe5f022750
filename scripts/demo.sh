#!/usr/bin/env bash
# The main job: set up, run the digits pipeline (six steps, six processes), traced,
# then show where one prediction came from and what the runs measured.
#   bash scripts/demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >/dev/null
WORKDIR=${1:-examples/digits/workdir}
export MLTRACE_INDEX="$PWD/$WORKDIR/lineage.db"
.venv/bin/python -m examples.digits.pipeline --workdir "$WORKDIR" --show-lineage
