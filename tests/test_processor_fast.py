"""``decode_request`` with the C walk (``_otlp_fast.decode_spans``) against the pure-Python
path (``processor.walk_spans = None``): identical ``DecodedBatch`` on every request.

Corpus: the hand-built requests of tests/otlp_builders.py and tests/test_processor.py, bad
input of every kind the processor names, spans the SDK really emits (events: outputs,
records, checks; record chunk spans), several resources (one the C walk leaves to Python),
non-canonical wire encodings, OTLP/JSON bodies, and a seeded random mix of all of these.
Batches are compared field by field with NaN made comparable and attribute key order ignored
(values and their types are not).
"""

from __future__ import annotations

import dataclasses
import json
import random
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_mltrace as mlt
from mltrace_collector.index.decode import processor
from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.service.receivers.otlp_json import parse_otlp_json, to_otlp_json
from otel_mltrace import semconv
from otel_mltrace.checks import Check, expect_null_ratio, expect_range, expect_rows
from otel_mltrace.distributions import summarize, to_event_attributes
from tests.otlp_builders import kvs, plain_span, run_span, value
from tests.otlp_builders import ld as _ld
from tests.otlp_builders import request as builder_request
from tests.otlp_builders import varint as _varint
from tests.test_processor import RUN_ATTRS

FAST = processor.walk_spans
_SKIP_REASON = (
    "C extension mltrace_collector.index.decode._otlp_fast is not built, "
    "so processor.walk_spans is None "
    "and there is no fast path to compare (scripts/bootstrap.sh builds it in place)"
)
if FAST is None:  # pragma: no cover - a build without a C compiler
    print(f"tests/test_processor_fast.py skipped: {_SKIP_REASON}")
pytestmark = pytest.mark.skipif(FAST is None, reason=_SKIP_REASON)

C = semconv.COMPONENT
NAN, INF = float("nan"), float("inf")
HOSTILE = "file:///d/it's;%20\"x\"\n' OR 1=1 --@sha256:ab"


# --- comparison ---------------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """A comparable form: types kept (bool is not int, tuple is not list), floats by repr
    (NaN equals NaN, -0.0 differs from 0.0), dict keys sorted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (
            type(value).__name__,
            tuple((f.name, canonical(getattr(value, f.name))) for f in fields),
        )
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return ("dict", tuple((type(k).__name__, k, canonical(v)) for k, v in items))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(canonical(v) for v in value))
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


class Paths:
    """Runs ``decode_request`` on both paths; counts what the fast path did."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.walked = 0  # decode_request calls the C walk answered (non-None)
        self.upb_spans = 0  # spans the fast path handed to the upb walk (_decode_into)
        self.c_runs = 0  # run records built from the C walk's values
        self._in_fast = False
        walked, decode_into, run_record = (
            processor._decode_walked,
            processor._decode_into,
            processor._run_record,
        )

        def spy_walked(*args: Any) -> DecodedBatch:
            self.walked += 1
            return walked(*args)

        def spy_decode_into(*args: Any) -> None:
            if self._in_fast:
                self.upb_spans += 1
            decode_into(*args)

        def spy_run_record(*args: Any) -> Any:
            if self._in_fast and args[-1] is None:
                self.c_runs += 1  # upb spans without events count too (see upb_spans)
            return run_record(*args)

        monkeypatch.setattr(processor, "_decode_walked", spy_walked)
        monkeypatch.setattr(processor, "_decode_into", spy_decode_into)
        monkeypatch.setattr(processor, "_run_record", spy_run_record)

    def outcome(self, fast: bool, request: ExportTraceServiceRequest, raw: bytes | None) -> Any:
        self.monkeypatch.setattr(processor, "walk_spans", FAST if fast else None)
        self._in_fast = fast
        try:
            batch = processor.decode_request(request, raw)
        except Exception as exc:  # a crash must at least be the same crash
            return ("raised", type(exc).__name__, str(exc)), None
        finally:
            self._in_fast = False
            self.monkeypatch.setattr(processor, "walk_spans", FAST)
        return ("ok", canonical(batch)), batch

    def compare(self, request: ExportTraceServiceRequest, raw: bytes | None = None) -> Any:
        """Both paths on ``request`` (and ``raw``); returns the fast path's batch."""
        fast, fast_batch = self.outcome(True, request, raw)
        pure, _ = self.outcome(False, request, raw)
        assert fast == pure
        return fast_batch

    def compare_both_raws(self, request: ExportTraceServiceRequest) -> Any:
        self.compare(request, request.SerializeToString())
        return self.compare(request, None)


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Paths:
    return Paths(monkeypatch)


