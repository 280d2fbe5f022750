"""otel-mltrace: OpenTelemetry lineage and tracing for ML pipelines."""

__version__ = "0.1.0"
