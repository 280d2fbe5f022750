"""The lineage index: what a span becomes once it is in, and the questions it answers.

``model`` (runs, artifacts, record chunks), ``decode/`` (OTLP requests into runs and rows,
the C reader included: the way in), ``store/`` (SQLite and PostgreSQL backends, one set of
statements), ``queries/`` (trace, downstream, stale, review, records, compare, search,
rendering: the ways out), ``embedded`` (the index run inside the pipeline's own process).
Imports only the SDK's wire contract (``otel_mltrace.semconv``, ``config``, summaries).
"""