# --- building blocks ----------------------------------------------------------------------


def span(
    n: int,
    attrs: dict[str, Any] | Sequence[tuple[str, Any]],
    events: Sequence[Span.Event] = (),
    *,
    trace_len: int = 16,
    span_len: int = 8,
    status: Status | None = None,
    times: tuple[int, int] | None = None,
    parent: bytes = b"",
) -> Span:
    start, end = times or (1_000 * n, 1_000 * n + 500)
    return Span(
        trace_id=(n % 251 + 1).to_bytes(1, "big") * trace_len,
        span_id=(n % 241 + 1).to_bytes(1, "big") * span_len,
        parent_span_id=parent,
        name="s",
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=kvs(attrs),
        events=list(events),
        status=status or Status(),
    )


def random_span(
    rng: random.Random,
    n: int,
    attrs: Sequence[tuple[str, Any]],
    events: Sequence[Span.Event],
    *,
    lengths: Sequence[tuple[int, int]],
    codes: Sequence[int],
    messages: Sequence[str],
    times: Sequence[tuple[int, int] | None],
) -> Span:
    """:func:`span` with its ID lengths, status, times and parent drawn by ``rng``."""
    trace_len, span_len = rng.choice(lengths)
    code, message = rng.choice(codes), rng.choice(messages)
    return span(
        n,
        attrs,
        events,
        trace_len=trace_len,
        span_len=span_len,
        status=Status(code=code, message=message),  # type: ignore[arg-type]
        times=rng.choice(times),
        parent=rng.choice([b"", b"", rng.randbytes(8), b"\x01"]),
    )


def event(name: str, attrs: dict[str, Any]) -> Span.Event:
    return Span.Event(name=name, time_unix_nano=5, attributes=kvs(attrs))


def req(
    *spans: Span, resource: dict[str, Any] | Sequence[tuple[str, Any]] | None = None
) -> ExportTraceServiceRequest:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    rs.resource.attributes.extend(
        kvs(resource if resource is not None else {"service.name": "svc"})
    )
    return ExportTraceServiceRequest(resource_spans=[rs])


def output_event(name: str = "score", values: Sequence[Any] = (0.5, 0.7, None)) -> Span.Event:
    return event(semconv.OUTPUT_EVENT, dict(to_event_attributes(summarize(name, list(values)))))


def records_event(output: str = "s3://b/o", ids: Any = ("a", "b"), **extra: Any) -> Span.Event:
    attrs: dict[str, Any] = {semconv.RECORDS_OUTPUT: output, semconv.RECORDS_IDS: list(ids)}
    attrs.update({getattr(semconv, k): v for k, v in extra.items()})
    return event(semconv.RECORDS_EVENT, attrs)


def check_event(**attrs: Any) -> Span.Event:
    base: dict[str, Any] = {
        semconv.CHECK_NAME: "rows",
        semconv.CHECK_PHASE: "before",
        semconv.CHECK_STATUS: "pass",
        semconv.CHECK_MESSAGE: "",
        semconv.CHECK_DURATION: 0.01,
        semconv.CHECK_ON_FAIL: "raise",
    }
    base.update({getattr(semconv, k): v for k, v in attrs.items()})
    return event(semconv.CHECK_EVENT, base)


# --- the SDK's own spans ------------------------------------------------------------------


