"""How a delivery attempt's outcome is counted: spooled, accepted, rejected, or dropped.

:class:`DeliveryOutcomes` is the half of the span processor
(:class:`~otel_mltrace.delivery_processor.DeliveringProcessor`) that settles a batch once
its fate is known -- every span ends up in exactly one count of the
:class:`~otel_mltrace.delivery.DeliveryCounters` -- and tracks whether the collector
answers (health and back-off between probes). The processor itself (queue, worker,
flush) mixes it in; it is not used on its own.

Example::

    class DeliveringProcessor(SpanProcessor, DeliveryOutcomes): ...
    self._to_spool(self._encode(spans), len(spans))   # spooled, or dropped with a reason

A request the collector refuses as too large for its body limit is sent again in halves,
down to single spans (:meth:`DeliveryOutcomes._send_pieces`), and the limit is remembered
(:class:`~otel_mltrace.request_split.SizeLimit`) so later requests are cut to fit first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan

from otel_mltrace.delivery import DeliveryCounters, IndexWriter
from otel_mltrace.request_split import SizeLimit, limit_from_message, split_request
from otel_mltrace.sender import Sender
from otel_mltrace.spool import Spool

MAX_REQUEST_BYTES = 3 * 1024 * 1024
"""Largest OTLP request sent or spooled: under gRPC's (and the OTel Collector's) default
4 MiB receive limit."""

log = logging.getLogger("otel_mltrace")


class DeliveryOutcomes:
    """Counting, spooling and health bookkeeping shared by the processor's worker and
    producers (a mixin: the processor's ``__init__`` sets every attribute below)."""

    destination: str
    counters: DeliveryCounters
    _index: IndexWriter | None
    _sender: Sender | None
    _spool: Spool | None
    _size_limit: SizeLimit
    _spool_hint: bool
    _spool_warned: bool
    _rejections_logged: int
    _healthy: bool
    _retry_at: float
    _backoff: float

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        # imported here: protobuf and the OTLP encoder cost ~40 ms at `import otel_mltrace`
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        return encode_spans(spans).SerializeToString()

    def _encoded(self, spans: Sequence[ReadableSpan]) -> list[tuple[bytes, int]]:
        """``spans`` as OTLP requests of at most ``MAX_REQUEST_BYTES`` each, or the smaller
        body limit learned from the collector's refusals (a single larger span stays whole):
        one oversized request would be refused by the collector's receive limit again and
        again, and hold up the spool behind it."""
        payload = self._encode(spans)
        limit = self._size_limit.bytes(MAX_REQUEST_BYTES)
        if len(payload) <= limit or len(spans) == 1:
            return [(payload, len(spans))]
        parts = min(len(spans), -(-len(payload) // limit))  # about the size of each piece
        out: list[tuple[bytes, int]] = []
        for k in range(parts):
            out += self._encoded(spans[k * len(spans) // parts : (k + 1) * len(spans) // parts])
        return out

    def _send_pieces(
        self, payload: bytes, n: int, replayed: bool = False
    ) -> list[tuple[bytes, int]]:
        """Send one request and settle its spans; the pieces still to keep (the collector did
        not answer): ``[(payload, n)]`` itself, or what is left of it after a split.

        Refused as too large: nothing of it was accepted, so its halves are sent instead,
        recursively; only a single span over the limit is dropped. Each piece is sent
        once, so a peer that does not deduplicate (Jaeger, an OTel Collector) sees no
        span twice."""
        if not (self._healthy or self._probe_due()):
            return [(payload, n)]
        assert self._sender is not None
        outcome = self._sender.send(payload)
        if outcome.ok:
            self._mark_ok()
            self._accepted(n, outcome.rejected, outcome.message, replayed)
            return []
        if outcome.too_large:
            self._mark_ok()  # it answered
            return self._split(payload, n, outcome.message, replayed)
        if not outcome.retryable:
            self._reject(n, outcome.message, outcome.drop_reason)
            return []
        self._mark_failed(n, outcome.message)
        return [(payload, n)]

    def _split(
        self, payload: bytes, n: int, message: str, replayed: bool
    ) -> list[tuple[bytes, int]]:
        first = not self._size_limit.learned
        self._size_limit.refused(len(payload), limit_from_message(message))
        try:
            # cut to the limit learned just now (not refused once per halving), at least
            # in halves (the learned limit has a floor)
            pieces = self._fit(payload, n)
            if len(pieces) == 1:  # read even at one span: a damaged file is not "a span"
                pieces = split_request(payload)
        except Exception:  # not a request we can read (a damaged spool file): no halves
            self._reject(n, message, "too large for the collector, and not a readable OTLP "
                         "request to split")  # fmt: skip
            return []
        if len(pieces) == 1:  # one span, too large even alone
            self._reject(pieces[0][1], message, self._too_large_reason())
            return []
        if first:
            log.warning(
                "otel-mltrace: %s refused a request of %d bytes as too large (%s); requests "
                "are split to fit from now on. %s",
                self.destination, len(payload), message[:200], self._raise_limit_hint(),
            )  # fmt: skip
        self.counters.add(split=1)
        left: list[tuple[bytes, int]] = []
        for piece, k in pieces:
            left += self._send_pieces(piece, k, replayed)
        return left

    def _fit(self, payload: bytes, n: int) -> list[tuple[bytes, int]]:
        """A spooled request cut to the learned limit (it may predate the lesson), so that
        a replay is not refused first."""
        if n < 2 or len(payload) <= self._size_limit.bytes(MAX_REQUEST_BYTES):
            return [(payload, n)]
        try:
            pieces = split_request(payload)
        except Exception:  # unreadable: sent as it is, and settled by the answer
            return [(payload, n)]
        out: list[tuple[bytes, int]] = []
        for piece, k in pieces:
            out += self._fit(piece, k)
        return out

    def _raise_limit_hint(self) -> str:
        return (
            "Raise the collector's limit: MLTRACE_MAX_BODY_BYTES (or --max-body-bytes) of "
            "otel-mltrace serve, max_recv_msg_size_mib of an OTel Collector's otlp receiver."
        )

    def _too_large_reason(self) -> str:
        named = self._size_limit.named
        limit = f"its limit of {named} bytes" if named else "its body limit"
        return (
            f"a single span larger than {limit} (raise the collector's limit: "
            "MLTRACE_MAX_BODY_BYTES for otel-mltrace serve, max_recv_msg_size_mib for an "
            "OTel Collector)"
        )

    def _spool_all(self, spans: Sequence[ReadableSpan]) -> None:
        for payload, n in self._encoded(spans):
            self._to_spool(payload, n)

    def _to_spool(self, payload: bytes, n: int, count: bool = True, replacing: int = 0) -> None:
        """Keep a request in the spool, or count its spans dropped; ``count``: add them to
        ``spooled`` (not for pieces of a request that was spooled already); ``replacing``:
        bytes of the spool file these pieces replace (``Spool.put``)."""
        spool = self._spool
        if spool is None or not spool.enabled:
            self.counters.drop(n, "not sent, and the spool is off (MLTRACE_SPOOL_MAX_BYTES=0)")
            return
        try:
            stored = spool.put(payload, n, replacing)
        except OSError as exc:
            reason = f"spool directory {spool.directory} unusable ({exc.strerror or exc})"
            self.counters.drop(n, reason)
            if not self._spool_warned:
                self._spool_warned = True
                log.warning("otel-mltrace: %s; set MLTRACE_SPOOL_DIR to a writable one", reason)
            return
        if stored:
            self.counters.add(spooled=n if count else 0)
            self._spool_hint = True
        else:
            self.counters.drop(n, f"spool full ({spool.max_bytes} bytes, MLTRACE_SPOOL_MAX_BYTES)")

    def _accepted(self, n: int, rejected: int, message: str, replayed: bool = False) -> None:
        ok = n - min(rejected, n)
        self.counters.add(delivered=ok, replayed=ok if replayed else 0)
        if rejected:
            self._reject(min(rejected, n), message)

    def _reject(self, n: int, message: str, reason: str = "") -> None:
        where = "the index" if self._index is not None else "the collector"
        self.counters.drop(n, reason or f"rejected as invalid by {where}")
        self._rejections_logged += 1
        if self._rejections_logged <= 5:  # the reasons of the first few; the rest counted
            log.warning("otel-mltrace: %s rejected %d spans: %s", self.destination, n, message)

    def _probe_due(self) -> bool:
        return time.monotonic() >= self._retry_at

    def _mark_ok(self) -> None:
        if not self._healthy:
            log.warning("otel-mltrace: export to %s recovered", self.destination)
        self._healthy, self._backoff = True, 0.5

    def _mark_failed(self, n: int, message: str) -> None:
        if self._healthy:
            where = self._spool.directory if self._spool and self._spool.enabled else None
            log.warning(
                "otel-mltrace: could not export %d spans to %s (%s); the pipeline goes on. %s",
                n,
                self.destination,
                message or "export failed",
                f"Spans wait in the spool {where} and are sent when the collector answers "
                "(by this process or the next one configured for this endpoint)."
                if where
                else "The spool is off (MLTRACE_SPOOL_MAX_BYTES=0): they are dropped and counted.",
            )
        self._healthy = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 30.0)
