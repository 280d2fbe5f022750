"""Requests a collector refuses as too large: split them, and learn its limit.

A collector whose body limit is lower than the SDK's own request cap (``otel-mltrace
serve`` with a small ``MLTRACE_MAX_BODY_BYTES``, an OTel Collector with a small
``max_recv_msg_size_mib``) answers HTTP 413 or gRPC ``RESOURCE_EXHAUSTED`` "received
message larger than max" (the OTel Collector's HTTP receiver: 400 "request body too
large"; ``otel_mltrace.sender`` recognises all three). Nothing of such a request was
accepted, so the delivery worker sends it again in halves (:func:`split_request`,
recursively, down to one span), and :class:`SizeLimit` remembers the limit for the rest of
the process so later requests are cut to fit before they are sent, not refused first.

Splitting works on the serialized ``ExportTraceServiceRequest`` (what the spool holds):
each half keeps the resource and instrumentation scope of its spans, so a run span and its
record chunk spans stay attributed as before, whichever half they land in (the collector
joins them in any order, docs/semantics.md).

Example::

    limit = SizeLimit()
    limit.refused(len(payload), limit_from_message("larger than max (5000 vs. 2048)"))
    limit.bytes(3 << 20)                      # 2048: requests are cut to this size now
    first, second = split_request(payload)    # ((bytes, spans), (bytes, spans))
"""

from __future__ import annotations

import re
import threading

MIN_LEARNED_BYTES = 1024
"""The learned limit never cuts requests below this many bytes (a refusal of a smaller
request still splits it, but one odd answer cannot make every later request tiny)."""

_LIMIT_PATTERNS = (
    re.compile(r"larger than max \(\d+ vs\. (\d+)\)"),  # grpc (C core and Go)
    re.compile(r"limit of (\d+) bytes"),  # otel-mltrace serve's 413
)


def limit_from_message(message: str) -> int | None:
    """The receiver's limit in bytes when its refusal names it, else None."""
    for pattern in _LIMIT_PATTERNS:
        found = pattern.search(message)
        if found:
            return int(found.group(1))
    return None


class SizeLimit:
    """What this process learned about the collector's body limit (thread-safe).

    ``bytes(cap)`` is the size requests are cut to: ``cap`` until a refusal, then just
    under the smallest refused request (or the limit the refusal named), never below
    :data:`MIN_LEARNED_BYTES`. It only ever goes down, and lives as long as the span
    processor (one ``configure()``): a collector whose limit is raised is used fully
    again after the next ``configure()`` or restart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._learned: int | None = None
        self.named: int | None = None
        """The limit a refusal named, if any (for the messages)."""

    def after_fork(self) -> None:
        """In a forked child: a lock the parent's worker held at the fork stays held (what
        was learned is kept: the child sends to the same collector)."""
        self._lock = threading.Lock()

    def refused(self, size: int, named: int | None = None) -> None:
        """A request of ``size`` bytes was refused as too large (``named``: the limit its
        answer gave)."""
        below = size - 1
        if named is not None and 0 < named < size:
            below = named
            self.named = named
        with self._lock:
            self._learned = below if self._learned is None else min(self._learned, below)

    def bytes(self, cap: int) -> int:
        learned = self._learned
        if learned is None:
            return cap
        return min(cap, max(learned, MIN_LEARNED_BYTES))

    @property
    def learned(self) -> bool:
        return self._learned is not None


def split_request(payload: bytes) -> list[tuple[bytes, int]]:
    """``payload`` (a serialized ``ExportTraceServiceRequest`` of two spans or more) as two
    requests, each ``(bytes, spans)``, with about half of the spans each, in order.

    A request of one span (or none) comes back as it is: ``[(payload, 1)]``.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(payload)
    places = [
        (r, s, i)
        for r, rs in enumerate(request.resource_spans)
        for s, ss in enumerate(rs.scope_spans)
        for i in range(len(ss.spans))
    ]
    if len(places) < 2:
        return [(payload, len(places))]
    half = len(places) // 2
    return [(_subset(request, part), len(part)) for part in (places[:half], places[half:])]


def _subset(request: object, places: list[tuple[int, int, int]]) -> bytes:
    """A request holding the spans at ``places`` (resource, scope, span indexes), each under
    a copy of its own resource and scope."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    assert isinstance(request, ExportTraceServiceRequest)
    out = ExportTraceServiceRequest()
    last: tuple[int, int] | None = None
    last_r: int | None = None
    target_scope = None
    target_rs = None
    for r, s, i in places:
        source_rs = request.resource_spans[r]
        if r != last_r:
            target_rs = out.resource_spans.add()
            target_rs.resource.CopyFrom(source_rs.resource)
            target_rs.schema_url = source_rs.schema_url
            last_r = r
        if (r, s) != last:
            source_ss = source_rs.scope_spans[s]
            assert target_rs is not None
            target_scope = target_rs.scope_spans.add()
            target_scope.scope.CopyFrom(source_ss.scope)
            target_scope.schema_url = source_ss.schema_url
            last = (r, s)
        assert target_scope is not None
        target_scope.spans.add().CopyFrom(source_rs.scope_spans[s].spans[i])
    return out.SerializeToString()
