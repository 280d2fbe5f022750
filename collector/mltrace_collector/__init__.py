"""otel-mltrace collector: OTLP receivers -> lineage processor -> store -> API / exporters."""
