"""Differential fuzzing of the C reader (``mltrace_collector.index.decode._otlp_fast``) against the
pure-Python path, shared by tests/test_otlp_fast_fuzz.py (bounded, in the test command) and
scripts/fuzz_otlp_fast.sh (longer, the extension built with AddressSanitizer + UBSan).

Inputs: ``ExportTraceServiceRequest`` messages generated with hypothesis (run spans the C
rows accept, and spans with every kind of value, event and status they hand back), then
mutated: on the protobuf structure (fields duplicated, dropped, swapped, re-typed, payloads
replaced; lengths fixed up, so upb still parses most) and on raw bytes (bit flips,
insertions, deletions, splices of other requests, truncations).

Oracle (``check``), per input:

* bytes upb rejects never reach the C reader in the collector (the receivers parse first);
  the C functions must still return without crashing (the sanitizers watch memory);
* otherwise ``decode_spans`` is None or equals the reference walk of the upb message, and
  ``prepare_plain`` is None exactly when ``decode_spans`` is;
* ``processor.decode_request`` gives the same batch with and without the C walk, and the
  decode worker's ``_decode_bytes`` (C rows) the same batch and rows as the pure path —
  equal results, or the same exception.

Run longer by hand::

    python -m tests.otlp_fuzz --seconds 600 --seed 1   # rounds of 100 requests x 21
"""

from __future__ import annotations

import argparse
import ctypes
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otel_mltrace import semconv
from tests.otlp_builders import kvs, varint

# -- protobuf structure ---------------------------------------------------------------------
Field = tuple[int, int, bytes]  # field number, wire type, payload (LEN: the content)
_WIDTH = {1: 8, 5: 4}


def _read_varint(data: bytes, at: int) -> tuple[int, int] | None:
    shift = value = 0
    while at < len(data) and shift < 70:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at
    return None


def split_fields(data: bytes) -> list[Field] | None:
    """The fields of one message, or None when ``data`` is not a plain message (groups,
    truncation, field number 0)."""
    fields: list[Field] = []
    at = 0
    while at < len(data):
        got = _read_varint(data, at)
        if got is None:
            return None
        key, at = got
        number, wire_type = key >> 3, key & 7
        if number == 0:
            return None
        if wire_type == 0:
            got = _read_varint(data, at)
            if got is None:
                return None
            payload, at = data[at : got[1]], got[1]
        elif wire_type in _WIDTH:
            payload, at = data[at : at + _WIDTH[wire_type]], at + _WIDTH[wire_type]
        elif wire_type == 2:
            got = _read_varint(data, at)
            if got is None:
                return None
            length, at = got
            payload, at = data[at : at + length], at + length
        else:
            return None
        if at > len(data):
            return None
        fields.append((number, wire_type, payload))
    return fields


def join_fields(fields: Sequence[Field]) -> bytes:
    out = bytearray()
    for number, wire_type, payload in fields:
        out += varint(number << 3 | wire_type)
        if wire_type == 2:
            out += varint(len(payload))
        out += payload
    return bytes(out)


_INTERESTING_INTS = [0, 1, 2, 3, 0x7F, 0x80, 2**31 - 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1]
_INTERESTING_BYTES = [
    b"",
    b"\x00",
    b"\xff",
    b"\xed\xa0\x80",  # a surrogate: invalid UTF-8
    b"\xc0\x80",  # overlong NUL
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    "é😀".encode(),
    b"\x0a\x00",  # an empty sub-message
]


def _payload_for(rng: random.Random, wire_type: int) -> bytes:
    if wire_type == 0:
        return varint(rng.choice(_INTERESTING_INTS))
    if wire_type in _WIDTH:
        return rng.randbytes(_WIDTH[wire_type])
    return rng.choice(_INTERESTING_BYTES + [rng.randbytes(rng.randint(0, 12))])


