"""Step 6, predict: score new rows with the saved transform and model.

The serving path: it reads the rows to score (``data/test.csv``, the held-out split stands
for new traffic), applies ``models/scaler.pkl`` (the transform fitted by ``featurize``) and
``models/model.pkl``, and writes ``predictions/predictions.csv`` with columns
``prediction_id`` (``pred-<sample_id>``: stable across reruns, unique within the file),
``sample_id``, ``predicted_label``, ``confidence`` (highest class probability).

Traced as component ``predict``: inputs = rows, transform and model; metric
``n_predictions``; output distributions ``predicted_label`` (categorical) and
``confidence`` (numeric).

Run alone::

    python -m examples.digits.predict --workdir /tmp/digits
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Unpickling the transform and model imports these; importing them up front keeps a second
# of import time out of the run's duration, which should measure scoring.
import sklearn.linear_model
import sklearn.pipeline  # noqa: F401

import otel_mltrace
from examples.digits._common import Paths, Table, load_pickle, parser, run_step, write_csv

HEADER = ["prediction_id", "sample_id", "predicted_label", "confidence"]


def predict(paths: Paths) -> None:
    """Score the rows and write the predictions file, as one traced run."""
    with otel_mltrace.run("predict") as run:
        run.add_input(paths.test)
        run.add_input(paths.scaler)
        run.add_input(paths.model)
        rows = Table.read(paths.test)
        transform = load_pickle(paths.scaler)
        model = load_pickle(paths.model)

        proba = model.predict_proba(transform.transform(rows.X))
        labels = model.classes_[proba.argmax(axis=1)]
        confidence = proba.max(axis=1)
        write_csv(
            paths.predictions,
            HEADER,
            (
                [f"pred-{int(s)}", int(s), int(label), f"{float(c):.6f}"]
                for s, label, c in zip(rows.sample_id, labels, confidence, strict=True)
            ),
        )
        predictions_id = run.add_output(paths.predictions)
        run.log_records(
            predictions_id,
            [f"pred-{int(s)}" for s in rows.sample_id],
            sources=[f"sample-{int(s)}" for s in rows.sample_id],
        )

        run.log_metric("n_predictions", len(rows))
        run.log_output("predicted_label", labels.astype(str), kind="categorical")
        run.log_output("confidence", confidence)
        print(f"predict: {len(rows)} predictions -> {paths.predictions}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m examples.digits.predict --workdir DIR``."""
    args = parser("predict", "Write predictions for the held-out rows.").parse_args(argv)
    return run_step("predict", lambda: predict(Paths(args.workdir)))


if __name__ == "__main__":
    sys.exit(main())
