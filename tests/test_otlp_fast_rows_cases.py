"""Hand-built cases of store rows built in C against the pure-Python path (see
tests/test_otlp_fast_rows.py): unicode, escapes, huge ints, -0.0, resource merges,
duplicate keys, tags, code attributes on the resource, status codes; what C hands back,
and the fallback when one run ID is in both C and Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from mltrace_collector.index.decode import fast_rows
from otel_mltrace import semconv
from tests.otlp_builders import kvs
from tests.support_otlp_fast_rows import (
    INF,
    NAN,
    C,
    M,
    P,
    Stats,
    c_rows,
    check_decode_and_prepare,
    corpus_check,
)
from tests.support_processor_fast import HOSTILE, event, output_event, records_event, req, span

# --- cases of this file -------------------------------------------------------------------


def _resource_request(
    resource: list[tuple[str, Any]] | None, *spans: Span
) -> ExportTraceServiceRequest:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    if resource is not None:
        rs.resource.attributes.extend(kvs(resource))
    return ExportTraceServiceRequest(resource_spans=[rs])


ESCAPES = 'q"b\\s/n\nt\tr\rb\bf\fc\x01\x1fd\x7fé\u2028\ufffd😀\U0010ffff'


def _own_cases() -> Iterator[tuple[str, ExportTraceServiceRequest]]:
    yield (
        "unicode-and-escapes",
        req(
            span(1, {C: "cömp😀", semconv.RUN_ID: "rün-\U00010348", "ключ\U0001f600": ESCAPES}),
            span(2, {C: ESCAPES, P + "ünï😀": ESCAPES, M + "😀": 1.5, ESCAPES: ESCAPES}),
            span(3, {C: "c", semconv.INPUTS: [ESCAPES, "é@sha256:ab", HOSTILE], "k\x00": "v"}),
            span(4, {C: "c", semconv.TAGS: [ESCAPES, "é", "😀", "t\x00"]}),
            span(5, {C: "c\x00"}),
            span(6, {C: "c", semconv.RUN_ID: "r\x00"}),
            span(7, {C: "😀" * 512, semconv.RUN_ID: "😀" * 256}),
            span(8, {C: "😀" * 513}),
            span(9, {C: "c", semconv.OUTPUTS: ["😀" * 8192, "x\x00"]}),
            span(10, {C: "c", semconv.OUTPUTS: ["😀" * 8192]}),
            resource=[("service.name", ESCAPES), ("ключ", "значение\U0001f600")],
        ),
    )
    yield (
        "numbers",
        req(
            span(
                20,
                {
                    C: "c",
                    P + "big": 2**63 - 1,
                    P + "small": -(2**63),
                    M + "big": 2**63 - 1,
                    M + "small": -(2**63),
                    M + "odd": 2**53 + 1,
                    "big": 2**63 - 1,
                },
            ),
            span(21, {C: "c", P + "z": -0.0, M + "z": -0.0, "z": -0.0, M + "i": 0, P + "f": 0.1}),
            span(22, {C: "c", P + "t": 5e-324, M + "t": 1e308, P + "b": True, M + "x": 1e-7}),
            span(23, {C: "c", M + "b": False}),
            span(24, {C: "c", M + "s": "1"}),
            span(25, {C: "c", M + "l": ["1"]}),
            span(26, {C: "c", P + "l": []}),
            span(27, {C: "c", P: "empty name", M: 2, "mltrace.param": 1, "mltrace.metrics.x": "s"}),
            span(28, {C: "c", "mltrace.parameter": [], "m": 1, "mltrace.metric": "x"}),
            span(29, {C: "c", P + "n": NAN}),
            span(30, {C: "c", "other": -INF}),
            span(31, {"not-a-run": NAN}),
        ),
    )
    yield (
        "resource-merge-and-override",
        req(
            span(40, {C: "c", "resource.service.name": "span-wins", "resource.x": [], "y": 1}),
            span(41, {C: "c", semconv.SERVICE_NAME: "span-svc", "x": "s"}),
            span(42, {C: "c", semconv.SERVICE_NAME: 7}),  # not a str: None, no fallback
            resource={"service.name": "svc", "x": 1, "y": ["a"], "z": -0.0, "w": True},
        ),
    )
    code_resource = {
        semconv.SERVICE_NAME: "s\x00vc",
        semconv.VCS_REVISION: "rev",
        semconv.VCS_REPOSITORY: "repo\x00\x00",
        semconv.CODE_FUNCTION: "fn",
        semconv.CODE_FILE: "f.py",
    }
    yield (
        "code-attributes-on-the-resource",
        req(
            span(50, {C: "c"}),
            span(51, {C: "c", semconv.CODE_FUNCTION: "own", semconv.VCS_REVISION: ["x"]}),
            span(52, {C: "c", semconv.CODE_FILE: "a\x00b", semconv.VCS_REPOSITORY: ""}),
            resource=code_resource,
        ),
    )
    yield "code-resource-with-ints", req(span(53, {C: "c"}), resource={semconv.VCS_REVISION: 3})
    yield "resource-with-nan", req(span(54, {C: "c"}), span(55, {}), resource={"w": NAN})
    yield "resource-with-map", req(span(56, {C: "c"}), span(57, {}), resource={"m": {"a": 1}})
    yield "no-resource", _resource_request(None, span(58, {C: "c"}))
    yield (
        "duplicate-keys",
        req(
            span(60, [(C, "a"), (C, "b"), (semconv.RUN_ID, "r1"), (semconv.RUN_ID, "r2")]),
            span(61, [(C, "a"), (semconv.INPUTS, ["x"]), (semconv.INPUTS, ["y", "y", "z"])]),
            span(62, [(C, "a"), (P + "p", 1), (P + "p", "s"), (M + "m", 1.0), (M + "m", 2)]),
            span(63, [(C, "a"), (semconv.TAGS, ["t"]), (semconv.TAGS, ["u", "u"])]),
            span(64, [(C, "a"), (P + "p", NAN), (P + "p", 1.0)]),  # not safe: handed back
            span(65, [(C, 3), (C, "a")]),
            span(66, [(C, "a"), (C, 3)]),
        ),
    )
    yield (
        "tags",
        req(
            span(70, {C: "c", semconv.TAGS: []}),
            span(71, {C: "c", semconv.TAGS: ["nightly", "nightly", "b"]}),
            span(72, {C: "c", semconv.TAGS: [""]}),
            span(73, {C: "c", semconv.TAGS: "s"}),
            span(74, {C: "c", semconv.TAGS: True}),
        ),
    )
    yield (
        "status-codes",
        req(
            *[
                span(80 + i, {C: "c"}, status=Status(code=code, message=msg))  # type: ignore[arg-type]
                for i, (code, msg) in enumerate(
                    [
                        (0, ""),
                        (1, "fine"),
                        (2, "boom\x00"),
                        (3, "three"),
                        (-1, ""),
                        (-2, "neg"),
                        (2**31 - 1, "max"),
                        (-(2**31), "min"),
                        (0, "😀\n"),
                    ]
                )
            ]
        ),
    )
    yield (
        "ids-and-times",
        req(
            span(90, {C: "c"}, parent=b"\x01" * 8, times=(10, 5)),
            span(91, {C: "c"}, parent=b"\xff" * 3, times=(2**64 - 1, 2**64 - 1)),
            span(92, {C: "c"}, times=(0, 2**64 - 1)),
            span(93, {C: "c"}, trace_len=17),
            span(94, {C: "c"}, span_len=7),
            span(95, {C: "c"}, trace_len=0),
            span(96, {}, trace_len=0, span_len=0),
        ),
    )
    shared = "s3://b/shared@sha256:aa"
    yield (
        "artifacts-and-repeated-runs",
        req(
            span(100, {C: "a", semconv.INPUTS: [shared, "x", shared], semconv.OUTPUTS: [shared]}),
            span(101, {C: "b", semconv.OUTPUTS: [shared, "o", "o"]}, times=(1, 2)),
            span(102, {C: "c", semconv.RUN_ID: "same", semconv.INPUTS: ["first"]}),
            span(103, {C: "c", semconv.RUN_ID: "same", semconv.INPUTS: ["second"]}, times=(0, 1)),
            span(104, {C: "c", semconv.INPUTS: [], semconv.OUTPUTS: []}),
            span(105, {C: "c", semconv.INPUTS: ["a" * 8192], semconv.OUTPUTS: ["a" * 8193]}),
            span(106, {C: "c", semconv.INPUTS: "x"}),
            span(107, {C: "c", semconv.INPUTS: ["", "x"]}),
            span(108, {C: "c", semconv.INPUTS: ["v@x:1", "s3://u@h/k", "a@", "@v:1", "a@b-c:d"]}),
        ),
    )
    yield (
        "same-run-id-in-c-and-in-python",  # the second one has events: decoded in Python
        req(
            span(110, {C: "c", semconv.RUN_ID: "dup", semconv.INPUTS: ["a"]}, times=(50, 60)),
            span(111, {C: "c", semconv.RUN_ID: "dup", semconv.INPUTS: ["b"]}, [output_event()]),
        ),
    )
    yield (
        "same-run-id-python-first",
        req(
            span(112, {C: "c", semconv.RUN_ID: "dup", semconv.INPUTS: ["b"]}, [output_event()]),
            span(113, {C: "c", semconv.RUN_ID: "dup", semconv.INPUTS: ["a"]}, times=(5, 6)),
        ),
    )
    yield (
        "non-runs",
        req(
            span(120, {}),
            span(121, {"http.method": "GET"}),
            span(122, {"x": NAN}),
            span(123, {"x": {"m": 1}}),
            span(124, {"x": 1}, [event("log", {"m": "x"})]),
            span(125, {semconv.RECORDS_RUN_ID: "r"}, [records_event()]),
            span(126, {semconv.RECORDS_RUN_ID: "r"}),
            span(127, {semconv.RUN_ID: "r"}),
        ),
    )


OWN = list(_own_cases())
ALL_HANDED_BACK = {"resource-with-nan", "resource-with-map", "non-runs"}


@pytest.mark.parametrize("name, request_", OWN, ids=[n for n, _ in OWN])
def test_own_cases(name: str, request_: ExportTraceServiceRequest) -> None:
    stats = Stats()
    corpus_check(request_, request_.SerializeToString(), stats)
    assert stats.none == 0 and (stats.done == 0) == (name in ALL_HANDED_BACK)


def test_what_is_handed_back() -> None:
    cases = dict(OWN)
    got = c_rows(cases["resource-with-nan"].SerializeToString())
    assert got == ([], [(0, 0, 0), (0, 0, 1)], 0)
    got = c_rows(cases["resource-with-map"].SerializeToString())
    assert got == ([], [(0, 0, 0), (0, 0, 1)], 0)
    got = c_rows(cases["non-runs"].SerializeToString())
    assert got is not None
    done, todo, other = got
    assert done == [] and other == 3  # {} , http.method, and mltrace.run.id alone
    assert todo == [(0, 0, 2), (0, 0, 3), (0, 0, 4), (0, 0, 5), (0, 0, 6)]
    got = c_rows(cases["status-codes"].SerializeToString())
    assert got is not None
    assert [row[8:10] for row, _, _ in got[0]] == [
        ("unset", None),
        ("ok", "fine"),
        ("error", "boom\ufffd"),
        ("unset", "three"),
        ("unset", None),
        ("unset", "neg"),
        ("unset", "max"),
        ("unset", "min"),
        ("unset", "😀\n"),
    ]


def test_same_run_id_in_c_and_python_falls_back() -> None:
    cases = dict(OWN)
    for name in ("same-run-id-in-c-and-in-python", "same-run-id-python-first"):
        request_ = cases[name]
        raw = request_.SerializeToString()
        assert fast_rows.decode_rows(request_, raw) is None
        assert not check_decode_and_prepare(request_, raw)
