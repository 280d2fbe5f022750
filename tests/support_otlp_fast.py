"""The pure-Python reference of the C walk (``_otlp_fast.decode_spans``): ``WhichOneof`` over
the upb-parsed message, builders of spans and bodies, unknown fields, and a seeded random
request generator. Importing it skips the importing test module when the C extension is
not built.

Example::

    assert_matches(body_of(span_with([kv("a", string_value="x")])))
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from mltrace_collector.index.decode.otlp_values import any_value
from tests.otlp_builders import ld, request, tag, varint
from tests.support_compare import exact

_otlp_fast = pytest.importorskip(
    "mltrace_collector.index.decode._otlp_fast",
    reason="C extension mltrace_collector.index.decode._otlp_fast is not built "
    "(needs a C compiler; "
    "scripts/bootstrap.sh builds it in place)",
)
decode_spans = _otlp_fast.decode_spans

# -- reference ----------------------------------------------------------------------------
_NOT_SIMPLE = object()


def _simple(value: AnyValue) -> Any:
    """What the C walk keeps (scalars, arrays of strings), valued as the processor does."""
    which = value.WhichOneof("value")
    if which == "array_value":
        items = value.array_value.values
        if all(item.WhichOneof("value") == "string_value" for item in items):
            return any_value(value)
    elif which in ("string_value", "bool_value", "int_value", "double_value"):
        return any_value(value)
    return _NOT_SIMPLE


def _ref_attrs(kvs: Iterable[KeyValue]) -> tuple[dict[str, Any] | None, bool]:
    attrs: dict[str, Any] = {}
    finite = True
    for kv in kvs:
        value = _simple(kv.value)
        if value is _NOT_SIMPLE:
            return None, False
        if isinstance(value, float) and not math.isfinite(value):
            finite = False
        attrs[kv.key] = value
    return attrs, finite


def reference(body: bytes) -> tuple[list[dict[str, Any] | None], list[tuple[Any, ...]]]:
    req = ExportTraceServiceRequest.FromString(body)
    resources = [_ref_attrs(rs.resource.attributes)[0] for rs in req.resource_spans]
    spans = []
    for r, rs in enumerate(req.resource_spans):
        for s, ss in enumerate(rs.scope_spans):
            for k, span in enumerate(ss.spans):
                attrs, safe = _ref_attrs(span.attributes)
                spans.append(
                    (r, s, k, span.trace_id, span.span_id, span.parent_span_id,
                     span.start_time_unix_nano, span.end_time_unix_nano, span.status.code,
                     span.status.message, attrs, safe, len(span.events) > 0)
                )  # fmt: skip
    return resources, spans


def assert_matches(body: bytes) -> None:
    got = decode_spans(body)
    assert got is not None, "the C walk gave up on a plain request"
    assert exact(got) == exact(reference(body))


def assert_none_or_matches(body: bytes) -> None:
    got = decode_spans(body)  # must not crash whatever the bytes
    try:
        want = reference(body)
    except DecodeError:
        return  # the caller never passes bytes upb rejects: any non-crashing answer is fine
    if got is not None:
        assert exact(got) == exact(want)


# -- builders -----------------------------------------------------------------------------
def kv(key: str, value: AnyValue | None = None, **one: Any) -> KeyValue:
    if value is None and not one:
        return KeyValue(key=key)
    return KeyValue(key=key, value=value if value is not None else AnyValue(**one))


def strings(*items: str) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=i) for i in items]))


def span_with(attrs: Sequence[KeyValue], **fields: Any) -> Span:
    return Span(trace_id=b"t" * 16, span_id=b"s" * 8, name="x", attributes=attrs, **fields)


def code(n: int) -> Status.StatusCode.ValueType:
    return Status.StatusCode.ValueType(n)


def body_of(*spans: Span) -> bytes:
    return request(list(spans), service="otlp-fast").SerializeToString()


# Unknown fields of every wire type (field numbers no OTLP message uses).
UNKNOWN = (
    tag(1000, 0) + varint(2**63)
    + tag(1001, 1) + b"\x01" * 8
    + ld(1002, b"\x08\x01 anything")
    + tag(1003, 5) + b"\x02" * 4
)  # fmt: skip


def with_unknown(message: Any) -> Any:
    """The same message with UNKNOWN appended (upb keeps and re-serializes them)."""
    return type(message).FromString(message.SerializeToString() + UNKNOWN)


# -- randomized corpus and robustness -----------------------------------------------------
_KEYS = ["a", "b", "mltrace.component", "mltrace.inputs", "ü", "\U0001f600", ""]


def _random_value(rng: random.Random, depth: int = 0) -> AnyValue:
    pick = rng.random()
    if pick < 0.3:
        return AnyValue(
            string_value=rng.choice(["", "x", "é\U00010348", "a" * rng.randint(0, 300)])
        )
    if pick < 0.4:
        return AnyValue(bool_value=rng.random() < 0.5)
    if pick < 0.55:
        ints = [0, 1, -1, 2**63 - 1, -(2**63), rng.randint(-9999, 9999)]
        return AnyValue(int_value=rng.choice(ints))
    if pick < 0.65:
        doubles = [0.5, -0.0, math.nan, math.inf, -math.inf, rng.random()]
        return AnyValue(double_value=rng.choice(doubles))
    if pick < 0.9:
        if depth < 2 and rng.random() < 0.2:
            items = [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        else:
            items = [AnyValue(string_value=rng.choice(_KEYS)) for _ in range(rng.randint(0, 4))]
        return AnyValue(array_value=ArrayValue(values=items))
    if pick < 0.93:
        return AnyValue(kvlist_value=KeyValueList(values=[kv("n", _random_value(rng, depth + 1))]))
    if pick < 0.96:
        return AnyValue(bytes_value=rng.randbytes(rng.randint(0, 4)))
    return AnyValue()


def _random_attrs(rng: random.Random) -> list[KeyValue]:
    simple = rng.random() < 0.6  # mostly simple dicts, so the values are compared too
    out = []
    for _ in range(rng.randint(0, 8)):
        value = _random_value(rng)
        while simple and _simple(value) is _NOT_SIMPLE:
            value = _random_value(rng)
        out.append(kv(rng.choice(_KEYS), value))
    return out


def _random_span(rng: random.Random) -> Span:
    span = Span(
        trace_id=rng.randbytes(rng.choice([0, 16])),
        span_id=rng.randbytes(rng.choice([0, 8])),
        parent_span_id=rng.randbytes(rng.choice([0, 8])),
        name=rng.choice(["", "n"]),
        start_time_unix_nano=rng.choice([0, 2**64 - 1, rng.getrandbits(64)]),
        end_time_unix_nano=rng.getrandbits(64),
        attributes=_random_attrs(rng),
    )
    if rng.random() < 0.3:
        span.status.code = code(rng.choice([0, 1, 2, -1]))
        span.status.message = rng.choice(["", "err", "\U0001f4a5"])
    if rng.random() < 0.2:
        span.events.add(name="e").attributes.extend(_random_attrs(rng))
    if rng.random() < 0.1:
        span.links.add(trace_id=rng.randbytes(16))
    return span


def _random_request(rng: random.Random) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        rs = req.resource_spans.add()
        if rng.random() < 0.8:
            rs.resource.attributes.extend(_random_attrs(rng))
        for _ in range(rng.choice([0, 1, 1, 2])):
            ss = rs.scope_spans.add()
            ss.spans.extend(_random_span(rng) for _ in range(rng.randint(0, 4)))
    return req
