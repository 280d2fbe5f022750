"""The external raw data drop: ``source/digits_raw.csv``, materialized from scikit-learn.

This is *not* a traced step. It stands for data that arrives from outside the pipeline (a
vendor export, a nightly dump), so no run produced it and lineage bottoms out here.

Like real drops it is a little dirty: every ``DIRTY_EVERY``-th sample has an empty pixel
cell, which ``ingest`` must drop. ``shift`` simulates an upstream distribution change, a
brighter sensor that saturates: pixel intensities become
``clip(x * (1 + 0.1 * shift) + shift, 0, 16)`` (no change at ``shift=0``). The clipping
matters: a purely affine change per pixel would be undone exactly by the ``StandardScaler``
refitted downstream, leaving model, metrics and predictions unchanged; saturation destroys
information, so the shift reaches every downstream artifact.

Run alone::

    python -m examples.digits.source --workdir /tmp/digits [--shift 3]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits

from examples.digits._common import COLUMNS, Paths, parser, write_csv

MAX_INTENSITY = 16.0
"""Pixel intensities of the digits dataset are 4-bit: 0..16."""
DIRTY_EVERY = 250
"""Every this many samples, one pixel cell is left empty (1797 samples -> 7 dirty rows)."""


def shifted(pixels: NDArray[np.float64], shift: float) -> NDArray[np.float64]:
    """Pixel intensities under a deliberate distribution shift (identity at 0)."""
    if shift == 0:
        return pixels
    return np.clip(pixels * (1.0 + 0.1 * shift) + shift, 0.0, MAX_INTENSITY)


def _fmt(value: float, integral: bool) -> str:
    return str(int(value)) if integral else repr(round(float(value), 6))


def materialize(workdir: str | Path, shift: float = 0.0) -> Path:
    """Write ``<workdir>/source/digits_raw.csv``; returns its path.

    Deterministic: the same ``shift`` always gives the same bytes (hence the same ID).
    """
    paths = Paths(workdir)
    digits = load_digits()
    pixels = shifted(np.asarray(digits.data, dtype=np.float64), shift)
    labels = np.asarray(digits.target, dtype=np.int64)
    integral = shift == 0

    def rows() -> Iterator[Sequence[object]]:
        for i, (x, y) in enumerate(zip(pixels, labels, strict=True)):
            cells = [_fmt(v, integral) for v in x]
            if i % DIRTY_EVERY == DIRTY_EVERY - 1:
                cells[i % len(cells)] = ""  # a missing value, as in real drops
            yield [i, *cells, int(y)]

    write_csv(paths.source, COLUMNS, rows())
    return paths.source


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: materialize the raw drop into ``--workdir``."""
    p = parser("source", "Write the raw digits data drop (not a traced step).")
    p.add_argument("--shift", type=float, default=0.0, help="distribution shift (0 = none)")
    args = p.parse_args(argv)
    print(materialize(args.workdir, args.shift))
    return 0


if __name__ == "__main__":
    sys.exit(main())
