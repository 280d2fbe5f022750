"""Every span attribute and event name of the otel-mltrace wire contract, in one place.

The SDK writes these names and the collector reads them; neither spells a name out
anywhere else. Changing a name here is a wire-format change: note it in CHANGELOG.md.

Example::

    from otel_mltrace import semconv
    span.set_attribute(semconv.COMPONENT, "train")
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "mltrace."

# --- run span attributes ------------------------------------------------------------------
COMPONENT: Final = "mltrace.component"
"""string, required: marks the span as a component run and names the component."""
RUN_ID: Final = "mltrace.run.id"
"""string: run ID (UUIDv7), unique across the fleet."""
INPUTS: Final = "mltrace.inputs"
"""string[]: artifact IDs read by the run."""
OUTPUTS: Final = "mltrace.outputs"
"""string[]: artifact IDs written by the run."""
TAGS: Final = "mltrace.tags"
"""string[]: free tags."""
PARAM_PREFIX: Final = "mltrace.param."
"""``mltrace.param.<name>``: scalar parameter of the run."""
METRIC_PREFIX: Final = "mltrace.metric."
"""``mltrace.metric.<name>``: numeric metric of the run."""
METRIC_SERIES: Final = "mltrace.metric_series"
"""JSON object: metric name -> its series (``otel_mltrace.metric_series``), for metrics
logged more than once."""

# Semantic-convention attributes describing the code version (OTel semconv names).
VCS_REVISION: Final = "vcs.ref.head.revision"
VCS_REPOSITORY: Final = "vcs.repository.url.full"
CODE_FUNCTION: Final = "code.function.name"
CODE_FILE: Final = "code.file.path"

SERVICE_NAME: Final = "service.name"

# --- output distribution events -----------------------------------------------------------
OUTPUT_EVENT: Final = "mltrace.output"
"""Span event, one per observed output name, carrying a mergeable distribution summary."""
OUT_NAME: Final = "mltrace.output.name"
OUT_KIND: Final = "mltrace.output.kind"
"""``numeric`` or ``categorical``."""
OUT_COUNT: Final = "mltrace.output.count"
"""int: number of valid (non-null, finite or categorical) values summarized."""
OUT_NULL_COUNT: Final = "mltrace.output.null_count"
"""int: None / NaN values."""
OUT_INVALID_COUNT: Final = "mltrace.output.invalid_count"
"""int: values that could not be read as the output's kind (e.g. text in a numeric output, inf)."""
OUT_SUM: Final = "mltrace.output.sum"
OUT_MIN: Final = "mltrace.output.min"
OUT_MAX: Final = "mltrace.output.max"
OUT_SKETCH_GAMMA: Final = "mltrace.output.sketch.gamma"
"""float: DDSketch-style log-bucket base; bucket i holds values in (gamma**(i-1), gamma**i]."""
OUT_SKETCH_ZERO: Final = "mltrace.output.sketch.zero_count"
OUT_SKETCH_POS_INDEX: Final = "mltrace.output.sketch.positive.indices"
OUT_SKETCH_POS_COUNT: Final = "mltrace.output.sketch.positive.counts"
OUT_SKETCH_NEG_INDEX: Final = "mltrace.output.sketch.negative.indices"
OUT_SKETCH_NEG_COUNT: Final = "mltrace.output.sketch.negative.counts"
OUT_CATEGORIES: Final = "mltrace.output.categories"
"""string[]: the most frequent categories (bounded), parallel to ``category_counts``."""
OUT_CATEGORY_COUNTS: Final = "mltrace.output.category_counts"
OUT_OTHER_COUNT: Final = "mltrace.output.other_count"
"""int: values of categories beyond the bounded list."""
OUT_DISTINCT_COUNT: Final = "mltrace.output.distinct_count"

OUTPUT_KIND_NUMERIC: Final = "numeric"
OUTPUT_KIND_CATEGORICAL: Final = "categorical"

# --- record-level IDs (bounded chunks) ----------------------------------------------------
RECORDS_EVENT: Final = "mltrace.records"
"""Span event carrying one bounded chunk of record IDs produced by the run."""
RECORDS_OUTPUT: Final = "mltrace.records.output"
"""string: artifact ID of the output the records belong to."""
RECORDS_CHUNK_INDEX: Final = "mltrace.records.chunk.index"
RECORDS_CHUNK_TOTAL: Final = "mltrace.records.chunk.total"
RECORDS_IDS: Final = "mltrace.records.ids"
"""string[]: record IDs in this chunk."""
RECORDS_SOURCES: Final = "mltrace.records.sources"
"""string[], optional: parallel to ``ids``, the input record ID each record came from."""
RECORDS_RUN_ID: Final = "mltrace.records.run.id"
"""string: on a *record chunk span* (a child span of the run, without ``mltrace.component``),
the run the records belong to. Large batches travel on such spans so that no span or OTLP
request grows past the limits (see ``otel_mltrace.records``). The collector checks its trace
and parent span against the span the run ID is indexed for, and rejects a chunk span of
another span (a duplicate run's; docs/semantics.md, Records)."""
RECORDS_SPAN_NAME: Final = "mltrace.records"
"""Name of record chunk spans."""

# --- before/after checks ------------------------------------------------------------------
CHECK_EVENT: Final = "mltrace.check"
"""Span event on the run span, one per evaluated check (see ``otel_mltrace.checks``)."""
CHECK_NAME: Final = "mltrace.check.name"
CHECK_PHASE: Final = "mltrace.check.phase"
"""``before`` (on inputs, ahead of the body) or ``after`` (on outputs)."""
CHECK_STATUS: Final = "mltrace.check.status"
"""``pass``, ``fail`` or ``error`` (the check itself raised)."""
CHECK_MESSAGE: Final = "mltrace.check.message"
CHECK_DURATION: Final = "mltrace.check.duration_s"
"""float: seconds the check took."""
CHECK_ON_FAIL: Final = "mltrace.check.on_fail"
"""``raise`` (a failure fails the run) or ``flag`` (a failure flags the run's outputs)."""

# --- nesting ------------------------------------------------------------------------------
PARENT_RUN_ID: Final = "mltrace.parent.run.id"
"""string: on a run started inside another run, the enclosing run's ID."""
PARENT_COMPONENT: Final = "mltrace.parent.component"
"""string: on a run started inside another run, the enclosing run's component."""

# --- run start records (killed runs) ------------------------------------------------------
RUN_START_SPAN_NAME: Final = "mltrace.run.start"
"""Name of a *run start record*: a zero-length child span of a run span, ended (and sent
promptly) when the run starts, so that a run whose process is SIGKILLed or OOM-killed
still shows in the index: as ``running``, then ``abandoned`` once it has not ended
within ``MLTRACE_ABANDON_AFTER`` seconds. It carries no ``mltrace.component`` (so it is
never taken for the run itself, nor for a second span of the same run ID); the run's own
span supersedes it whenever it arrives, before or after, however often either is retried.
Turned off with ``MLTRACE_ANNOUNCE_RUNS=false``."""
RUN_START_RUN_ID: Final = "mltrace.run_start.run.id"
"""string, required on a start record: the ID of the run being announced (``mltrace.run.id``
of the run span that will follow)."""
RUN_START_COMPONENT: Final = "mltrace.run_start.component"
"""string, required on a start record: the component of the announced run."""

# --- links added by the collector when forwarding -----------------------------------------
LINK_ARTIFACT: Final = "mltrace.link.artifact"
LINK_RELATION: Final = "mltrace.link.relation"
LINK_RELATION_PRODUCER: Final = "producer"
