"""What an exporter may use of the collector service that installs it.

Exporters are installed *by* ``service.Collector``; typing them against this protocol
instead of the class keeps the arrow one way (service -> exporters, never back).

Example::

    def install_thing(collector: CollectorHost) -> None:
        collector.routes.append(Route("/thing", handler))
        collector.on_stop.append(close_thing)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from mltrace_collector.index.queries.lineage_queries import LineageQueries
    from mltrace_collector.index.store.base import Store
    from mltrace_collector.service.ingest.pipeline import IngestPipeline


class HostSettings(Protocol):
    """The settings an exporter reads (``service.Settings`` has them)."""

    @property
    def db(self) -> str: ...

    @property
    def http_address(self) -> str: ...


class CollectorHost(Protocol):
    """The parts of ``service.Collector`` an exporter plugs into."""

    @property
    def settings(self) -> HostSettings: ...

    @property
    def store(self) -> Store: ...

    @property
    def pipeline(self) -> IngestPipeline: ...

    @property
    def queries(self) -> LineageQueries: ...

    routes: list[BaseRoute]
    on_stop: list[Callable[[], None]]
