"""Store rows built in C (``_otlp_fast.prepare_plain``) against the pure-Python path
(``processor.decode_request`` with ``walk_spans = None``, then ``ingest_rows.prepare``).

Span by span: every span C built rows for must be one the processor accepts as a run, and
its run row, I/O rows and artifacts must equal ``ingest_rows._run_row`` / ``ingest_rows.prepare`` of
that run exactly (types too; floats by their bits); a span C counted must be a non-run span;
everything else must be handed back. Request by request: ``decode_and_prepare(...,
keep_runs=False)`` (fast_rows.py) must give the same rows, rejections and counts as the
pure path. Corpus: the requests of tests/test_processor_fast.py (hand-built, bad input of
every kind, SDK spans, non-canonical wire bytes, OTLP/JSON, its random mix), the random
corpus of tests/test_otlp_fast.py, and the cases of tests/test_otlp_fast_rows_cases.py
(unicode, escapes, huge ints, -0.0, resource merges, duplicate keys, tags, code attributes
on the resource, status codes). The checks themselves are in tests/support_otlp_fast_rows.py.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from benchmarks.bench_ingest import encode_batches
from mltrace_collector.index.decode import fast_rows, processor
from mltrace_collector.index.store import ingest_rows
from mltrace_collector.service.receivers.otlp_json import parse_otlp_json
from otel_mltrace import semconv
from tests.leakcheck import traced_growth
from tests.otlp_builders import kvs
from tests.support_decode_cases import NAMED
from tests.support_otlp_fast_rows import (
    INF,
    NAN,
    C,
    M,
    P,
    Stats,
    c_rows,
    check_decode_and_prepare,
    check_spans,
    corpus_check,
)
from tests.support_processor_fast import (
    HOSTILE,
    _all_spans,
    _sdk_request,
    output_event,
    random_span,
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
