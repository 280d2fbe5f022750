"""Step 3, featurize: fit the feature transform on train, apply it to train and test.

The transform is a ``StandardScaler``, followed by a ``PCA`` when ``--pca N`` (N > 0) is
given. It is fitted on the training split only (no test leakage) and saved as
``models/scaler.pkl`` so that ``predict`` applies exactly the same transform. Features go
to ``data/features_train.npz`` / ``data/features_test.npz`` (arrays ``X``, ``y``,
``sample_id``).

Traced as component ``featurize``: params ``pca_components``, ``seed``; metric
``n_features``; output distribution ``feature_mean`` (mean feature value per training
sample; centered near 0 by construction, so a shift shows up in the *test* one,
``test_feature_mean``, which is logged as well).

Run alone::

    python -m examples.digits.featurize --workdir /tmp/digits --pca 0
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import otel_mltrace
from examples.digits._common import Paths, Table, parser, run_step, save_npz, save_pickle


def build_transform(pca_components: int, seed: int) -> Pipeline:
    """The unfitted feature transform."""
    steps: list[tuple[str, object]] = [("scale", StandardScaler())]
    if pca_components > 0:
        steps.append(("pca", PCA(n_components=pca_components, random_state=seed)))
    return Pipeline(steps)


def featurize(paths: Paths, pca_components: int, seed: int) -> None:
    """Fit the transform on train, write both feature files and the transform, traced."""
    with otel_mltrace.run(
        "featurize", params={"pca_components": pca_components, "seed": seed}
    ) as run:
        run.add_input(paths.train)
        run.add_input(paths.test)
        train, test = Table.read(paths.train), Table.read(paths.test)

        transform = build_transform(pca_components, seed)
        X_train = transform.fit_transform(train.X)
        X_test = transform.transform(test.X)

        save_npz(paths.features_train, X=X_train, y=train.y, sample_id=train.sample_id)
        run.add_output(paths.features_train)
        save_npz(paths.features_test, X=X_test, y=test.y, sample_id=test.sample_id)
        run.add_output(paths.features_test)
        save_pickle(paths.scaler, transform)
        run.add_output(paths.scaler)

        run.log_metric("n_features", int(X_train.shape[1]))
        run.log_output("feature_mean", X_train.mean(axis=1))
        run.log_output("test_feature_mean", X_test.mean(axis=1))
        print(f"featurize: {X_train.shape[1]} features, {len(train)} + {len(test)} samples")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m examples.digits.featurize --workdir DIR``."""
    about = "Fit the scaler (+PCA) on train; write feature files."
    p = parser("featurize", about, seed_of="the PCA solver")
    p.add_argument("--pca", type=int, default=0, help="PCA components (0 = no PCA)")
    args = p.parse_args(argv)
    return run_step("featurize", lambda: featurize(Paths(args.workdir), args.pca, args.seed))


if __name__ == "__main__":
    sys.exit(main())
