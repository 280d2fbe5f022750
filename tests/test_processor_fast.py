"""``decode_request`` with the C walk (``_otlp_fast.decode_spans``) against the pure-Python
path (``processor.walk_spans = None``): identical ``DecodedBatch`` on every request.

Corpus: the hand-built requests of tests/otlp_builders.py and tests/test_processor.py, bad
input of every kind the processor names, spans the SDK really emits (events: outputs,
records, checks; record chunk spans), several resources (one the C walk leaves to Python),
non-canonical wire encodings, OTLP/JSON bodies, and a seeded random mix of all of these.
Batches are compared field by field with NaN made comparable and attribute key order ignored
(values and their types are not).

The corpus is in tests/support_decode_cases.py, support_wire_cases.py and
support_random_requests.py; the comparison and the builders in support_processor_fast.py.
"""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mltrace_collector.index.decode import processor
from mltrace_collector.service.receivers.otlp_json import parse_otlp_json, to_otlp_json
from otel_mltrace import semconv
from tests.otlp_builders import plain_span, run_span
from tests.otlp_builders import request as builder_request
from tests.support_decode_cases import NAMED, _resource_cases
from tests.support_processor_fast import FAST, C, Paths, _all_spans, _sdk_request, req, span
from tests.support_random_requests import _random_request
from tests.support_wire_cases import _json_bodies, _wire_cases

_SKIP_REASON = (
    "C extension mltrace_collector.index.decode._otlp_fast is not built, "
    "so processor.walk_spans is None "
    "and there is no fast path to compare (scripts/bootstrap.sh builds it in place)"
)
if FAST is None:  # pragma: no cover - a build without a C compiler
    print(f"tests/test_processor_fast.py skipped: {_SKIP_REASON}")
pytestmark = pytest.mark.skipif(FAST is None, reason=_SKIP_REASON)


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Paths:
    return Paths(monkeypatch)


@pytest.fixture(scope="module")
def sdk_request() -> ExportTraceServiceRequest:
    return _sdk_request()


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