def _sdk_request() -> ExportTraceServiceRequest:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    mlt.configure(service_name="fast-path", tracer_provider=provider, add_exporter=False)
    try:
        with mlt.run(
            "clean", inputs=["s3://bucket/ref.parquet", HOSTILE], params={"k": 3}, tags=["t"]
        ) as r:
            out = r.add_output("s3://bucket/clean.parquet", version="v:1")
            r.log_param("mode", "fast")
            r.log_param("ratio", 0.25)
            r.log_metric("rows", 1)
            r.log_metric("loss", 0.125)
            r.log_output("values", [1.0, 2.0, None, float("nan")])
            r.log_output("label", ["a", "b", "a", None])
            r.log_records(out, ["r1", "r2"], sources=["s1", "s2"])
            r.log_records(out, ["r3"])
        with mlt.run("predict") as r:  # 17 small batches: the 17th rides on a chunk span
            out = r.add_output("s3://bucket/preds.parquet", version="v:2")
            for i in range(17):
                r.log_records(out, [f"p{i}-{j}" for j in range(3)])
        with mlt.run("big") as r:  # more than one chunk: record chunk spans
            out = r.add_output("s3://bucket/big.parquet", version="v:3")
            r.log_records(out, [f"id-{i}" for i in range(10_050)])
        checks = [
            expect_rows(min=1, phase="before"),
            expect_null_ratio(max=0.1, on_fail="flag"),
            expect_range(min=0.0, max=1.0, on_fail="flag"),
            Check(lambda ctx: (False, "custom message"), on_fail="flag"),
        ]
        with mlt.run("checked", inputs=[np.arange(3)], checks=checks) as r:
            r.add_output(np.array([0.5, np.nan, 3.0]), uri="mem://out")
        with pytest.raises(mlt.CheckFailed), mlt.run("strict", checks=[expect_range(max=5)]) as r:
            r.add_output(np.array([1, 2, 7]), uri="mem://strict")
        with pytest.raises(ZeroDivisionError), mlt.run("crash"):
            _ = 1 / 0
        with mlt.run("pipeline"), mlt.run("step") as inner:
            inner.log_metric("x", 2.0)

        @mlt.component("decorated", params=["upper"])
        def decorated(text: str, upper: bool = False) -> str:
            return text.upper() if upper else text

        decorated("ab", upper=True)
        tracer = provider.get_tracer("plain")
        with tracer.start_as_current_span("http") as plain:
            plain.set_attribute("http.method", "GET")
            plain.add_event("log", {"msg": "x"})
        provider.force_flush()
        spans = exporter.get_finished_spans()
    finally:
        mlt.shutdown()
    return encode_spans(spans)


@pytest.fixture(scope="module")
def sdk_request() -> ExportTraceServiceRequest:
    return _sdk_request()


def _all_spans(request: ExportTraceServiceRequest) -> list[Span]:
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


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


# --- non-canonical wire encodings (as a receiver may get them) ----------------------------


def _vi(field: int, number: int) -> bytes:
    return _varint(field << 3) + _varint(number)


def _f64(field: int, number: int) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<Q", number)


def _kv(key: bytes, any_value: bytes, *, value_first: bool = False) -> bytes:
    parts = [_ld(1, key), _ld(2, any_value)]
    return b"".join(parts[::-1] if value_first else parts)


UNKNOWN = _vi(99, 5) + _ld(50, b"junk") + _f64(51, 7) + _varint(52 << 3 | 5) + b"\x00\x00\x00\x00"


