"""Store rows built in C (``_otlp_fast.prepare_plain``) against the pure-Python path
(``processor.decode_request`` with ``walk_spans = None``, then ``ingest_rows.prepare``).

Span by span: every span C built rows for must be one the processor accepts as a run, and
its run row, I/O rows and artifacts must equal ``ingest_rows._run_row`` / ``ingest_rows.prepare`` of
that run exactly (types too; floats by their bits); a span C counted must be a non-run span;
everything else must be handed back. Request by request: ``decode_and_prepare(...,
keep_runs=False)`` (fast_rows.py) must give the same rows, rejections and counts as the
pure path. Corpus: the requests of tests/test_processor_fast.py (hand-built, bad input of
every kind, SDK spans, non-canonical wire bytes, OTLP/JSON, its random mix), the random
corpus of tests/test_otlp_fast.py, and the cases below (unicode, escapes, huge ints, -0.0,
resource merges, duplicate keys, tags, code attributes on the resource, status codes).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from benchmarks.bench_ingest import encode_batches
from mltrace_collector.index.decode import fast_rows, processor
from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.index.store import ingest_rows
from mltrace_collector.service.ingest import decode_workers
from mltrace_collector.service.receivers.otlp_json import parse_otlp_json
from otel_mltrace import semconv
from tests.leakcheck import traced_growth
from tests.otlp_builders import kvs
from tests.support_compare import exact
from tests.support_decode_cases import NAMED
from tests.support_processor_fast import (
    HOSTILE,
    _all_spans,
    _sdk_request,
    canonical,
    event,
    output_event,
    random_span,
    records_event,
    req,
    span,
)
from tests.support_random_requests import _random_request as processor_random_request
from tests.support_wire_cases import _json_bodies, _wire_cases

try:
    from mltrace_collector.index.decode._otlp_fast import decode_spans, prepare_plain
except ImportError as exc:  # pragma: no cover - a build without a C compiler
    _SKIP_REASON = (
        f"C extension mltrace_collector.index.decode._otlp_fast is not built ({exc}): no C rows to "
        "compare (scripts/bootstrap.sh builds it in place)"
    )
    print(f"tests/test_otlp_fast_rows.py skipped: {_SKIP_REASON}")
    pytestmark = pytest.mark.skip(reason=_SKIP_REASON)

C = semconv.COMPONENT
P, M = semconv.PARAM_PREFIX, semconv.METRIC_PREFIX
NAN, INF = float("nan"), float("inf")


def c_rows(raw: bytes) -> Any:
    return prepare_plain(raw, ingest_rows.dumps_sorted, ingest_rows._split_artifact_id)


@dataclass
class Stats:
    requests: int = 0
    none: int = 0  # requests C left to the pure path (decode_spans None)
    done: int = 0
    todo: int = 0
    other: int = 0


def check_spans(request: ExportTraceServiceRequest, raw: bytes, stats: Stats) -> None:
    """prepare_plain(raw) span by span against the processor on the upb message."""
    stats.requests += 1
    got = c_rows(raw)
    assert (got is None) == (decode_spans(raw) is None)
    if got is None:
        stats.none += 1
        return
    done, todo, other = got
    assert type(done) is list and type(todo) is list and type(other) is int
    assert todo == sorted(set(todo))  # wire order, once each
    handed_back = set(todo)
    entries = iter(done)
    counted = 0
    for r, rs in enumerate(request.resource_spans):
        resource = processor.attributes(rs.resource.attributes)
        stored = processor._resource_attributes(resource)
        for s, ss in enumerate(rs.scope_spans):
            for k, one in enumerate(ss.spans):
                if (r, s, k) in handed_back:
                    stats.todo += 1
                    continue
                batch = DecodedBatch()
                processor._decode_into(batch, one, resource, stored)
                assert batch.rejections == [], "C accepted a span the processor rejects"
                assert batch.record_chunks == []
                if not batch.runs:
                    counted += 1
                    continue
                (run,) = batch.runs
                entry = next(entries, None)
                assert entry is not None, f"run span {(r, s, k)} neither done nor handed back"
                assert type(entry) is tuple and len(entry) == 3
                prepared = ingest_rows.prepare([run])
                assert exact(entry[0]) == exact(ingest_rows._run_row(run))
                assert exact(entry[1]) == exact(prepared.io[run.run_id])
                artifacts = [(aid, *row) for aid, row in prepared.artifacts.items()]
                assert exact(entry[2]) == exact(artifacts)
                assert not (run.output_summaries or run.record_chunks or run.checks)
                stats.done += 1
    assert next(entries, None) is None, "more C rows than run spans"
    assert counted == other
    stats.other += other


def pure(request: ExportTraceServiceRequest, raw: bytes | None) -> decode_workers.Decoded:
    """decode_and_prepare(keep_runs=False) as it was: decode_request on the pure path."""
    walk = processor.walk_spans
    processor.walk_spans = None
    try:
        batch = processor.decode_request(request, raw)
    finally:
        processor.walk_spans = walk
    runs = len(batch.runs)
    rows = None
    if batch.runs or batch.record_chunks or batch.run_starts:
        rows = ingest_rows.prepare(batch.runs, batch.record_chunks, batch.run_starts)
        rows.records = [r for r in rows.records if r.record_chunks or r.checks]
    batch.runs = []
    return decode_workers.Decoded(batch, rows, runs)


def comparable(decoded: decode_workers.Decoded) -> Any:
    rows = decoded.rows
    prepared = None
    if rows is not None:
        prepared = (
            exact(sorted(rows.runs, key=exact)),
            exact(dict(sorted(rows.io.items()))),
            exact(dict(sorted(rows.artifacts.items()))),
            exact(rows.outputs),
            canonical(list(rows.records)),
            canonical(list(rows.chunks)),
            exact(sorted(rows.starts)),
        )
    return canonical(decoded.batch), decoded.runs, prepared


def check_decode_and_prepare(request: ExportTraceServiceRequest, raw: bytes) -> bool:
    """The integrated fast path against the pure one; True when the C rows were used."""
    fast = decode_workers.decode_and_prepare(request, raw, keep_runs=False)
    expected = comparable(pure(request, raw))
    assert comparable(fast) == expected
    in_worker = decode_workers._decode_bytes(raw, keep_runs=False)  # parses lazily
    assert comparable(in_worker) == expected
    return fast_rows.decode_rows(request, raw) is not None


def corpus_check(request: ExportTraceServiceRequest, raw: bytes, stats: Stats) -> None:
    check_spans(request, raw, stats)
    check_decode_and_prepare(request, raw)


# --- the corpus of tests/test_processor_fast.py ------------------------------------------


@pytest.mark.parametrize("request_", [r for _, r in NAMED], ids=[n for n, _ in NAMED])
def test_named_requests(request_: ExportTraceServiceRequest) -> None:
    stats = Stats()
    corpus_check(request_, request_.SerializeToString(), stats)
    assert stats.none == 0


def test_named_requests_cover_both_sides() -> None:
    stats = Stats()
    for _, request_ in NAMED:
        check_spans(request_, request_.SerializeToString(), stats)
    assert stats.done > 50 and stats.todo > 50 and stats.other > 5


@pytest.mark.parametrize("raw", [r for _, r in _wire_cases()], ids=[n for n, _ in _wire_cases()])
def test_non_canonical_wire_bytes(raw: bytes) -> None:
    request_ = ExportTraceServiceRequest.FromString(raw)
    corpus_check(request_, raw, Stats())
    corpus_check(request_, request_.SerializeToString(), Stats())


@pytest.mark.parametrize("body", [b for _, b in _json_bodies()], ids=[n for n, _ in _json_bodies()])
def test_json_bodies(body: bytes) -> None:
    request_ = parse_otlp_json(body)
    corpus_check(request_, request_.SerializeToString(), Stats())


@pytest.fixture(scope="module")
def sdk_request() -> ExportTraceServiceRequest:
    return _sdk_request()


def test_sdk_spans(sdk_request: ExportTraceServiceRequest) -> None:
    stats = Stats()
    corpus_check(sdk_request, sdk_request.SerializeToString(), stats)
    for one in _all_spans(sdk_request):
        alone = req(one)
        corpus_check(alone, alone.SerializeToString(), stats)
    assert stats.done > 0 and stats.todo > 0


@pytest.mark.parametrize("seed", range(8))
def test_processor_random_corpus(sdk_request: ExportTraceServiceRequest, seed: int) -> None:
    rng = random.Random(20_240_600 + seed)
    sdk_spans = _all_spans(sdk_request)
    stats = Stats()
    for _ in range(40):
        request_ = processor_random_request(rng, sdk_spans)
        corpus_check(request_, request_.SerializeToString(), stats)
    assert stats.done > 0 and stats.todo > 0 and stats.none == 0


def test_otlp_fast_random_corpus() -> None:
    from tests.support_otlp_fast import _random_request as walk_random_request

    rng = random.Random(20240611)
    stats = Stats()
    for _ in range(1500):
        request_ = walk_random_request(rng)
        corpus_check(request_, request_.SerializeToString(), stats)
    assert stats.other > 0 and stats.todo > 0


# --- a random corpus of mostly plain run spans --------------------------------------------

WORDS = ["train", "é", "😀", "a b", 'q"\\/\n\t\x01\x7f', "x" * 40, "", "n\x00l"]
ARTIFACTS = [
    "s3://b/x.parquet@sha256:aa",
    "s3://b/x.parquet@sha256:bb",
    "bq://p.d.t@v:3",
    "s3://user@host/k",
    "file:///é/😀.csv",
    HOSTILE,
    "mem://a@",
]
CODE_KEYS = [
    semconv.SERVICE_NAME,
    semconv.VCS_REVISION,
    semconv.VCS_REPOSITORY,
    semconv.CODE_FUNCTION,
    semconv.CODE_FILE,
]


def _scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            rng.choice(WORDS),
            rng.choice([0, 1, -1, 2**63 - 1, -(2**63), rng.getrandbits(40)]),
            rng.choice([0.5, -0.0, 0.0, 1e308, 5e-324, 1 / 3, 1e16, rng.random()]),
            rng.choice([True, False]),
        ]
    )


def _plain_value(rng: random.Random, key: str) -> Any:
    roll = rng.random()
    if key in (semconv.INPUTS, semconv.OUTPUTS):
        if roll < 0.9:
            return [rng.choice(ARTIFACTS) for _ in range(rng.randrange(4))]
        return rng.choice([[""], ["a\x00"], "s3://b/x", 1, ["a" * 8193]])
    if key == semconv.TAGS:
        return [rng.choice(WORDS) for _ in range(rng.randrange(3))] if roll < 0.95 else 3
    if key.startswith(M):
        if roll < 0.9:
            return rng.choice([1, -(2**63), 2**63 - 1, 0.25, -0.0, 1e308, rng.random()])
        return rng.choice([True, "1", ["1"]])
    if key.startswith(P):
        return _scalar(rng) if roll < 0.95 else ["l"]
    if key in CODE_KEYS:
        return rng.choice(WORDS) if roll < 0.8 else _scalar(rng)
    if roll < 0.15:
        return [rng.choice(WORDS) for _ in range(rng.randrange(3))]
    if roll < 0.17:
        return rng.choice([NAN, INF, -INF, {"m": 1}, b"\x01"])  # handed back
    return _scalar(rng)


def _plain_random_span(rng: random.Random, n: int) -> Span:
    attrs: list[tuple[str, Any]] = [(C, rng.choice(["train", "eval", "é😀"]))]
    if rng.random() < 0.05:
        attrs = [(C, rng.choice(["", "c\x00", "c" * 513, 7, ["c"]]))]
    if rng.random() < 0.05:
        attrs = []  # a plain span
    keys = [semconv.RUN_ID, semconv.INPUTS, semconv.OUTPUTS, semconv.TAGS, *CODE_KEYS]
    keys += [P + "lr", P + "😀", P, M + "acc", M + "é", M, "resource.service.name", "k", "ü"]
    for key in rng.sample(keys, rng.randrange(len(keys))):
        if key == semconv.RUN_ID:
            value: Any = rng.choice([f"run-{rng.randrange(40)}", "r" * 256, "r" * 257, "", 5])
        else:
            value = _plain_value(rng, key)
        attrs.append((key, value))
    if rng.random() < 0.1 and attrs:  # a duplicated key
        key = rng.choice(attrs)[0]
        attrs.insert(rng.randrange(len(attrs) + 1), (key, _plain_value(rng, key)))
    rng.shuffle(attrs)
    events = [output_event()] if rng.random() < 0.03 else []
    return random_span(
        rng,
        n,
        attrs,
        events,
        lengths=[(16, 8)] * 20 + [(15, 8), (16, 9)],
        codes=[0, 1, 2, 3, -1],
        messages=["", "", "err", "n\x00l", "😀"],
        # Times >= 2^63 ns are handed back (the index cannot hold them): a few, at the edges.
        times=[None, (5, 1), (7, 7), (2**63 - 1, 2**63 - 1), (0, 2**63 - 1)] * 4
        + [(2**63, 2**63), (2**64 - 1, 2**64 - 1), (0, 2**64 - 1)],
    )


def _plain_random_request(rng: random.Random) -> ExportTraceServiceRequest:
    request_ = ExportTraceServiceRequest()
    n = rng.randrange(10_000)
    for _ in range(rng.randrange(1, 4)):
        rs = request_.resource_spans.add()
        keys = [*CODE_KEYS, "host", "ü😀", "resource.service.name"]
        rattrs = [(k, _plain_value(rng, k)) for k in rng.sample(keys, rng.randrange(len(keys)))]
        rs.resource.attributes.extend(kvs(rattrs))
        for _ in range(rng.randrange(1, 3)):
            ss = rs.scope_spans.add()
            for _ in range(rng.randrange(8)):
                n += 1
                ss.spans.append(_plain_random_span(rng, n))
    return request_


@pytest.mark.parametrize("seed", range(4))
def test_plain_random_corpus(seed: int) -> None:
    rng = random.Random(7_000 + seed)
    stats = Stats()
    for _ in range(150):
        request_ = _plain_random_request(rng)
        corpus_check(request_, request_.SerializeToString(), stats)
    assert stats.done > 500 and stats.todo > 50 and stats.none == 0


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


def test_rejections_and_chunks_come_from_python(sdk_request: ExportTraceServiceRequest) -> None:
    request_ = ExportTraceServiceRequest()
    request_.CopyFrom(sdk_request)
    request_.resource_spans[0].scope_spans[0].spans.extend(
        [span(1, {C: ""}), span(2, {C: "ok", semconv.INPUTS: ["i"]})]
    )
    raw = request_.SerializeToString()
    assert check_decode_and_prepare(request_, raw)
    got = fast_rows.decode_rows(request_, raw)
    assert got is not None
    batch, rows, runs = got
    assert batch.rejections and batch.record_chunks and batch.runs == []
    assert rows is not None and rows.outputs and rows.records and runs == len(rows.runs)


# --- the bench spans, errors, leaks -------------------------------------------------------


def test_bench_spans_are_handled_entirely_in_c() -> None:
    for raw in encode_batches("rows", 3, 64):
        got = c_rows(raw)
        assert got is not None
        done, todo, other = got
        assert todo == [] and other == 0 and len(done) == 64
        request_ = ExportTraceServiceRequest.FromString(raw)
        check_spans(request_, raw, Stats())
        assert check_decode_and_prepare(request_, raw)


def test_no_c_rows_without_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = encode_batches("off", 1, 2)[0]
    monkeypatch.setattr(processor, "walk_spans", None)
    assert fast_rows.decode_rows(ExportTraceServiceRequest.FromString(raw), raw) is None


def test_arguments_and_errors_propagate() -> None:
    raw = req(span(1, {C: "c", semconv.INPUTS: ["a"]})).SerializeToString()
    with pytest.raises(TypeError):
        prepare_plain(raw, ingest_rows.dumps_sorted)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        prepare_plain("text", ingest_rows.dumps_sorted, ingest_rows._split_artifact_id)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        prepare_plain(raw, None, ingest_rows._split_artifact_id)  # type: ignore[arg-type]

    def boom(_: Any) -> Any:
        raise ZeroDivisionError

    # JSON text of plain values is written in C: dumps_sorted only for values C leaves to it
    assert prepare_plain(raw, boom, ingest_rows._split_artifact_id) == c_rows(raw)
    with pytest.raises(ZeroDivisionError):
        prepare_plain(raw, ingest_rows.dumps_sorted, boom)
    with pytest.raises(TypeError):
        prepare_plain(raw, ingest_rows.dumps_sorted, lambda aid: [aid, None])  # type: ignore[arg-type,return-value]
    assert prepare_plain(
        memoryview(raw), ingest_rows.dumps_sorted, ingest_rows._split_artifact_id
    ) == c_rows(raw)
    assert c_rows(b"") == ([], [], 0)
    assert c_rows(raw[:-3]) is None  # truncated: the walk gives up
    # Rows are made as the walk goes: an error of an early span waits for the walk's end,
    # and input the walk refuses further on is still refused (None), not an exception.
    two_resources = b"\x0a\x04\x0a\x00\x0a\x00"  # ResourceSpans{resource, resource}: upb merges
    ExportTraceServiceRequest.FromString(raw + two_resources)
    assert decode_spans(raw + two_resources) is None
    assert prepare_plain(raw + two_resources, ingest_rows.dumps_sorted, boom) is None
    with pytest.raises(ZeroDivisionError):
        prepare_plain(raw + raw, ingest_rows.dumps_sorted, boom)  # the walk is OK: raised


def test_no_leak_over_many_calls() -> None:
    """Reference counting: calls over done, handed back, None and error paths leave no
    Python object behind (tracemalloc sees every object the extension allocates; RSS in a
    long test session also moves with allocator fragmentation, so it is not the measure)."""
    good = req(
        span(1, {C: "c", semconv.INPUTS: ["a@sha256:1", "b"], semconv.OUTPUTS: ["a@sha256:1"]}),
        span(2, {C: "c", P + "p": 1, M + "m": 2, semconv.TAGS: ["t"], "k": "v\x00"}, parent=b"1"),
        span(3, {"plain": 1}),
        resource={"service.name": "s", semconv.CODE_FILE: "f\x00"},
    ).SerializeToString()
    handed_back = req(
        span(4, {C: "c", semconv.INPUTS: ["x", ""]}),
        span(5, {C: "c", M + "m": "s"}),
        span(6, {C: "c", "x": NAN}),
        span(7, {C: "c"}, [output_event()]),
    ).SerializeToString()
    truncated = good[:-3]
    bodies = [good, handed_back, truncated]

    def fail(aid: str) -> tuple[str, str | None]:
        if aid == "b":
            raise ValueError(aid)
        return ingest_rows._split_artifact_id(aid)

    def call(i: int) -> None:
        prepare_plain(bodies[i % 3], ingest_rows.dumps_sorted, ingest_rows._split_artifact_id)
        if i % 50 == 0:
            with pytest.raises(ValueError):
                prepare_plain(good, ingest_rows.dumps_sorted, fail)

    growth = traced_growth(call)
    # one leaked object per call would be >= 12,500 x 32 bytes = 400 kB in every interval
    assert min(growth) < 128 * 1024, f"traced memory growth per 12,500 calls: {growth}"
