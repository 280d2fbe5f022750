"""Component runs: the ``run()`` context manager and the ``@component`` decorator.

One component run is one OTel span carrying the attributes of the wire contract
(``otel_mltrace.semconv``). The run itself lives in :mod:`otel_mltrace.run_span`, the
decorator in :mod:`otel_mltrace.component_decorator`; this module re-exports both, so
``from otel_mltrace.run import Run, component, current_run, run`` keeps working. Example::

    import otel_mltrace as mlt

    with mlt.run("featurize", inputs=["data/clean.csv"], params={"scale": True}) as run:
        X = featurize("data/clean.csv", "data/features.npz")
        run.add_output("data/features.npz")
        run.log_metric("n_features", X.shape[1])
        run.log_output("feature_mean", X.mean(axis=1))
"""

from __future__ import annotations

from otel_mltrace.component_decorator import component as component
from otel_mltrace.run_span import Run as Run
from otel_mltrace.run_span import current_run as current_run
from otel_mltrace.run_span import run as run