def _wire_cases() -> Iterator[tuple[str, bytes]]:
    comp = _kv(b"mltrace.component", _ld(1, b"c"))
    ids = _ld(1, b"\x11" * 16) + _ld(2, b"\x22" * 8)

    def wrap(*spans: bytes, resource: bytes = _ld(1, _kv(b"service.name", _ld(1, b"w")))) -> bytes:
        scope = b"".join(_ld(2, s) for s in spans)
        return _ld(1, _ld(2, scope) + _ld(1, resource))  # resource after the scope spans

    reversed_span = (
        _ld(15, _vi(3, 2) + _ld(2, b"bad"))
        + _f64(8, 20)
        + _ld(9, _kv(b"x", _vi(3, 1), value_first=True))
        + _ld(9, comp)
        + _f64(7, 10)
        + _ld(4, b"\x33" * 8)
        + _ld(2, b"\x22" * 8)
        + _ld(1, b"\x11" * 16)
        + UNKNOWN
    )
    yield "reversed-fields-and-unknown-fields", wrap(reversed_span) + UNKNOWN
    yield "status-code-negative-varint", wrap(ids + _ld(9, comp) + _ld(15, _vi(3, -1)))
    yield "status-code-over-int32", wrap(ids + _ld(9, comp) + _ld(15, _vi(3, 2**32 + 2)))
    yield "bool-encoded-as-2", wrap(ids + _ld(9, comp) + _ld(9, _kv(b"flag", _vi(2, 2))))
    yield (
        "int-extremes-on-the-wire",
        wrap(
            ids
            + _ld(9, comp)
            + _ld(9, _kv(b"neg", _vi(3, -5)))
            + _ld(9, _kv(b"max", _vi(3, 2**64 - 1)))
        ),
    )
    yield (
        "repeated-scalars-last-wins",
        wrap(
            _ld(1, b"\x01" * 3)
            + ids
            + _ld(9, _ld(1, b"first") + _ld(1, b"mltrace.component") + _ld(2, _ld(1, b"c")))
            + _ld(15, _ld(2, b"one") + _ld(2, b"two") + _vi(3, 1) + _vi(3, 2))
        ),
    )
    yield (
        "two-status-messages-merge",
        wrap(ids + _ld(9, comp) + _ld(15, _vi(3, 2)) + _ld(15, _ld(2, b"m"))),
    )
    yield (
        "anyvalue-two-members",
        wrap(ids + _ld(9, _kv(b"mltrace.component", _vi(3, 1) + _ld(1, b"c")))),
    )
    yield (
        "anyvalue-unknown-field",
        wrap(ids + _ld(9, _kv(b"mltrace.component", _ld(1, b"c") + UNKNOWN))),
    )
    yield (
        "key-strindex-and-no-key",
        wrap(
            ids + _ld(9, comp) + _ld(9, _vi(3, 4) + _ld(2, _ld(1, b"v"))) + _ld(9, _ld(1, b"nokey"))
        ),
    )
    yield (
        "empty-events-and-interleaved",
        wrap(ids + _ld(9, comp) + _ld(11, b"") + _ld(9, _kv(b"after", _ld(1, b"e")))),
    )
    yield (
        "two-resources-merge",
        _ld(
            1,
            _ld(1, _ld(1, _kv(b"service.name", _ld(1, b"a"))))
            + _ld(2, _ld(2, ids + _ld(9, comp)))
            + _ld(1, _ld(1, _kv(b"service.version", _ld(1, b"2")))),
        ),
    )
    yield (
        "empty-array-and-empty-string-array-items",
        wrap(
            ids
            + _ld(9, comp)
            + _ld(9, _kv(b"mltrace.inputs", _ld(5, b"")))
            + _ld(9, _kv(b"mltrace.tags", _ld(5, _ld(1, b""))))
        ),
    )
    yield (
        "array-item-without-value",
        wrap(
            ids
            + _ld(9, comp)
            + _ld(9, _kv(b"mltrace.inputs", _ld(5, _ld(1, _ld(1, b"a")) + _ld(1, b""))))
        ),
    )
    yield (
        "double-nan-payload",
        wrap(ids + _ld(9, comp) + _ld(9, _kv(b"mltrace.metric.m", _f64(4, 0x7FF8_0000_0000_0001)))),
    )


# --- OTLP/JSON bodies ---------------------------------------------------------------------