def tree_mutate(rng: random.Random, data: bytes, depth: int = 0) -> bytes:
    """One structural change somewhere in the message tree; lengths stay consistent."""
    fields = split_fields(data)
    if not fields:
        return data + join_fields([(rng.randint(1, 20), 2, _payload_for(rng, 2))])
    i = rng.randrange(len(fields))
    number, wire_type, payload = fields[i]
    if wire_type == 2 and depth < 10 and rng.random() < 0.6 and split_fields(payload):
        fields[i] = (number, wire_type, tree_mutate(rng, payload, depth + 1))
        return join_fields(fields)
    op = rng.randrange(8)
    if op == 0:  # the same field twice: protobuf merges (messages) or last-wins (scalars)
        fields.insert(rng.randrange(len(fields) + 1), fields[i])
    elif op == 1:
        del fields[i]
    elif op == 2:
        j = rng.randrange(len(fields))
        fields[i], fields[j] = fields[j], fields[i]
    elif op == 3:  # another wire type for a known field number
        other = rng.choice([t for t in (0, 1, 2, 5) if t != wire_type])
        fields[i] = (number, other, _payload_for(rng, other))
    elif op == 4:
        fields[i] = (number, wire_type, _payload_for(rng, wire_type))
    elif op == 5:  # a neighbouring or unknown field number
        fields[i] = (
            rng.choice([number + 1, max(1, number - 1), 99, 2**29 - 1]),
            wire_type,
            payload,
        )
    elif op == 6:  # a field copied from elsewhere in the message
        fields.insert(rng.randrange(len(fields) + 1), rng.choice(fields))
    else:  # a oneof sibling: AnyValue members are fields 1-8
        fields.insert(i + 1, (rng.randint(1, 8), wire_type, payload))
    return join_fields(fields)


