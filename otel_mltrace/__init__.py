"""otel-mltrace: OpenTelemetry lineage and tracing for ML pipelines.

Two lines of setup, then one run per pipeline step::

    import otel_mltrace as mlt
    mlt.configure(service_name="digits")          # optional: defaults apply otherwise

    with mlt.run("train", inputs=["data/features.npz"]) as run:
        model = fit(...)
        run.add_output("models/model.pkl")
        run.log_metric("accuracy", 0.97)
"""

from otel_mltrace._version import __version__
from otel_mltrace.artifacts import artifact_id
from otel_mltrace.checks import CheckFailed
from otel_mltrace.delivery import DeliveryReport
from otel_mltrace.flags import flag, unflag
from otel_mltrace.provider import Configuration, configure, flush, shutdown
from otel_mltrace.run import Run, component, current_run, run

__all__ = [
    "__version__",
    "Configuration",
    "CheckFailed",
    "DeliveryReport",
    "Run",
    "artifact_id",
    "component",
    "configure",
    "current_run",
    "flag",
    "flush",
    "run",
    "shutdown",
    "unflag",
]
