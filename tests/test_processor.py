"""The lineage processor on hand-built OTLP requests: decoding, rejections, pass-through."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from mltrace_collector.index.decode.processor import decode_request, rejection_message
from otel_mltrace import semconv
from otel_mltrace.distributions import summarize, to_event_attributes
from tests.otlp_builders import kvs

# A run span with one attribute of each kind (tests/test_processor_fast.py decodes it too).
RUN_ATTRS: dict[str, Any] = {
    semconv.COMPONENT: "train",
    semconv.RUN_ID: "r1",
    semconv.INPUTS: ["file:///a@sha256:01", "file:///a@sha256:01", "s3://b/k"],
    semconv.OUTPUTS: ["file:///m@sha256:02"],
    semconv.PARAM_PREFIX + "C": 0.5,
    semconv.METRIC_PREFIX + "acc": 1,
    semconv.TAGS: ["nightly"],
    semconv.CODE_FUNCTION: "main",
}


def span(n: int, attrs: dict[str, Any], events: list[Span.Event] | None = None) -> Span:
    return Span(
        trace_id=n.to_bytes(16, "big"),
        span_id=n.to_bytes(8, "big"),
        name="s",
        start_time_unix_nano=1_000 * n,
        end_time_unix_nano=1_000 * n + 500,
        attributes=kvs(attrs),
        events=events or [],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom") if n == 99 else Status(),
    )


def request(*spans: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    rs.resource.attributes.extend(kvs(resource or {"service.name": "svc"}))
    return ExportTraceServiceRequest(resource_spans=[rs])


def test_run_span_decodes_to_record() -> None:
    summary = to_event_attributes(summarize("score", [0.5, 0.7, None]))
    event = Span.Event(name=semconv.OUTPUT_EVENT, attributes=kvs(dict(summary)))
    resource = {"service.name": "svc", semconv.VCS_REVISION: "abc"}
    batch = decode_request(request(span(1, RUN_ATTRS, [event]), resource=resource))
    assert batch.rejections == [] and batch.other_spans == 0
    (run,) = batch.runs
    assert run.run_id == "r1" and run.component == "train"
    assert run.inputs == ("file:///a@sha256:01", "s3://b/k")  # duplicates folded, order kept
    assert run.params == {"C": 0.5} and run.metrics == {"acc": 1.0}
    assert run.code_revision == "abc" and run.service == "svc" and run.tags == ("nightly",)
    assert run.trace_id == f"{1:032x}" and run.span_id == f"{1:016x}"
    (out,) = run.output_summaries
    assert (out.name, out.count, out.null_count) == ("score", 2, 1)


def test_non_run_spans_pass_through_and_error_status_is_kept() -> None:
    batch = decode_request(
        request(span(1, {"http.method": "GET"}), span(99, {semconv.COMPONENT: "x"}))
    )
    assert batch.other_spans == 1
    (run,) = batch.runs
    assert run.status == "error" and run.status_message == "boom"
    assert run.run_id == f"{99:032x}-{99:016x}"  # no run ID: the span identity, stable on retry


def test_wrong_typed_attributes_are_rejected_by_name() -> None:
    bad = [
        span(2, {semconv.COMPONENT: 7}),
        span(3, {semconv.COMPONENT: "c", semconv.INPUTS: "not-a-list"}),
        span(4, {semconv.COMPONENT: "c", semconv.METRIC_PREFIX + "acc": "high"}),
        span(5, {semconv.COMPONENT: "c", semconv.OUTPUTS: ["x" * 10_000]}),
        span(
            6,
            {semconv.COMPONENT: "c"},
            [Span.Event(name=semconv.OUTPUT_EVENT, attributes=kvs({semconv.OUT_KIND: "weird"}))],
        ),
    ]
    good = span(
        7, {semconv.COMPONENT: "ok", semconv.INPUTS: [f"s3://b/{i}" for i in range(10_000)]}
    )
    batch = decode_request(request(*bad, good))
    assert [r.run_id for r in batch.runs] == [f"{7:032x}-{7:016x}"]
    assert len(batch.runs[0].inputs) == 10_000
    reasons = [r.reason for r in batch.rejections]
    assert len(reasons) == 5
    assert "mltrace.component must be a non-empty string" in reasons[0]
    assert "mltrace.inputs must be an array of strings" in reasons[1]
    assert "mltrace.metric.acc must be a number" in reasons[2]
    assert "limit is 8192" in reasons[3]
    assert reasons[4].startswith("mltrace.output event:")
    message = rejection_message(batch.rejections)
    assert message.count("span ") == 5 and f"{2:016x}" in message


def test_hostile_strings_survive_verbatim() -> None:
    hostile = "file:///d/it's;%20\"x\"\n' OR 1=1 --@sha256:ab"
    batch = decode_request(
        request(span(8, {semconv.COMPONENT: "c';--", semconv.OUTPUTS: [hostile]}))
    )
    (run,) = batch.runs
    assert run.outputs == (hostile,) and run.component == "c';--"


def test_nul_characters_are_rejected_in_ids_and_replaced_in_text() -> None:
    batch = decode_request(
        request(
            span(10, {semconv.COMPONENT: "c", semconv.INPUTS: ["s3://b/a\x00b"]}),
            span(11, {semconv.COMPONENT: "c\x00"}),
            span(12, {semconv.COMPONENT: "c", semconv.CODE_FUNCTION: "f\x00"}),
        )
    )
    assert [r.reason for r in batch.rejections] == [
        "mltrace.inputs contains an empty artifact ID or a NUL character",
        "mltrace.component contains a NUL character",
    ]
    assert batch.runs[0].code_function == "f\ufffd"
