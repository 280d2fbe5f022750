"""Optional outputs of the collector: Prometheus ``/metrics``, OTLP forwarding, OpenLineage.

Each exporter plugs itself in from ``Collector.install_features`` with one install call,
e.g. :func:`mltrace_collector.service.exporters.prometheus.install_metrics`.
"""
