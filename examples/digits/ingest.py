"""Step 1, ingest: validate the raw drop into ``data/ingested.csv``.

Reads ``source/digits_raw.csv`` (the external raw data, produced by no run), drops rows with
missing or unparseable cells or out-of-range labels, casts types (``sample_id`` and ``label``
to int, pixels to float) and writes the clean table.

Traced as component ``ingest``: input = the raw file, output = the ingested table; metrics
``rows_in``, ``rows_out``, ``rows_dropped``; output distributions ``pixel_mean`` (mean pixel
intensity per sample, the signal a drift alert watches) and ``label`` (categorical).

Run alone::

    MLTRACE_INDEX=/tmp/digits/lineage.db python -m examples.digits.ingest --workdir /tmp/digits
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np

import otel_mltrace
from examples.digits._common import COLUMNS, Paths, Table, parser, read_csv, run_step

N_CLASSES = 10


def _parse(row: list[str]) -> tuple[int, list[float], int] | None:
    """One raw row as typed values, or None when it is invalid."""
    if len(row) != len(COLUMNS) or any(cell.strip() == "" for cell in row):
        return None
    try:
        sample_id = int(row[0])
        pixels = [float(c) for c in row[1:-1]]
        label = int(row[-1])
    except ValueError:
        return None
    if not 0 <= label < N_CLASSES or not all(math.isfinite(v) for v in pixels):
        return None
    return sample_id, pixels, label


def ingest(paths: Paths) -> None:
    """Validate the raw drop and write the ingested table, as one traced run."""
    with otel_mltrace.run("ingest", params={"n_classes": N_CLASSES}) as run:
        run.add_input(paths.source)
        header, raw = read_csv(paths.source)
        if header != COLUMNS:
            raise ValueError(f"{paths.source}: unexpected header {header[:3]}…")
        parsed = [p for p in (_parse(r) for r in raw) if p is not None]
        ids = [p[0] for p in parsed]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{paths.source}: duplicate sample_id values")
        table = Table(
            np.asarray(ids, dtype=np.int64),
            np.asarray([p[1] for p in parsed], dtype=np.float64).reshape(len(parsed), -1),
            np.asarray([p[2] for p in parsed], dtype=np.int64),
        )
        if len(table) == 0:
            raise ValueError(f"{paths.source}: no valid rows")
        table.write(paths.ingested)
        run.add_output(paths.ingested)

        run.log_metric("rows_in", len(raw))
        run.log_metric("rows_out", len(table))
        run.log_metric("rows_dropped", len(raw) - len(table))
        run.log_output("pixel_mean", table.X.mean(axis=1))
        run.log_output("label", table.y.astype(str), kind="categorical")
        print(f"ingest: {len(table)}/{len(raw)} rows valid -> {paths.ingested}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m examples.digits.ingest --workdir DIR``."""
    args = parser("ingest", __doc__.splitlines()[0] if __doc__ else "").parse_args(argv)
    return run_step("ingest", lambda: ingest(Paths(args.workdir)))


if __name__ == "__main__":
    sys.exit(main())
