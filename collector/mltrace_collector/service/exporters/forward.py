"""Forward every received span to a downstream OTLP endpoint, with links to producer runs.

:func:`install_forwarding` plugs a :class:`~mltrace_collector.service.exporters.forwarder.Forwarder`
(the queue, spill and sender thread: see that module) into a running collector: it
observes every committed batch, is drained before the store closes, serves
``GET /api/v1/forward`` (the stats as JSON) and registers :class:`ForwardMetricsCollector`
as a per-replica provider of the Prometheus exporter (``mltrace_forward_spans_total{outcome}``
and ``mltrace_forward_queue_spans``, docs/metrics.md). :class:`Forwarder` and
:class:`ForwardSettings` are re-exported here.

Example::

    MLTRACE_FORWARD_ENDPOINT=http://127.0.0.1:4317 otel-mltrace serve   # Jaeger/Tempo/otelcol

    forwarder = install_forwarding(collector, ForwardSettings.resolve(
        forward_endpoint="http://127.0.0.1:4318", forward_protocol="http/protobuf"))
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mltrace_collector.service.exporters.forward_metrics import ForwardMetricsCollector
from mltrace_collector.service.exporters.forward_spill import spill_dir_for
from mltrace_collector.service.exporters.forwarder import MAX_BATCH_BYTES as MAX_BATCH_BYTES
from mltrace_collector.service.exporters.forwarder import MAX_BATCH_SPANS as MAX_BATCH_SPANS
from mltrace_collector.service.exporters.forwarder import MAX_SERVER_DELAY_S as MAX_SERVER_DELAY_S
from mltrace_collector.service.exporters.forwarder import RECHECK_S as RECHECK_S
from mltrace_collector.service.exporters.forwarder import Forwarder as Forwarder
from mltrace_collector.service.exporters.forwarder import ForwardSettings as ForwardSettings

if TYPE_CHECKING:
    from mltrace_collector.service.exporters.host import CollectorHost

log = logging.getLogger("mltrace_collector.forward")


def install_forwarding(
    collector: CollectorHost, settings: ForwardSettings | None = None
) -> Forwarder | None:
    """Plug forwarding into ``collector`` when an endpoint is configured (else no-op)."""
    settings = settings or ForwardSettings.resolve()
    if not settings.forward_endpoint:
        return None
    where = spill_dir_for(settings.forward_spill_dir, collector.settings)
    settings = replace(settings, forward_spill_dir=where)
    forwarder = Forwarder(settings, collector.queries.producer_for)
    collector.pipeline.add_observer(forwarder.observe)
    collector.on_stop.insert(0, forwarder.stop)  # drain before the store closes

    async def forward_stats(_request: Request) -> JSONResponse:
        return JSONResponse(forwarder.stats())

    collector.routes.append(Route("/api/v1/forward", forward_stats, methods=["GET"]))
    from mltrace_collector.service.exporters.prometheus import add_provider

    add_provider(collector, ForwardMetricsCollector(forwarder.stats).collect, store_derived=False)
    log.info("forwarding spans to %s (%s)", settings.forward_endpoint, settings.forward_protocol)
    return forwarder
