"""The normalized records the lineage processor produces and every store persists.

A ``RunRecord`` is one component run, decoded from one OTLP span; ``OutputRecord`` is one
``mltrace.output`` event of it; ``RecordChunk`` one chunk of record-level IDs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# re-exported: it lived here before the SDK needed it without the collector
from otel_mltrace.artifact_ids import split_artifact_id as split_artifact_id
from otel_mltrace.check_outcome import CheckOutcome

JSONValue = Any


@dataclass(frozen=True)
class OutputRecord:
    """Distribution summary of one named output of a run (from an ``mltrace.output`` event)."""

    name: str
    kind: str
    count: int
    null_count: int
    invalid_count: int
    sum: float | None
    min: float | None
    max: float | None
    summary: dict[str, JSONValue]
    """The full decoded summary (sketch buckets or category counts), as JSON."""


@dataclass(frozen=True)
class RecordChunk:
    """One bounded chunk of record-level IDs produced by a run for one output artifact."""

    output: str
    index: int
    total: int
    ids: tuple[str, ...]
    sources: tuple[str, ...] | None = None
    run_id: str | None = None
    """Set on chunks from record chunk spans; ``None`` for chunks on the run span itself."""
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    """Of the record chunk span (hex; parent: ``None`` if it has none), set with ``run_id``:
    its run must be the span its run ID is indexed for (``store.identity.chunk_owners``)."""


@dataclass(frozen=True)
class CheckRecord(CheckOutcome):
    """One before/after check result of a run (from an ``mltrace.check`` event)."""


@dataclass(frozen=True)
class RunRecord:
    """One component run, as decoded from its span."""

    run_id: str
    component: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str | None
    start_ns: int
    end_ns: int
    status: str
    """``ok``, ``error`` or ``unset`` (OTel status codes, lower case)."""
    status_message: str | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[str, JSONValue] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    code_revision: str | None = None
    code_repository: str | None = None
    code_function: str | None = None
    code_file: str | None = None
    attributes: dict[str, JSONValue] = field(default_factory=dict)
    """Every span and resource attribute, verbatim (JSON-able)."""
    output_summaries: tuple[OutputRecord, ...] = ()
    record_chunks: tuple[RecordChunk, ...] = ()
    checks: tuple[CheckRecord, ...] = ()

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class RunStart:
    """A run start record (``semconv.RUN_START_SPAN_NAME``): the run began and has not
    necessarily ended. The run's own span, stored in ``runs``, supersedes it."""

    run_id: str
    component: str
    trace_id: str
    span_id: str
    """The run span's ID (the start record's parent)."""
    service: str | None
    start_ns: int
    parent_run_id: str | None = None


@dataclass(frozen=True)
class Rejection:
    """A span the processor could not accept, with the reason (for OTLP partial success)."""

    trace_id: str
    span_id: str
    reason: str


@dataclass
class DecodedBatch:
    """What the processor made of one OTLP export request."""

    runs: list[RunRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    other_spans: int = 0
    """Spans that are not component runs: accepted, not indexed (still forwarded)."""
    record_chunks: list[RecordChunk] = field(default_factory=list)
    """Chunks from record chunk spans (``RecordChunk.run_id`` set); counted in ``other_spans``."""
    run_starts: list[RunStart] = field(default_factory=list)
    """Run start records (``mltrace_collector.index.store.run_starts``); counted in
    ``other_spans``."""
