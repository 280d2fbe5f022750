"""Seeded random OTLP requests mixing run spans, events, odd values and the SDK's own spans.

Example::

    request = _random_request(random.Random(0), _all_spans(_sdk_request()))
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_mltrace import semconv
from tests import support_processor_fast as fast
from tests.otlp_builders import kvs, plain_span, run_span, value

# --- seeded random corpus -----------------------------------------------------------------

KEYS = [
    fast.C,
    fast.C,
    fast.C,
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
    fast.HOSTILE,
    "s3://b/k@sha256:aa",
    "é😀",
    "a" * 300,
    "r" * 9000,
    "%",
    ";",
]
DOUBLES = [0.5, -0.0, 1e308, fast.NAN, fast.INF, -fast.INF, 3.0]
INTS = [0, 1, -1, 2**63 - 1, -(2**63), 42]


def _random_value(rng: random.Random, key: str) -> Any:
    kind = rng.random()
    if key in (semconv.INPUTS, semconv.OUTPUTS, semconv.TAGS) and kind < 0.6:
        return [
            rng.choice(STRINGS[:6]) if rng.random() < 0.2 else f"s3://b/{rng.randrange(5)}"
            for _ in range(rng.randrange(4))
        ]
    if key in (fast.C, semconv.RUN_ID, semconv.RECORDS_RUN_ID) and kind < 0.7:
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
        lambda: fast.output_event(
            rng.choice(["a", "b"]), [rng.choice([1.0, fast.NAN, None, 2.5]) for _ in range(4)]
        ),
        lambda: fast.output_event("cat", [rng.choice(["x", "y", None]) for _ in range(3)]),
        lambda: fast.records_event(
            rng.choice(["s3://b/o", ""]), rng.choice([["a"], ["a", "b"], [], ["", "x"]])
        ),
        lambda: fast.records_event(
            ids=["a"],
            RECORDS_CHUNK_INDEX=rng.choice([0, 1, -1]),
            RECORDS_CHUNK_TOTAL=rng.choice([1, 2]),
        ),
        lambda: fast.check_event(CHECK_STATUS=rng.choice(["pass", "fail", "bogus"])),
        lambda: fast.event("exception", {"exception.message": "m"}),
        lambda: fast.event(
            semconv.OUTPUT_EVENT, {semconv.OUT_KIND: rng.choice(["numeric", "weird"])}
        ),
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
    if rng.random() < 0.5 and fast.C not in keys:
        attrs.insert(rng.randrange(len(attrs) + 1), (fast.C, "comp"))
    if rng.random() < 0.15 and attrs:  # a duplicated key
        key = rng.choice(attrs)[0]
        attrs.insert(rng.randrange(len(attrs) + 1), (key, _random_value(rng, key)))
    rng.shuffle(attrs)
    events = _random_events(rng) if rng.random() < 0.25 else []
    return fast.random_span(
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
