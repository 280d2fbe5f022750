"""The C walk of serialized OTLP requests (``mltrace_collector.index.decode._otlp_fast``) against a
pure-Python reference that walks the upb-parsed message with ``WhichOneof``.

A non-None answer of ``decode_spans`` must equal the reference exactly (types, dict order,
NaN bits); None is always allowed for inputs outside the modelled subset (merge semantics,
wire-type mismatches), and required for the merge cases tested here. Malformed bytes must
never crash it. The reference, the builders and the random generator are in
tests/support_otlp_fast.py.
"""

from __future__ import annotations

import math
import os
import random
import sys

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tests.leakcheck import traced_growth
from tests.otlp_builders import ld, plain_span, run_span, tag, varint
from tests.support_otlp_fast import (
    UNKNOWN,
    _random_request,
    assert_matches,
    assert_none_or_matches,
    body_of,
    code,
    decode_spans,
    kv,
    span_with,
    strings,
    with_unknown,
)


# -- differential tests -------------------------------------------------------------------
def test_builder_spans() -> None:
    trace = os.urandom(16)
    spans = [
        run_span("train", inputs=["s3://b/x@sha256:aa", "bq://p.d.t@v:3"], outputs=["m"]),
        run_span("evaluate"),
        plain_span("plain", trace),
        plain_span("child", trace, parent=os.urandom(8)),
    ]
    assert_matches(body_of(*spans))
    got = decode_spans(body_of(*spans))
    assert got is not None
    resources, rows = got
    assert resources == [{"service.name": "otlp-fast"}]
    assert [row[:3] for row in rows] == [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 0, 3)]
    assert rows[0][10]["mltrace.inputs"] == ["s3://b/x@sha256:aa", "bq://p.d.t@v:3"]
    assert rows[2][10] == {} and rows[2][11] is True and rows[2][12] is False


def test_empty_and_minimal_requests() -> None:
    assert decode_spans(b"") == ([], [])
    assert_matches(ExportTraceServiceRequest(resource_spans=[ResourceSpans()]).SerializeToString())
    assert decode_spans(memoryview(body_of(Span()))) == decode_spans(body_of(Span()))
    assert_matches(body_of(Span()))  # every field at its proto3 default
    with pytest.raises(TypeError):
        decode_spans("not bytes")


@pytest.mark.parametrize(
    "value",
    [
        AnyValue(string_value="s"),
        AnyValue(string_value=""),
        AnyValue(bool_value=True),
        AnyValue(bool_value=False),
        AnyValue(int_value=0),
        AnyValue(int_value=-1),
        AnyValue(int_value=-(2**63)),
        AnyValue(int_value=2**63 - 1),
        AnyValue(double_value=0.0),
        AnyValue(double_value=-0.0),
        AnyValue(double_value=1e308),
        AnyValue(double_value=5e-324),
        AnyValue(double_value=math.nan),
        AnyValue(double_value=-math.nan),
        AnyValue(double_value=math.inf),
        AnyValue(double_value=-math.inf),
        strings(),
        strings("a"),
        strings("a", "", "é", "\U0001f600"),
        AnyValue(
            array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=1)])
        ),
        AnyValue(
            array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="a")])
        ),
        AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue()])),
        AnyValue(array_value=ArrayValue(values=[AnyValue(array_value=ArrayValue())])),
        AnyValue(kvlist_value=KeyValueList(values=[kv("k", string_value="v")])),
        AnyValue(kvlist_value=KeyValueList()),
        AnyValue(bytes_value=b"\x00\xff"),
        AnyValue(bytes_value=b""),
        AnyValue(string_value_strindex=3),
        AnyValue(),
        None,  # KeyValue without a value
    ],
)
def test_every_any_value_kind(value: AnyValue | None) -> None:
    for attrs in (
        [kv("k", value)],
        [kv("a", string_value="x"), kv("k", value), kv("z", int_value=1)],
    ):
        body = body_of(span_with(attrs))
        assert_matches(body)
        resource = ResourceSpans(resource=Resource(attributes=attrs), scope_spans=[ScopeSpans()])
        assert_matches(ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString())


def test_simple_values_and_safe_flag() -> None:
    span = span_with(
        [
            kv("s", string_value="v"),
            kv("b", bool_value=True),
            kv("i", int_value=-5),
            kv("d", double_value=0.5),
            kv("a", strings("x", "y")),
            kv("e", strings()),
        ]
    )
    got = decode_spans(body_of(span))
    assert got is not None
    attrs, safe = got[1][0][10], got[1][0][11]
    assert attrs == {"s": "v", "b": True, "i": -5, "d": 0.5, "a": ["x", "y"], "e": []}
    assert type(attrs["b"]) is bool and safe is True
    unsafe = decode_spans(body_of(span_with([kv("d", double_value=math.nan)])))
    assert unsafe is not None and unsafe[1][0][11] is False
    not_simple = decode_spans(body_of(span_with([kv("m", bytes_value=b"x")])))
    assert not_simple is not None and not_simple[1][0][10] is None


