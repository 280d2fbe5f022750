"""The two decode paths side by side (tests/test_processor_fast.py and the tests of the C
reader's rows): the comparable form of a batch, the spy that runs ``decode_request`` on
both paths, span and event builders, and the request of the SDK's own spans.

Example::

    Paths(monkeypatch).compare(req(span(1, {C: "clean"})))
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_mltrace as mlt
from mltrace_collector.index.decode import processor
from mltrace_collector.index.model import DecodedBatch
from otel_mltrace import semconv
from otel_mltrace.checks import Check, expect_null_ratio, expect_range, expect_rows
from otel_mltrace.distributions import summarize, to_event_attributes
from tests.otlp_builders import kvs

FAST = processor.walk_spans

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


def chunked_and_checked_runs() -> None:
    """Emit, through the configured SDK, a run whose records need record chunk spans and a
    run with before/after checks (passing, flagged and custom), shared by the decode
    comparisons of tests/test_processor_fast.py and tests/test_embedded_direct.py.

    Example::

        mlt.configure(service_name="x", tracer_provider=provider, add_exporter=False)
        chunked_and_checked_runs()
    """
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
        chunked_and_checked_runs()
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


def _all_spans(request: ExportTraceServiceRequest) -> list[Span]:
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
