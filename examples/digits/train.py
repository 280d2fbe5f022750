"""Step 4, train: logistic regression on ``data/features_train.npz`` -> ``models/model.pkl``.

This step uses the decorator form, ``@otel_mltrace.component``: the function's
``features_path`` argument is declared as the input (identified before the call),
``model_path`` as the output (identified after it returns), ``C`` and ``max_iter`` as
params. Inside, :func:`otel_mltrace.current_run` gives the run for metrics.

Metrics ``train_accuracy``, ``n_iter``; output distribution ``train_max_proba`` (the
model's confidence on its own training data).

Run alone::

    python -m examples.digits.train --workdir /tmp/digits --C 1.0 --max-iter 200
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sklearn.linear_model import LogisticRegression

import otel_mltrace
from examples.digits._common import Paths, load_npz, parser, run_step, save_pickle


@otel_mltrace.component(
    "train", inputs=["features_path"], outputs=["model_path"], params=["C", "max_iter"]
)
def train(features_path: Path, model_path: Path, C: float = 1.0, max_iter: int = 200) -> float:
    """Fit the classifier, save it, and return its training accuracy."""
    run = otel_mltrace.current_run()
    assert run is not None, "@component always provides a current run"
    data = load_npz(features_path)
    model = LogisticRegression(C=C, max_iter=max_iter)
    model.fit(data["X"], data["y"])
    save_pickle(model_path, model)

    # Accuracy from the probabilities, not ``model.score``: that lazily imports
    # sklearn.metrics, which would add seconds of import time to the run's duration.
    proba = model.predict_proba(data["X"])
    accuracy = float((model.classes_[proba.argmax(axis=1)] == data["y"]).mean())
    run.log_metric("train_accuracy", accuracy)
    run.log_metric("n_iter", int(max(model.n_iter_)))
    run.log_output("train_max_proba", proba.max(axis=1))
    print(f"train: train_accuracy={accuracy:.4f}")
    return accuracy


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m examples.digits.train --workdir DIR``."""
    p = parser("train", "Train logistic regression on the training features.")
    p.add_argument("--C", type=float, default=1.0, help="inverse regularization strength")
    p.add_argument("--max-iter", type=int, default=200, help="solver iteration limit")
    args = p.parse_args(argv)
    paths = Paths(args.workdir)
    return run_step(
        "train", lambda: train(paths.features_train, paths.model, args.C, args.max_iter)
    )


if __name__ == "__main__":
    sys.exit(main())
