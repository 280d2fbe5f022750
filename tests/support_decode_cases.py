"""Named OTLP requests both decode paths must agree on: builder spans, the bad input of
every kind the processor names, and several resources (one the C walk leaves to Python).

Example::

    for name, request in NAMED: ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otel_mltrace import semconv
from tests.otlp_builders import kvs, plain_span, run_span
from tests.otlp_builders import request as builder_request
from tests.support_processor_fast import (
    HOSTILE,
    INF,
    NAN,
    C,
    check_event,
    event,
    output_event,
    records_event,
    req,
    span,
)
from tests.test_processor import RUN_ATTRS

# --- named cases --------------------------------------------------------------------------


def _builder_cases() -> Iterator[tuple[str, ExportTraceServiceRequest]]:
    trace = bytes(range(16))
    yield "builders-one-run", builder_request([run_span("train", run_id="r1", start_ns=10)])
    runs = [
        run_span(
            "train",
            inputs=["s3://b/x@sha256:aa", "s3://b/x@sha256:aa"],
            outputs=["s3://b/m@sha256:bb"],
            trace_id=trace,
            span_id=bytes(range(8)),
            start_ns=1,
        ),
        plain_span("http", trace, parent=bytes(range(8))),
        run_span("eval", inputs=["s3://b/m@sha256:bb"], duration_ns=0, start_ns=5),
        plain_span("db", trace),
    ]
    yield "builders-mixed", builder_request(runs, service="bench")
    yield "builders-empty", builder_request([])
    yield "builders-plain-only", builder_request([plain_span("p", trace)] * 3)
    yield (
        "builders-hundred-runs",
        builder_request(
            [run_span(f"c{i % 7}", inputs=[f"s3://b/{i}"], start_ns=i) for i in range(100)]
        ),
    )


def _processor_cases() -> Iterator[tuple[str, ExportTraceServiceRequest]]:
    """The spans of tests/test_processor.py, and bad input of every kind named there."""
    resource = {"service.name": "svc", semconv.VCS_REVISION: "abc"}
    yield "run-with-output-event", req(span(1, RUN_ATTRS, [output_event()]), resource=resource)
    yield "run-without-events", req(span(1, RUN_ATTRS), resource=resource)
    yield (
        "non-run-and-error-status",
        req(
            span(1, {"http.method": "GET"}),
            span(99, {C: "x"}, status=Status(code=Status.STATUS_CODE_ERROR, message="boom")),
        ),
    )
    bad = [
        span(2, {C: 7}),
        span(3, {C: "c", semconv.INPUTS: "not-a-list"}),
        span(4, {C: "c", semconv.METRIC_PREFIX + "acc": "high"}),
        span(5, {C: "c", semconv.OUTPUTS: ["x" * 10_000]}),
        span(6, {C: "c"}, [event(semconv.OUTPUT_EVENT, {semconv.OUT_KIND: "weird"})]),
    ]
    good = span(7, {C: "ok", semconv.INPUTS: [f"s3://b/{i}" for i in range(10_000)]})
    yield "wrong-typed-and-10000-inputs", req(*bad, good)
    yield "hostile-strings", req(span(8, {C: "c';--", semconv.OUTPUTS: [HOSTILE]}))
    yield (
        "nul-characters",
        req(
            span(10, {C: "c", semconv.INPUTS: ["s3://b/a\x00b"]}),
            span(11, {C: "c\x00"}),
            span(12, {C: "c", semconv.CODE_FUNCTION: "f\x00"}),
            span(13, {C: "c", semconv.RUN_ID: "r\x00"}),
            span(14, {C: "c"}, status=Status(code=Status.STATUS_CODE_OK, message="m\x00")),
        ),
    )
    yield (
        "empty-strings",
        req(
            span(20, {C: ""}),
            span(21, {C: "c", semconv.RUN_ID: ""}),
            span(22, {C: "c", semconv.INPUTS: [""]}),
            span(23, {C: "c", semconv.INPUTS: []}),
            span(24, {"": "x", C: "c", semconv.TAGS: []}),
        ),
    )
    yield (
        "overlong-ids",
        req(
            span(30, {C: "c" * 513}),
            span(31, {C: "c" * 512}),
            span(32, {C: "c", semconv.RUN_ID: "r" * 257}),
            span(33, {C: "c", semconv.RUN_ID: "r" * 256}),
            span(34, {C: "c", semconv.INPUTS: ["i" * 8193]}),
            span(35, {C: "c", semconv.INPUTS: ["i" * 8192]}),
        ),
    )
    artifacts = [HOSTILE, "s3://b/100%", "a;b", "line\nbreak", "' OR 1=1 --", 'q"uote', "é€😀"]
    yield (
        "artifact-ids-with-quotes",
        req(span(40, {C: "c", semconv.INPUTS: artifacts, semconv.OUTPUTS: artifacts[::-1]})),
    )
    yield (
        "bad-id-lengths",
        req(
            span(50, {C: "c"}, trace_len=15),
            span(51, {C: "c"}, span_len=9),
            span(52, {C: "c"}, trace_len=0, span_len=0),
            span(53, {"x": 1}, trace_len=3),
            span(54, {C: "c"}, parent=b"\x01" * 3),
            span(55, {C: "c"}, parent=b"\x02" * 8),
        ),
    )
    yield (
        "non-finite-doubles",
        req(
            span(60, {C: "c", semconv.PARAM_PREFIX + "p": NAN, semconv.METRIC_PREFIX + "m": INF}),
            span(61, {C: "c", semconv.METRIC_PREFIX + "m": -INF, "other": NAN}),
            span(
                62, {C: "c", "a": -0.0, "b": 1e308, "c": 5e-324, semconv.PARAM_PREFIX + "z": -0.0}
            ),
            span(63, {C: "c", "x": INF}, [output_event()]),
        ),
    )
    yield (
        "kvlist-and-bytes-attributes",
        req(
            span(70, {C: "c", "map": {"a": 1, "b": [1, "x"], "n": NAN}}),
            span(71, {C: "c", "raw": b"\x00\xff"}),
            span(72, {C: "c", "mixed": ["a", 1, 2.5, True, None, b"\x01", {"k": "v"}]}),
            span(73, {C: "c", semconv.PARAM_PREFIX + "m": {"a": 1}}),
            span(74, {C: "c", semconv.PARAM_PREFIX + "l": ["a"]}),
            span(75, {C: "c", semconv.METRIC_PREFIX + "b": True}),
            span(76, {C: "c", "none": None}),
            span(77, {C: "c", "nested": [["a"], []]}),
            span(78, {"http.body": b"x", "k": {"a": "b"}}),
        ),
    )
    yield (
        "tags-of-wrong-type",
        req(
            span(80, {C: "c", semconv.TAGS: "nightly"}),
            span(81, {C: "c", semconv.TAGS: [1, 2]}),
            span(82, {C: "c", semconv.TAGS: ["a", "a", "b"]}),
            span(83, {C: "c", semconv.TAGS: 3}),
            span(84, {C: "c", semconv.INPUTS: [1]}),
            span(85, {C: "c", semconv.OUTPUTS: "x"}),
        ),
    )
    yield (
        "missing-component",
        req(
            span(90, {semconv.RUN_ID: "r", semconv.INPUTS: ["a"]}),
            span(91, {}),
            span(92, {semconv.RUN_ID: 5}),
            span(93, {semconv.TAGS: [1]}, [output_event()]),
        ),
    )
    yield (
        "record-chunk-spans",
        req(
            span(100, {semconv.RECORDS_RUN_ID: "run-1"}, [records_event()]),
            span(101, {semconv.RECORDS_RUN_ID: "run-1"}),
            span(102, {semconv.RECORDS_RUN_ID: ""}, [records_event()]),
            span(103, {semconv.RECORDS_RUN_ID: 5}, [records_event()]),
            span(104, {semconv.RECORDS_RUN_ID: "r" * 257}, [records_event()]),
            span(105, {semconv.RECORDS_RUN_ID: "r", "x": {"m": 1}}, [records_event()]),
            span(106, {semconv.RECORDS_RUN_ID: "r"}, [records_event(ids=[])]),
            span(107, {semconv.RECORDS_RUN_ID: "r"}, [records_event(ids=["a", ""])]),
            span(108, [(semconv.RECORDS_RUN_ID, "first"), (semconv.RECORDS_RUN_ID, 7)]),
            span(109, [(semconv.RECORDS_RUN_ID, 7), (semconv.RECORDS_RUN_ID, "last")]),
            span(110, {semconv.RECORDS_RUN_ID: "r", C: "c"}, [records_event()]),
            span(
                111,
                {semconv.RECORDS_RUN_ID: "r"},
                [records_event(ids=["a"], RECORDS_CHUNK_INDEX=1)],
            ),
            span(
                112,
                {semconv.RECORDS_RUN_ID: "r"},
                [records_event(ids=["a", "b"], RECORDS_SOURCES=["x"], RECORDS_CHUNK_TOTAL=2)],
            ),
        ),
    )
    yield (
        "events",
        req(
            span(120, {C: "c"}, [output_event(), output_event("label", ["a", "b", None])]),
            span(121, {C: "c"}, [records_event(RECORDS_SOURCES=["s", "t"]), check_event()]),
            span(122, {C: "c"}, [records_event(output="")]),
            span(123, {C: "c"}, [check_event(CHECK_STATUS="maybe")]),
            span(124, {C: "c"}, [check_event(CHECK_DURATION=NAN)]),
            span(125, {C: "c"}, [event("exception", {"exception.type": "E"})]),
            span(126, {C: "c"}, [Span.Event()]),
            span(127, {C: "c", "k": b"b"}, [output_event("x", [1.0, INF, None])]),
            span(128, {C: 1}, [output_event()]),
            span(129, {"x": 1}, [output_event(), records_event()]),
        ),
    )
    yield (
        "duplicated-keys",
        req(
            span(130, [(C, "a"), ("x", 1), (C, "b"), ("x", "s")]),
            span(131, [(C, "a"), (C, 7)]),
            span(132, [(C, 7), (C, "a")]),
            span(133, [(C, {"m": 1}), (C, "a")]),
            span(134, [(C, "a"), ("p", NAN), ("p", 1.0)]),
            span(135, [(C, "a"), (semconv.INPUTS, ["x"]), (semconv.INPUTS, ["y", "y"])]),
            span(136, [(C, "a"), (semconv.TAGS, ["t"]), (semconv.TAGS, [1])]),
            span(137, [(C, "a"), ("m", {"a": 1}), ("m", "plain")]),
        ),
    )
    yield (
        "status-and-times",
        req(
            span(140, {C: "c"}, status=Status(code=Status.STATUS_CODE_OK)),
            span(141, {C: "c"}, status=Status(code=7, message="odd")),  # type: ignore[arg-type]
            span(142, {C: "c"}, status=Status(code=-1, message="neg")),  # type: ignore[arg-type]
            span(143, {C: "c"}, times=(2**64 - 1, 2**64 - 1)),
            span(144, {C: "c"}, times=(10, 5)),
            span(145, {C: "c"}, times=(0, 0)),
            span(146, {C: "c"}, status=Status(message="only message")),
        ),
    )
    extreme = {C: "c", "i": 2**63 - 1, "j": -(2**63), "k": -1, "b": False, "t": True}
    code_keys = {
        semconv.SERVICE_NAME: "span-svc",
        semconv.VCS_REVISION: 5,
        semconv.VCS_REPOSITORY: "r\x00",
        semconv.CODE_FILE: ["f"],
    }
    yield (
        "extreme-values-and-code-keys",
        req(
            span(150, extreme),
            span(151, {C: "c", **code_keys}),
            span(152, {C: "c", "ünï": "cödé 😀", "k\x00": "v"}),
            resource={
                "service.name": "svc",
                semconv.VCS_REPOSITORY: "repo",
                semconv.CODE_FUNCTION: 3,
                "r.nan": NAN,
            },
        ),
    )
    yield (
        "metric-ints-and-params",
        req(
            span(160, {C: "c", semconv.METRIC_PREFIX + "big": 2**63 - 1, semconv.PARAM_PREFIX: 1}),
            span(161, {C: "c", semconv.METRIC_PREFIX: 1.5, semconv.PARAM_PREFIX + "b": False}),
            span(162, {C: "c", semconv.PARAM_PREFIX + "s": "", semconv.METRIC_PREFIX + "s": ""}),
        ),
    )
    yield "missing-value-is-none", req(span(170, [("x", None), (C, "c")]))


def _resource_cases() -> Iterator[tuple[str, ExportTraceServiceRequest]]:
    def resource_spans(
        attrs: Sequence[tuple[str, Any]] | None, *scopes: list[Span]
    ) -> ResourceSpans:
        rs = ResourceSpans(scope_spans=[ScopeSpans(spans=s) for s in scopes])
        if attrs is not None:
            rs.resource.CopyFrom(Resource(attributes=kvs(attrs)))
        return rs

    several = ExportTraceServiceRequest(
        resource_spans=[
            resource_spans(
                [("service.name", "a"), (semconv.VCS_REVISION, "rev-a")], [span(1, {C: "x"})]
            ),
            resource_spans(
                [("service.name", "b"), ("deployment", {"env": "prod", "n": [1, 2]})],
                [span(2, {C: "y"}), span(3, {"k": "v"})],
                [span(4, {C: "z", semconv.INPUTS: ["a"]}, [output_event()])],
            ),
            resource_spans(None, [span(5, {C: "no-resource"})]),
            resource_spans([("service.name", "c"), ("host.bytes", b"\x01")], [span(6, {C: "w"})]),
            resource_spans(
                [("service.name", "d"), ("service.name", "d2"), ("weight", NAN), ("n", -0.0)],
                [span(7, {C: "v", semconv.SERVICE_NAME: "span-wins"})],
                [],
                [span(8, {C: "u"}), span(9, {C: 5})],
            ),
            resource_spans([("service.name", "e"), ("empty", None)], [span(10, {C: "t"})]),
            resource_spans([("service.name", "f")]),
        ]
    )
    yield "several-resources", several
    yield "only-kvlist-resource", req(span(1, {C: "c"}), resource={"m": {"a": "b"}})
    yield "empty-request", ExportTraceServiceRequest()


# --- the tests ----------------------------------------------------------------------------


NAMED = [*_builder_cases(), *_processor_cases(), *_resource_cases()]