def test_duplicate_keys_keep_first_position_last_value() -> None:
    attrs = [
        kv("a", string_value="1"),
        kv("b", int_value=2),
        kv("a", double_value=math.inf),
        kv("a", int_value=3),
    ]
    body = body_of(span_with(attrs))
    assert_matches(body)
    got = decode_spans(body)
    assert got is not None
    assert list(got[1][0][10].items()) == [("a", 3), ("b", 2)]
    assert got[1][0][11] is False  # a non-finite value was seen, even if overwritten


def test_span_fields_timestamps_status_unicode_events_links() -> None:
    top = 2**64 - 1
    spans = [
        span_with([], start_time_unix_nano=top, end_time_unix_nano=top),
        span_with([], start_time_unix_nano=2**63, end_time_unix_nano=1),
        span_with([], status=Status(code=Status.STATUS_CODE_ERROR, message="bøom \U0001f4a5")),
        span_with([], status=Status(code=Status.STATUS_CODE_OK)),
        span_with([], status=Status(code=code(2**31 - 1))),  # open enum: any int32
        span_with([], status=Status(code=code(-7))),
        span_with([kv("ключ \U00010348", string_value="znač\U0001f600\x00")]),
        span_with([], events=[Span.Event(name="e", attributes=[kv("x", int_value=1)])]),
        span_with([], events=[Span.Event()]),
        span_with([], links=[Span.Link(trace_id=b"l" * 16, span_id=b"m" * 8)], flags=0x301),
        Span(
            trace_id=b"\x00" * 16,
            span_id=b"\xff" * 8,
            parent_span_id=b"p" * 8,
            trace_state="k=v",
            kind=Span.SPAN_KIND_SERVER,
            dropped_attributes_count=1,
            dropped_events_count=2,
            dropped_links_count=3,
        ),
    ]
    body = body_of(*spans)
    assert_matches(body)
    got = decode_spans(body)
    assert got is not None
    rows = got[1]
    assert rows[0][6] == rows[0][7] == top
    assert rows[2][8:10] == (2, "bøom \U0001f4a5")
    assert rows[4][8] == 2**31 - 1 and rows[5][8] == -7
    assert rows[7][12] is True and rows[8][12] is True and rows[9][12] is False


def test_status_code_varints_truncate_to_int32_like_upb() -> None:
    for v in (2**40 + 5, 2**32 - 1, 2**31, 2**64 - 1):
        assert_matches(_one_span_request(ld(15, tag(3, 0) + varint(v))))


def test_multiple_resources_and_scopes() -> None:
    def scope(n: int) -> ScopeSpans:
        spans = [span_with([kv("n", int_value=i)]) for i in range(n)]
        return ScopeSpans(scope=InstrumentationScope(name="s", version="1"), spans=spans)

    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=Resource(attributes=[kv("r", int_value=0)]),
                          scope_spans=[scope(2), scope(0), scope(3)]),
            ResourceSpans(scope_spans=[scope(1)]),  # no resource at all
            ResourceSpans(resource=Resource(attributes=[kv("kv", kvlist_value=KeyValueList())]),
                          scope_spans=[scope(1)], schema_url="https://x"),
        ]
    )  # fmt: skip
    body = req.SerializeToString()
    assert_matches(body)
    got = decode_spans(body)
    assert got is not None
    assert got[0] == [{"r": 0}, {}, None]
    assert [row[:3] for row in got[1]] == [
        (0, 0, 0), (0, 0, 1), (0, 2, 0), (0, 2, 1), (0, 2, 2), (1, 0, 0), (2, 0, 0)
    ]  # fmt: skip


def test_unknown_fields_at_every_level() -> None:
    array = with_unknown(ArrayValue(values=[with_unknown(AnyValue(string_value="a"))]))
    value = with_unknown(AnyValue(array_value=array))
    attrs = [with_unknown(kv("k", with_unknown(AnyValue(string_value="v")))), kv("arr", value)]
    span = with_unknown(span_with(attrs, status=with_unknown(Status(message="m", code=code(1)))))
    scope = with_unknown(ScopeSpans(spans=[span, with_unknown(span_with([]))]))
    resource = with_unknown(Resource(attributes=attrs))
    rs = with_unknown(ResourceSpans(resource=resource, scope_spans=[scope]))
    body = with_unknown(ExportTraceServiceRequest(resource_spans=[rs])).SerializeToString()
    assert UNKNOWN in body
    assert_matches(body)
    got = decode_spans(body)
    assert got is not None and got[1][0][10] == {"k": "v", "arr": ["a"]}


def test_keys_are_shared_and_interned() -> None:
    body = body_of(*[span_with([kv("mltrace.component", string_value=str(i))]) for i in range(5)])
    got = decode_spans(body)
    assert got is not None
    keys = [next(iter(row[10])) for row in got[1]]
    assert all(k is keys[0] for k in keys) and sys.intern(keys[0]) is keys[0]


