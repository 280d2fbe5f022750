"""Cross-trace links from a consumer run span to the run spans that produced its inputs.

Tracing backends do not traverse across traces, so before a consumer run span goes
downstream the forwarder adds one OTLP span link per input artifact that has a producer in
the index: ``trace_id``/``span_id`` of the producer run span, attributes
``mltrace.link.artifact`` = the artifact ID and ``mltrace.link.relation`` = ``producer``.
Jaeger shows them as span references, Tempo/Grafana as span links (``link:traceID``).

Example::

    consumers = consumers_of(batch)
    found = find_links(consumers, queries.producer_for)
    if found.missing == 0:
        body = with_links(request, found.links).SerializeToString()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from mltrace_collector.index.model import RunRecord, split_artifact_id
from mltrace_collector.index.store.cursor import Row
from mltrace_collector.index.store.stitch_order import comes_before
from otel_mltrace import semconv

ProducerLookup = Callable[[str, int | None, str | None], Row | None]
"""``LineageQueries.producer_for``: (artifact ID, consumer start ns, consumer run ID) ->
producer run row (never the consumer itself: docs/semantics.md)."""


@dataclass(frozen=True)
class Consumer:
    """A run span with inputs, as the forwarder needs it (IDs in lower-case hex)."""

    trace_id: str
    span_id: str
    start_ns: int
    inputs: tuple[str, ...]
    run_id: str | None = None


@dataclass(frozen=True)
class LinkTarget:
    artifact: str
    trace_id: bytes
    span_id: bytes


@dataclass
class FoundLinks:
    links: dict[bytes, list[LinkTarget]] = field(default_factory=dict)
    """Consumer span ID (bytes) -> links to add to that span."""
    missing: int = 0
    """Inputs whose producer is not (yet) in the index."""


def consumers_of(runs: Iterable[RunRecord]) -> tuple[Consumer, ...]:
    """The runs of a decoded batch that read artifacts."""
    return tuple(
        Consumer(run.trace_id, run.span_id, run.start_ns, run.inputs, run.run_id)
        for run in runs
        if run.inputs
    )


class ProducerCache:
    """Recently observed producers of versioned artifact IDs, in front of the index.

    The forwarder sees every run before it forwards it, so the producer of a consumer's
    versioned input usually passed by moments ago: remembering ``artifact ID -> (trace,
    span, end)`` saves an index query per input. Unversioned URIs ("latest producer before
    the consumer started") and misses always go to the index. Bounded, oldest evicted.

    >>> cache = ProducerCache(ProducerCache.no_index, max_entries=2)
    >>> run = RunRecord("r1", "train", "aa" * 16, "bb" * 8, None, None, 1, 5, "ok", None,
    ...                 (), ("s3://m@sha256:01",))
    >>> cache.remember([run])
    >>> cache.lookup("s3://m@sha256:01", 10, "r2")["span_id"]
    'bbbbbbbbbbbbbbbb'
    """

    def __init__(self, index: ProducerLookup, max_entries: int = 100_000) -> None:
        self._index = index
        self._max = max_entries
        self._entries: dict[str, Row] = {}
        self._lock = threading.Lock()  # receiver threads remember, the sender looks up

    @staticmethod
    def no_index(_artifact: str, _start_ns: int | None, _reader: str | None) -> Row | None:
        return None

    def remember(self, runs: Iterable[RunRecord]) -> None:
        """Note the outputs of ``runs`` (called for each committed batch)."""
        with self._lock:
            self._remember(runs)

    def _remember(self, runs: Iterable[RunRecord]) -> None:
        for run in runs:
            for artifact in run.outputs:
                if split_artifact_id(artifact)[1] is None:
                    continue
                old = self._entries.pop(artifact, None)
                if old is not None and (old["end_ns"], old["run_id"]) > (run.end_ns, run.run_id):
                    # keep the newest producer; on a tie the larger run ID, as the index does
                    self._entries[artifact] = old
                    continue
                row = {
                    "trace_id": run.trace_id,
                    "span_id": run.span_id,
                    "start_ns": run.start_ns,
                    "end_ns": run.end_ns,
                    "run_id": run.run_id,
                }
                self._entries[artifact] = row
                if len(self._entries) > self._max:
                    del self._entries[next(iter(self._entries))]

    def lookup(self, artifact: str, start_ns: int | None, reader: str | None) -> Row | None:
        """``producer_for`` semantics: cached producer that ended before ``start_ns`` and
        comes before ``reader`` (``stitch_order``), else the index."""
        with self._lock:
            row = self._entries.get(artifact)
        if (
            row is not None
            and (start_ns is None or row["end_ns"] <= start_ns)
            and comes_before(row["start_ns"], row["run_id"], start_ns, reader)
        ):
            return row
        return self._index(artifact, start_ns, reader)


def find_links(consumers: Iterable[Consumer], lookup: ProducerLookup) -> FoundLinks:
    """Look every input of every consumer up in the index."""
    found = FoundLinks()
    for consumer in consumers:
        targets: list[LinkTarget] = []
        seen: set[tuple[str, str, str]] = set()
        for artifact in consumer.inputs:
            row = lookup(artifact, consumer.start_ns, consumer.run_id)
            if row is None:
                found.missing += 1
                continue
            trace_id, span_id = str(row["trace_id"]), str(row["span_id"])
            key = (artifact, trace_id, span_id)
            if span_id == consumer.span_id and trace_id == consumer.trace_id or key in seen:
                continue  # a run that reads its own output, or a repeated input
            seen.add(key)
            targets.append(LinkTarget(artifact, bytes.fromhex(trace_id), bytes.fromhex(span_id)))
        if targets:
            found.links.setdefault(bytes.fromhex(consumer.span_id), []).extend(targets)
    return found


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    return bytes([number << 3 | 2]) + _varint(len(payload)) + payload


def _string_kv(key: str, value: str) -> bytes:
    """A serialized ``KeyValue`` with a string ``AnyValue``."""
    return _field(1, key.encode()) + _field(2, _field(1, value.encode()))


_ARTIFACT_KEY = _field(1, semconv.LINK_ARTIFACT.encode())
_RELATION_ATTR = _field(4, _string_kv(semconv.LINK_RELATION, semconv.LINK_RELATION_PRODUCER))


def link_bytes(target: LinkTarget) -> bytes:
    """``Span.Link`` wire bytes (trace_id=1, span_id=2, attributes=4): one C-level merge per
    link instead of building messages field by field in Python (the forwarder's hot path).

    >>> from opentelemetry.proto.trace.v1.trace_pb2 import Span
    >>> link = Span.Link.FromString(link_bytes(LinkTarget("s3://x", b"t" * 16, b"s" * 8)))
    >>> [(kv.key, kv.value.string_value) for kv in link.attributes]
    [('mltrace.link.artifact', 's3://x'), ('mltrace.link.relation', 'producer')]
    """
    value = _field(1, target.artifact.encode())
    kv = _ARTIFACT_KEY + b"\x12" + _varint(len(value)) + value
    ids = b"\x0a" + _varint(len(target.trace_id)) + target.trace_id
    ids += b"\x12" + _varint(len(target.span_id)) + target.span_id
    return ids + b"\x22" + _varint(len(kv)) + kv + _RELATION_ATTR


def _has_link(span: Span, target: LinkTarget) -> bool:
    for link in span.links:
        if link.trace_id == target.trace_id and link.span_id == target.span_id:
            for kv in link.attributes:
                if kv.key == semconv.LINK_ARTIFACT and kv.value.string_value == target.artifact:
                    return True
    return False


def with_links(
    request: ExportTraceServiceRequest, links: dict[bytes, list[LinkTarget]]
) -> ExportTraceServiceRequest:
    """A copy of ``request`` (same resources and scopes) whose consumer spans carry links.

    The original is left untouched: other observers may still read it. A link that is
    already present (e.g. a retried request) is not added twice.
    """
    out = ExportTraceServiceRequest()
    out.CopyFrom(request)
    if not links:
        return out
    for resource_spans in out.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                targets = links.get(span.span_id)
                if not targets:
                    continue
                had_links = len(span.links) > 0
                for target in targets:
                    if had_links and _has_link(span, target):
                        continue
                    span.links.add().MergeFromString(link_bytes(target))
    return out
