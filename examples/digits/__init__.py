"""The digits example: a scikit-learn pipeline traced with otel-mltrace, one process per step.

Steps (each ``python -m examples.digits.<step> --workdir DIR``): ``ingest``, ``split``,
``featurize``, ``train``, ``evaluate``, ``predict``. ``examples.digits.pipeline`` runs
them all in order; ``examples.digits.source`` writes the raw data drop they start from.
"""
