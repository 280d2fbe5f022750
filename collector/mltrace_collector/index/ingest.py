"""The one interface between the OTLP receivers and the rest of the collector.

Receivers decode transport (gRPC / HTTP, protobuf / JSON, gzip, auth, limits) into an
``ExportTraceServiceRequest`` and hand it to an ``ExportHandler``. The handler returns only
after everything it accepted is durably committed to the store, so a receiver may
acknowledge the export as soon as ``export`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class Overloaded(Exception):
    """The collector cannot take the batch now; the client should retry after a while.

    Receivers map it to HTTP 503 + ``Retry-After`` and gRPC ``UNAVAILABLE`` + ``RetryInfo``.
    """

    def __init__(self, retry_after_s: float, message: str = "collector is overloaded") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Rejected(Exception):
    """The request holds data the collector cannot store: retrying it cannot help.

    Receivers map it to HTTP 400 and gRPC ``INVALID_ARGUMENT``, with this message.
    """


@dataclass(frozen=True)
class ExportOutcome:
    """Result of one export: OTLP partial success when ``rejected_spans`` > 0."""

    rejected_spans: int = 0
    error_message: str = ""


class ExportHandler(Protocol):
    """Takes one decoded export request; blocks until it is durably stored."""

    def export(self, request: ExportTraceServiceRequest, raw: bytes | None = None) -> ExportOutcome:
        """Process and commit ``request``; raise ``Overloaded`` to apply back-pressure.

        ``raw``: the serialized request as received, when the receiver has it (protobuf)."""
        ...