def _json_bodies() -> Iterator[tuple[str, bytes]]:
    def body(*spans: dict[str, Any], resource: list[dict[str, Any]] | None = None) -> bytes:
        rs: dict[str, Any] = {"scopeSpans": [{"spans": list(spans)}], "futureField": 1}
        if resource is not None:
            rs["resource"] = {"attributes": resource}
        return json.dumps({"resourceSpans": [rs]}).encode()

    def s(n: int, attrs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        base = {"traceId": f"{n:032X}", "spanId": f"{n:016x}", "name": "train", "kind": 1}
        base.update(attributes=attrs, **extra)
        return base

    comp = {"key": C, "value": {"stringValue": "train"}}
    yield (
        "json-basic",
        body(
            s(
                1,
                [
                    comp,
                    {
                        "key": semconv.INPUTS,
                        "value": {"arrayValue": {"values": [{"stringValue": "a"}]}},
                    },
                ],
            ),
            resource=[{"key": "service.name", "value": {"stringValue": "js"}}],
        ),
    )
    yield (
        "json-kinds",
        body(
            s(
                2,
                [
                    comp,
                    {"key": semconv.METRIC_PREFIX + "i", "value": {"intValue": "42"}},
                    {"key": semconv.METRIC_PREFIX + "n", "value": {"doubleValue": "NaN"}},
                    {"key": semconv.PARAM_PREFIX + "inf", "value": {"doubleValue": "-Infinity"}},
                    {"key": semconv.PARAM_PREFIX + "b", "value": {"boolValue": True}},
                    {"key": "bytes", "value": {"bytesValue": "AAE="}},
                    {"key": "map", "value": {"kvlistValue": {"values": [comp]}}},
                    {"key": "empty", "value": {}},
                ],
                startTimeUnixNano="1700000000000000001",
                endTimeUnixNano="1700000000000000000",
                status={"code": 2, "message": "boom"},
                parentSpanId="00000000000000ff",
            ),
            s(3, [{"key": semconv.RECORDS_RUN_ID, "value": {"stringValue": "r"}}]),
            s(4, [comp, comp, {"key": C, "value": {"intValue": 3}}]),
            s(5, []),
            resource=[{"key": "deployment", "value": {"kvlistValue": {"values": []}}}],
        ),
    )
    yield (
        "json-events",
        body(
            s(
                6,
                [comp],
                events=[
                    {
                        "name": semconv.RECORDS_EVENT,
                        "attributes": [
                            {"key": semconv.RECORDS_OUTPUT, "value": {"stringValue": "o"}},
                            {
                                "key": semconv.RECORDS_IDS,
                                "value": {"arrayValue": {"values": [{"stringValue": "x"}]}},
                            },
                        ],
                    }
                ],
            ),
            s(7, [comp], kind="SPAN_KIND_SERVER", status={"code": "STATUS_CODE_OK"}),
        ),
    )


# --- the tests ----------------------------------------------------------------------------


NAMED = [*_builder_cases(), *_processor_cases(), *_resource_cases()]


@pytest.mark.parametrize("request_", [r for _, r in NAMED], ids=[n for n, _ in NAMED])
def test_named_requests_decode_the_same(paths: Paths, request_: ExportTraceServiceRequest) -> None:
    paths.compare_both_raws(request_)
    walked = FAST(request_.SerializeToString()) if FAST is not None else None
    assert walked is not None  # every request built from messages is in the C walk's subset
    assert paths.walked == 2


@pytest.mark.parametrize("raw", [r for _, r in _wire_cases()], ids=[n for n, _ in _wire_cases()])
def test_non_canonical_wire_bytes_decode_the_same(paths: Paths, raw: bytes) -> None:
    request_ = ExportTraceServiceRequest.FromString(raw)
    paths.compare(request_, raw)
    paths.compare(request_, None)
    paths.compare(request_, request_.SerializeToString())


@pytest.mark.parametrize("body", [b for _, b in _json_bodies()], ids=[n for n, _ in _json_bodies()])
def test_json_bodies_decode_the_same(paths: Paths, body: bytes) -> None:
    paths.compare(parse_otlp_json(body), None)
    assert paths.walked == 1


def test_sdk_spans_with_events_decode_the_same(
    paths: Paths, sdk_request: ExportTraceServiceRequest
) -> None:
    spans = _all_spans(sdk_request)
    names = {e.name for s in spans for e in s.events}
    assert {semconv.OUTPUT_EVENT, semconv.RECORDS_EVENT, semconv.CHECK_EVENT} <= names
    assert any(kv.key == semconv.RECORDS_RUN_ID for s in spans for kv in s.attributes)
    batch = paths.compare_both_raws(sdk_request)
    assert batch.record_chunks and batch.rejections == []
    assert any(run.output_summaries and run.record_chunks for run in batch.runs)
    assert any(run.checks for run in batch.runs)
    paths.compare(parse_otlp_json(to_otlp_json(sdk_request)), None)
    for one in spans:  # span by span too: each alone in a request
        paths.compare_both_raws(req(one))


def test_fast_path_is_taken_for_plain_run_spans(paths: Paths) -> None:
    runs = [run_span(f"c{i}", inputs=[f"s3://b/{i}"], outputs=["s3://b/o"]) for i in range(50)]
    plain = [plain_span("p", bytes(16)) for _ in range(10)]
    request_ = builder_request([*runs, *plain])
    fast = paths.compare(request_, request_.SerializeToString())
    assert paths.walked == 1  # the C walk answered ...
    assert paths.upb_spans == 0  # ... and no span went back to the upb message
    assert paths.c_runs == 50 and len(fast.runs) == 50 and fast.other_spans == 10
    walked = FAST(request_.SerializeToString()) if FAST is not None else None
    assert walked is not None
    assert [t[10] is not None for t in walked[1]] == [True] * 60


def test_kvlist_resource_is_left_to_python(paths: Paths) -> None:
    request_ = dict(_resource_cases())["several-resources"]
    walked = FAST(request_.SerializeToString()) if FAST is not None else None
    assert walked is not None
    resources, _ = walked
    assert [r is None for r in resources] == [False, True, False, True, False, True, False]
    batch = paths.compare_both_raws(request_)
    assert batch.runs[1].attributes["resource.deployment"] == {"env": "prod", "n": [1, 2]}


# --- seeded random corpus -----------------------------------------------------------------

KEYS = [
    C,
    C,
    C,
    semconv.RUN_ID,
    semconv.INPUTS,
    semconv.OUTPUTS,
    semconv.TAGS,
    semconv.PARAM_PREFIX + "lr",
    semconv.PARAM_PREFIX + "mode",
    semconv.METRIC_PREFIX + "acc",
    semconv.METRIC_PREFIX + "loss",
    semconv.SERVICE_NAME,
    semconv.VCS_REVISION,
    semconv.VCS_REPOSITORY,
    semconv.CODE_FUNCTION,
    semconv.CODE_FILE,
    semconv.RECORDS_RUN_ID,
    "http.method",
    "",
    "ünï",
]
STRINGS = [
    "train",
    "",
    "x\x00y",
    HOSTILE,
    "s3://b/k@sha256:aa",
    "é😀",
    "a" * 300,
    "r" * 9000,
    "%",
    ";",
]
DOUBLES = [0.5, -0.0, 1e308, NAN, INF, -INF, 3.0]
INTS = [0, 1, -1, 2**63 - 1, -(2**63), 42]


def _random_value(rng: random.Random, key: str) -> Any:
    kind = rng.random()
    if key in (semconv.INPUTS, semconv.OUTPUTS, semconv.TAGS) and kind < 0.6:
        return [
            rng.choice(STRINGS[:6]) if rng.random() < 0.2 else f"s3://b/{rng.randrange(5)}"
            for _ in range(rng.randrange(4))
        ]
    if key in (C, semconv.RUN_ID, semconv.RECORDS_RUN_ID) and kind < 0.7:
        return rng.choice(["c1", "c2", "run-a"]) if rng.random() < 0.8 else rng.choice(STRINGS)
    choices: list[Callable[[], Any]] = [
        lambda: rng.choice(STRINGS),
        lambda: rng.choice(INTS),
        lambda: rng.choice(DOUBLES),
        lambda: rng.choice([True, False]),
        lambda: [rng.choice(STRINGS) for _ in range(rng.randrange(3))],
        lambda: [rng.choice(STRINGS), rng.choice(INTS)],
        lambda: {"k": rng.choice(DOUBLES), "l": ["a", 1]},
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(4))),
        lambda: None,
    ]
    weights = [30, 15, 15, 5, 15, 3, 3, 2, 1]
    return rng.choices(choices, weights)[0]()


