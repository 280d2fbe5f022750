"""The collector service, ``otel-mltrace serve``: spans in, answers and signals out.

``receivers/`` (OTLP gRPC and HTTP) → ``ingest/`` (pipeline, decode and write workers) →
the index; out through ``api/`` (the query API), ``exporters/`` (Prometheus metrics,
forwarding to Jaeger/Tempo, OpenLineage). ``collector.Collector`` assembles them.
"""
