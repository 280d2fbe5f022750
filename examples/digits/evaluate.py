"""Step 5, evaluate: score ``models/model.pkl`` on ``data/features_test.npz``.

Writes ``reports/metrics.json`` (accuracy, macro F1, per-class recall, test size).

Traced as component ``evaluate``: metrics ``accuracy``, ``f1_macro``; output distributions
``test_max_proba`` (confidence on held-out data) and ``correct`` (categorical true/false).

Run alone::

    python -m examples.digits.evaluate --workdir /tmp/digits
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from sklearn.metrics import accuracy_score, f1_score, recall_score

import otel_mltrace
from examples.digits._common import Paths, atomic_open, load_npz, load_pickle, parser, run_step


def evaluate(paths: Paths) -> None:
    """Compute test metrics and write the report, as one traced run."""
    with otel_mltrace.run("evaluate") as run:
        run.add_input(paths.model)
        run.add_input(paths.features_test)
        model = load_pickle(paths.model)
        data = load_npz(paths.features_test)
        X, y = data["X"], data["y"]
        y_pred = model.predict(X)

        accuracy = float(accuracy_score(y, y_pred))
        f1_macro = float(f1_score(y, y_pred, average="macro"))
        recall = recall_score(y, y_pred, average=None, labels=list(range(10)), zero_division=0)
        report = {
            "accuracy": round(accuracy, 6),
            "f1_macro": round(f1_macro, 6),
            "n_test": int(len(y)),
            "recall_per_class": {str(k): round(float(v), 6) for k, v in enumerate(recall)},
        }
        with atomic_open(paths.metrics) as fh:
            json.dump(report, fh, indent=2, sort_keys=True)
            fh.write("\n")
        run.add_output(paths.metrics)

        run.log_metric("accuracy", accuracy)
        run.log_metric("f1_macro", f1_macro)
        run.log_output("test_max_proba", model.predict_proba(X).max(axis=1))
        run.log_output("correct", (y_pred == y).astype(str), kind="categorical")
        print(f"evaluate: accuracy={accuracy:.4f} f1_macro={f1_macro:.4f}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m examples.digits.evaluate --workdir DIR``."""
    args = parser("evaluate", "Score the model on the test features.").parse_args(argv)
    return run_step("evaluate", lambda: evaluate(Paths(args.workdir)))


if __name__ == "__main__":
    sys.exit(main())