def _random_events(rng: random.Random) -> list[Span.Event]:
    makers: list[Callable[[], Span.Event]] = [
        lambda: output_event(
            rng.choice(["a", "b"]), [rng.choice([1.0, NAN, None, 2.5]) for _ in range(4)]
        ),
        lambda: output_event("cat", [rng.choice(["x", "y", None]) for _ in range(3)]),
        lambda: records_event(
            rng.choice(["s3://b/o", ""]), rng.choice([["a"], ["a", "b"], [], ["", "x"]])
        ),
        lambda: records_event(
            ids=["a"],
            RECORDS_CHUNK_INDEX=rng.choice([0, 1, -1]),
            RECORDS_CHUNK_TOTAL=rng.choice([1, 2]),
        ),
        lambda: check_event(CHECK_STATUS=rng.choice(["pass", "fail", "bogus"])),
        lambda: event("exception", {"exception.message": "m"}),
        lambda: event(semconv.OUTPUT_EVENT, {semconv.OUT_KIND: rng.choice(["numeric", "weird"])}),
    ]
    return [rng.choice(makers)() for _ in range(rng.randrange(1, 4))]


def _random_span(rng: random.Random, n: int, sdk_spans: Sequence[Span]) -> Span:
    roll = rng.random()
    if roll < 0.1:
        return run_span(rng.choice(["a", "b"]), inputs=["s3://b/i"], outputs=["s3://b/o"])
    if roll < 0.15:
        return plain_span("p", rng.randbytes(16))
    if roll < 0.25:
        copy = Span()
        copy.CopyFrom(rng.choice(sdk_spans))
        if rng.random() < 0.3:
            copy.attributes.add(key=rng.choice(KEYS)).value.CopyFrom(value(_random_value(rng, "x")))
        return copy
    keys = rng.sample(KEYS, rng.randrange(len(KEYS) // 2))
    attrs = [(k, _random_value(rng, k)) for k in keys]
    if rng.random() < 0.5 and C not in keys:
        attrs.insert(rng.randrange(len(attrs) + 1), (C, "comp"))
    if rng.random() < 0.15 and attrs:  # a duplicated key
        key = rng.choice(attrs)[0]
        attrs.insert(rng.randrange(len(attrs) + 1), (key, _random_value(rng, key)))
    rng.shuffle(attrs)
    events = _random_events(rng) if rng.random() < 0.25 else []
    return random_span(
        rng,
        n,
        attrs,
        events,
        lengths=[(16, 8)] * 8 + [(15, 8), (16, 0), (0, 0)],
        codes=[0, 0, 1, 2, 5],
        messages=["", "", "err", "n\x00l"],
        times=[None, (5, 1), (2**64 - 1, 0), (0, 2**63)],
    )


def _random_request(rng: random.Random, sdk_spans: Sequence[Span]) -> ExportTraceServiceRequest:
    request_ = ExportTraceServiceRequest()
    n = 0
    for _ in range(rng.randrange(1, 4)):
        rs = request_.resource_spans.add()
        keys = ["service.name", semconv.VCS_REVISION, semconv.CODE_FUNCTION, "host", "host"]
        rattrs = [(k, _random_value(rng, k)) for k in rng.sample(keys, rng.randrange(len(keys)))]
        if rng.random() < 0.8:
            rs.resource.attributes.extend(kvs(rattrs))
        for _ in range(rng.randrange(1, 3)):
            ss = rs.scope_spans.add()
            for _ in range(rng.randrange(0, 7)):
                n += 1
                ss.spans.append(_random_span(rng, n, sdk_spans))
    return request_


@pytest.mark.parametrize("seed", range(8))
def test_random_requests_decode_the_same(
    paths: Paths, sdk_request: ExportTraceServiceRequest, seed: int
) -> None:
    rng = random.Random(20_240_600 + seed)
    sdk_spans = _all_spans(sdk_request)
    json_ok = 0
    for _ in range(40):
        request_ = _random_request(rng, sdk_spans)
        paths.compare_both_raws(request_)
        try:
            body = to_otlp_json(request_)
            parsed = parse_otlp_json(body)
        except ValueError:  # a trace or span ID of a length OTLP/JSON cannot carry
            continue
        json_ok += 1
        paths.compare(parsed, None)
    assert paths.walked >= 80 + json_ok  # the C walk answered every message-built request
    assert json_ok >= 5 and paths.c_runs > 0


def test_component_without_value_is_rejected_not_a_crash() -> None:
    broken = span(1, [(C, None)])
    batch = processor.decode_request(req(broken))
    assert len(batch.rejections) == 1 and "mltrace.component" in batch.rejections[0].reason
