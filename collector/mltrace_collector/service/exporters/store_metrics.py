"""Store-derived ``/metrics`` series of the index: failed checks and open/abandoned runs.

The index (``checks.py``, ``run_starts.py``) computes the numbers; this service-side module
registers them as providers of the Prometheus exporter, so the index never imports an
exporter. ``service.Collector`` calls both installers.

Example::

    install_check_metrics(collector)     # mltrace_check_failures_total{component,check}
    install_open_run_metrics(collector)  # mltrace_runs_abandoned_total, mltrace_runs_running
"""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from mltrace_collector.index.decode.checks import check_failures
from mltrace_collector.index.store.run_starts import ABANDONED, open_counts
from mltrace_collector.service.exporters.host import CollectorHost
from mltrace_collector.service.exporters.prometheus import add_provider, metrics_exporter


def install_check_metrics(collector: CollectorHost) -> None:
    """Export ``mltrace_check_failures_total{component,check}`` on the collector's
    ``/metrics`` (a store-derived series: the leader replica exports it)."""

    def families() -> list[Metric]:
        exporter = metrics_exporter(collector)
        fam = CounterMetricFamily(
            "mltrace_check_failures",
            "Failed before/after checks (status fail or error), per component and check.",
            labels=["component", "check"],
        )
        totals: dict[tuple[str, str], int] = {}
        for row in check_failures(collector.store):
            component, check = str(row["component"]), str(row["check"])
            if exporter is not None:  # the exporter's per-label cardinality cap
                component = exporter.guard("component", component)
                check = exporter.guard("check", check)
            key = (component, check)
            totals[key] = totals.get(key, 0) + int(row["failures"])
        for (component, check), n in sorted(totals.items()):
            fam.add_metric([component, check], n)
        return [fam]

    add_provider(collector, families, store_derived=True)


def install_open_run_metrics(collector: CollectorHost) -> None:
    """Export ``mltrace_runs_abandoned_total{component}`` (runs announced and never ended
    within ``MLTRACE_ABANDON_AFTER``) and ``mltrace_runs_running{component}`` on the
    collector's ``/metrics``; store-derived, so exported by the leader replica. The
    counter only drops if an abandoned run's own span arrives after all (Prometheus
    reads that as a counter reset)."""

    def families() -> list[Metric]:
        exporter = metrics_exporter(collector)
        abandoned = CounterMetricFamily(
            "mltrace_runs_abandoned",
            "Runs that started (start record received) and did not end within "
            "MLTRACE_ABANDON_AFTER seconds: killed by SIGKILL, the OOM killer or a lost host.",
            labels=["component"],
        )
        running = GaugeMetricFamily(
            "mltrace_runs_running",
            "Runs started and not ended yet, younger than MLTRACE_ABANDON_AFTER.",
            labels=["component"],
        )
        totals: dict[tuple[str, str], int] = {}
        for (component, status), n in open_counts(collector.store).items():
            if exporter is not None:  # the exporter's per-label cardinality cap
                component = exporter.guard("component", component)
            totals[(component, status)] = totals.get((component, status), 0) + n
        for (component, status), n in sorted(totals.items()):
            (abandoned if status == ABANDONED else running).add_metric([component], n)
        return [abandoned, running]

    add_provider(collector, families, store_derived=True)