def byte_mutate(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    """A few raw byte changes: most break the protobuf framing, which is the point."""
    body = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        at = rng.randrange(len(body) + 1)
        op = rng.randrange(7)
        if op == 0 and body:
            body[min(at, len(body) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and body:
            body[min(at, len(body) - 1)] = rng.choice([0, 1, 0x0A, 0x12, 0x7F, 0x80, 0xFF])
        elif op == 2:
            body[at:at] = rng.randbytes(rng.randint(1, 4))
        elif op == 3:
            del body[at : at + rng.randint(1, 8)]
        elif op == 4:
            body[at:at] = body[at : at + rng.randint(1, 32)]
        elif op == 5 and donors:
            donor = rng.choice(donors)
            start = rng.randrange(len(donor) + 1)
            body[at:at] = donor[start : start + rng.randint(1, 64)]
        else:
            del body[at:]
    return bytes(body)


def mutate(rng: random.Random, data: bytes, donors: Sequence[bytes]) -> bytes:
    if rng.random() < 0.7:
        for _ in range(rng.choice([1, 1, 2, 3])):
            data = tree_mutate(rng, data)
        return data
    return byte_mutate(rng, data, donors)


# -- generation -----------------------------------------------------------------------------
ARTIFACTS = [
    "s3://b/x.parquet@sha256:aa",
    "bq://p.d.t@v:3",
    "file:///é/😀.csv",
    "mem://a@",
    "s3://user@host/k",
    "",
]
KEYS = [
    semconv.COMPONENT,
    semconv.RUN_ID,
    semconv.INPUTS,
    semconv.OUTPUTS,
    semconv.TAGS,
    semconv.RECORDS_RUN_ID,
    semconv.SERVICE_NAME,
    semconv.VCS_REVISION,
    semconv.CODE_FUNCTION,
    semconv.PARAM_PREFIX + "lr",
    semconv.METRIC_PREFIX + "acc",
    semconv.PARAM_PREFIX,
    "resource.service.name",
    "ü😀",
    "",
]
_text = st.text(st.characters(codec="utf-8"), max_size=12)
_scalars = st.one_of(
    _text,
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(ARTIFACTS),
)
_values: st.SearchStrategy[Any] = st.recursive(
    _scalars | st.binary(max_size=4) | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=2),
    max_leaves=6,
)
_keys = st.sampled_from(KEYS) | _text
_random_attrs = st.lists(st.tuples(_keys, _values), max_size=6)


@st.composite
def run_attrs(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Attributes of a component run, mostly of the plain kind the C rows accept."""
    attrs: list[tuple[str, Any]] = [(semconv.COMPONENT, draw(st.sampled_from(["train", "é"])))]
    if draw(st.booleans()):
        attrs.append((semconv.RUN_ID, draw(st.sampled_from(["run-1", "run-2"]) | _text)))
    for key in (semconv.INPUTS, semconv.OUTPUTS, semconv.TAGS):
        if draw(st.booleans()):
            attrs.append((key, draw(st.lists(st.sampled_from(ARTIFACTS) | _text, max_size=3))))
    attrs += draw(st.lists(st.tuples(st.sampled_from(KEYS[8:]), _scalars), max_size=3))
    if draw(st.integers(0, 9)) == 0:  # now and then anything at all
        attrs += draw(_random_attrs)
    return draw(st.permutations(attrs))


def _id(size: int) -> st.SearchStrategy[bytes]:
    """Mostly a valid ID (hypothesis draws small numbers first), now and then any bytes."""
    return st.integers(0, 9).flatmap(
        lambda n: st.binary(min_size=size, max_size=size) if n < 8 else st.binary(max_size=17)
    )


@st.composite
def spans(draw: st.DrawFn) -> Span:
    attrs = draw(_random_attrs if draw(st.integers(0, 3)) == 3 else run_attrs())
    span = Span(
        trace_id=draw(_id(16)),
        span_id=draw(_id(8)),
        parent_span_id=draw(st.sampled_from([b"", b"\x04" * 8])),
        name=draw(_text),
        start_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
        end_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
        attributes=kvs(attrs),
    )
    if draw(st.booleans()):
        code = draw(st.integers(-(2**31), 2**31 - 1) | st.sampled_from([0, 1, 2]))
        span.status.CopyFrom(Status(code=code, message=draw(_text)))  # type: ignore[arg-type]
    if draw(st.integers(0, 4)) == 0:
        name = draw(
            st.sampled_from([semconv.OUTPUT_EVENT, semconv.RECORDS_EVENT, semconv.CHECK_EVENT])
        )
        span.events.add(name=name).attributes.extend(kvs(draw(_random_attrs)))
    if draw(st.integers(0, 9)) == 0:
        span.links.add(trace_id=b"\x05" * 16, span_id=b"\x06" * 8)
    return span


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    """One ``ExportTraceServiceRequest``: 1-3 resources, 0-2 scopes each, 1-4 spans each."""
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 3))):
        rs = request.resource_spans.add()
        if draw(st.integers(0, 4)) < 4:  # mostly a plain resource (hypothesis favours 0)
            resource = [(semconv.SERVICE_NAME, "svc")]
            resource += draw(st.lists(st.tuples(st.sampled_from(KEYS[6:]), _scalars), max_size=2))
            rs.resource.attributes.extend(kvs(resource))
        elif draw(st.booleans()):
            rs.resource.attributes.extend(kvs(draw(_random_attrs)))
        for _ in range(draw(st.integers(0, 2))):
            scope = rs.scope_spans.add()
            scope.scope.name = "fuzz"
            scope.spans.extend(draw(st.lists(spans(), min_size=1, max_size=4)))
    return request


# -- the oracle -----------------------------------------------------------------------------
@dataclass
class Stats:
    inputs: int = 0
    upb_rejected: int = 0  # not protobuf: only "no crash" is checked
    c_declined: int = 0  # decode_spans None: the pure path takes the request
    c_compared: int = 0  # decode_spans answered and equalled the reference
    c_rows: int = 0  # the worker used C-built rows (prepare_plain) for the request

    def line(self) -> str:
        return (
            f"{self.inputs} inputs: {self.upb_rejected} rejected by upb (no crash), "
            f"{self.c_declined} left to the pure path by C, {self.c_compared} C walks equal "
            f"to the reference, {self.c_rows} with C-built store rows equal to the pure path"
        )


def _outcome(call: Callable[[], Any], form: Callable[[Any], Any]) -> Any:
    try:
        return ("ok", form(call()))
    except Exception as exc:  # equal rejections: the same exception on both paths
        return ("raised", type(exc).__name__, str(exc))


def _exact_buffer(raw: bytes) -> memoryview:
    """``raw`` in a buffer of exactly its size (bytes objects carry a trailing NUL), so
    that AddressSanitizer sees a one-byte over-read."""
    return memoryview((ctypes.c_char * len(raw)).from_buffer_copy(raw)).cast("B")


def check(raw: bytes, stats: Stats) -> None:
    """The differential oracle of the module docstring; AssertionError names the input."""
    from google.protobuf.message import DecodeError

    from mltrace_collector.index.decode import processor
    from mltrace_collector.index.decode._otlp_fast import decode_spans, prepare_plain
    from mltrace_collector.index.store import ingest_rows
    from mltrace_collector.service.ingest import decode_workers
    from tests import support_compare
    from tests.support_otlp_fast import reference
    from tests.support_otlp_fast_rows import comparable, pure
    from tests.support_processor_fast import canonical

    stats.inputs += 1
    exact = _exact_buffer(raw)
    walked = decode_spans(exact)
    rows = prepare_plain(exact, ingest_rows.dumps_sorted, ingest_rows._split_artifact_id)
    try:
        request = ExportTraceServiceRequest.FromString(raw)
    except DecodeError:
        stats.upb_rejected += 1
        return
    assert (rows is None) == (walked is None), f"prepare_plain and decode_spans differ: {raw!r}"
    if walked is None:
        stats.c_declined += 1
    else:
        same = support_compare.exact(walked) == support_compare.exact(reference(raw))
        assert same, f"C walk != reference: {raw!r}"
        stats.c_compared += 1

    fast_walk = processor.walk_spans
    processor.walk_spans = None
    try:
        want = _outcome(lambda: processor.decode_request(request, raw), canonical)
        want_rows = _outcome(lambda: pure(request, raw), comparable)
    finally:
        processor.walk_spans = fast_walk
    got = _outcome(lambda: processor.decode_request(request, raw), canonical)
    assert got == want, f"decode_request differs with the C walk: {raw!r}"
    got_rows = _outcome(lambda: decode_workers._decode_bytes(raw, keep_runs=False), comparable)
    assert got_rows == want_rows, f"the worker's C rows differ from the pure path: {raw!r}"
    if walked is not None and rows is not None and rows[0]:
        stats.c_rows += 1


def fuzz(examples: int, mutations: int, seed: int, stats: Stats | None = None) -> Stats:
    """``examples`` generated requests, each checked as is and ``mutations`` times mutated.
    Deterministic for a given ``seed``; counts go into ``stats`` (returned)."""
    stats = Stats() if stats is None else stats
    donors: list[bytes] = []
    rng = random.Random(seed)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(requests(), st.integers(0, 2**32))
    def one(request: ExportTraceServiceRequest, salt: int) -> None:
        raw = request.SerializeToString()
        check(raw, stats)
        local = random.Random(rng.getrandbits(32) ^ salt)
        for _ in range(mutations):
            check(mutate(local, raw, donors), stats)
        if raw:
            donors.append(raw)
            del donors[:-64]

    one()
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    parser.add_argument("--mutations", type=int, default=20, help="mutants per request")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--extension-dir",
        help="import mltrace_collector.index.decode._otlp_fast from this directory",
    )
    args = parser.parse_args(argv)
    if args.extension_dir:  # before anything imports the extension
        import mltrace_collector.index.decode as decode_package

        decode_package.__path__.insert(0, args.extension_dir)
    from mltrace_collector.index.decode import _otlp_fast

    print(f"C reader: {_otlp_fast.__file__}", flush=True)
    started = time.monotonic()
    stats = Stats()
    rounds = 0
    while time.monotonic() - started < args.seconds:  # rounds of 100 requests, seeds in turn
        fuzz(100, args.mutations, args.seed + rounds, stats)
        rounds += 1
        print(f"{time.monotonic() - started:.0f} s: {stats.line()}", flush=True)
    elapsed = time.monotonic() - started
    print(f"done in {elapsed:.0f} s, seeds {args.seed}..{args.seed + rounds - 1}: {stats.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