# -- what the walk must refuse: protobuf merge semantics, odd wire data -------------------
def _one_span_request(span_bytes: bytes) -> bytes:
    return ld(1, ld(2, ld(2, span_bytes)))


def test_merge_semantics_give_none() -> None:
    span = span_with([kv("k", string_value="v")], status=Status(message="a"))
    base = span.SerializeToString()
    assert_matches(_one_span_request(base))
    dup_status = base + Span(status=Status(code=code(1))).SerializeToString()
    attr = kv("k", string_value="v").SerializeToString()
    two_values = attr + ld(2, AnyValue(int_value=1).SerializeToString())
    two_oneofs = ld(2, AnyValue(string_value="v").SerializeToString() + tag(3, 0) + b"\x01")
    same_oneof_twice = ld(2, AnyValue(string_value="v").SerializeToString() * 2)
    two_arrays = ld(2, strings("a").SerializeToString() + strings("b").SerializeToString())
    in_array = ld(2, ld(5, ld(1, AnyValue(string_value="v").SerializeToString() + b"\x18\x01")))
    cases = [
        _one_span_request(dup_status),
        _one_span_request(ld(9, two_values)),
        _one_span_request(ld(9, two_oneofs)),
        _one_span_request(ld(9, same_oneof_twice)),
        _one_span_request(ld(9, two_arrays)),
        _one_span_request(ld(9, in_array)),
        ld(1, ld(1, b"") + ld(1, b"")),  # two resources in one ResourceSpans
        ld(1, ld(1, ld(1, two_values))),  # in a resource attribute
    ]
    for body in cases:
        ExportTraceServiceRequest.FromString(body)  # valid protobuf, merged by upb
        assert decode_spans(body) is None, body


def test_wire_type_mismatch_groups_and_truncation_give_none() -> None:
    cases = [
        _one_span_request(tag(7, 0) + b"\x01"),  # start_time as varint
        _one_span_request(tag(15, 0) + b"\x01"),  # status as varint
        _one_span_request(tag(9, 5) + b"\x00" * 4),  # attributes as fixed32
        _one_span_request(ld(9, tag(2, 0) + b"\x01")),  # KeyValue.value as varint
        _one_span_request(ld(9, ld(2, tag(4, 0) + b"\x01"))),  # double as varint
        _one_span_request(tag(1000, 3) + tag(1000, 4)),  # an (empty) group
        tag(1, 0) + b"\x01",  # resource_spans as varint
        ld(1, b"\x0a\x05ab"),  # length beyond the end
        b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # 11-byte varint
        b"\x00\x00",  # field number 0
        b"\x0f",  # wire type 7
        _one_span_request(ld(9, ld(1, b"\xed\xa0\x80"))),  # surrogate in a key: bad UTF-8
        _one_span_request(ld(15, ld(2, b"\xc0\x80"))),  # overlong status message
    ]
    for body in cases:
        assert decode_spans(body) is None, body


def test_randomized_corpus() -> None:
    rng = random.Random(20240611)
    for _ in range(3000):
        assert_matches(_random_request(rng).SerializeToString())


def test_truncations_never_crash() -> None:
    rng = random.Random(7)
    bodies = [_random_request(rng).SerializeToString() for _ in range(5)]
    bodies.append(body_of(run_span("train", inputs=["i"], outputs=["o"])))
    for body in bodies:
        for cut in range(len(body) + 1):
            assert_none_or_matches(body[:cut])


def test_random_mutations_never_crash() -> None:
    rng = random.Random(99)
    seeds = [_random_request(rng).SerializeToString() for _ in range(20)]
    seeds = [s for s in seeds if s]
    for _ in range(5000):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.choice([1, 1, 1, 2, 4])):  # mostly one: upb still parses more
            op = rng.random()
            at = rng.randrange(len(body) + 1)
            if op < 0.5 and at < len(body):
                body[at] = rng.randrange(256)
            elif op < 0.75:
                body[at:at] = rng.randbytes(rng.randint(1, 3))
            else:
                del body[at : at + rng.randint(1, 3)]
        assert_none_or_matches(bytes(body))


def test_no_leak_over_many_calls() -> None:
    """Reference counting: calls over ok, None and error paths leave no Python object."""
    good = body_of(
        run_span("train", inputs=["a", "b"], outputs=["c"]),
        span_with([kv("d", double_value=math.nan), kv("m", bytes_value=b"x")],
                  status=Status(message="m"), events=[Span.Event()]),
    )  # fmt: skip
    merged = _one_span_request(span_with([], status=Status()).SerializeToString() * 2)
    bad_utf8 = _one_span_request(ld(9, ld(1, b"\xff") + ld(2, ld(1, b"v"))))
    bodies = [good, merged, bad_utf8, good[:-3]]
    growth = traced_growth(lambda i: decode_spans(bodies[i % 4]))
    assert min(growth) < 128 * 1024, f"traced memory growth per 12,500 calls: {growth}"
