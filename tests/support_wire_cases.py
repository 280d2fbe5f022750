"""Non-canonical protobuf wire encodings and OTLP/JSON bodies of run spans, by name.

Example::

    for name, raw in _wire_cases(): ...
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

from otel_mltrace import semconv
from tests.otlp_builders import ld as _ld
from tests.otlp_builders import varint as _varint
from tests.support_processor_fast import C

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
