"""Step 2, split: ``data/ingested.csv`` -> ``data/train.csv`` + ``data/test.csv``.

A stratified split (every digit keeps its share in both halves), reproducible by ``--seed``.

Traced as component ``split``: params ``test_size``, ``seed``; metrics ``n_train``,
``n_test``; output distribution ``test_label`` (categorical).

Run alone::

    python -m examples.digits.split --workdir /tmp/digits --test-size 0.25 --seed 0
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

import otel_mltrace
from examples.digits._common import Paths, Table, parser, run_step


def split(paths: Paths, test_size: float, seed: int) -> None:
    """Split the ingested table into train and test files, as one traced run."""
    with otel_mltrace.run("split") as run:
        run.log_param("test_size", test_size)
        run.log_param("seed", seed)
        run.add_input(paths.ingested)
        table = Table.read(paths.ingested)
        index = np.arange(len(table))
        train_idx, test_idx = train_test_split(
            index, test_size=test_size, random_state=seed, stratify=table.y
        )
        train, test = table.take(np.sort(train_idx)), table.take(np.sort(test_idx))
        train.write(paths.train)
        run.add_output(paths.train)
        test.write(paths.test)
        test_id = run.add_output(paths.test)
        # record-level lineage: each test row is a record a prediction can point back to
        run.log_records(test_id, [f"sample-{int(s)}" for s in test.sample_id])

        run.log_metric("n_train", len(train))
        run.log_metric("n_test", len(test))
        run.log_output("test_label", test.y.astype(str), kind="categorical")
        print(f"split: {len(train)} train / {len(test)} test")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m examples.digits.split --workdir DIR``."""
    p = parser("split", "Split the ingested digits into train and test files.", seed_of="the split")
    p.add_argument("--test-size", type=float, default=0.25, help="test fraction (0..1)")
    args = p.parse_args(argv)
    return run_step("split", lambda: split(Paths(args.workdir), args.test_size, args.seed))


if __name__ == "__main__":
    sys.exit(main())
