"""Malformed OTLP/JSON of any shape is a 400 naming the problem, never a 500.

Two shapes used to escape as 500s: nesting a few hundred levels deep (``json``'s decoder
raised RecursionError in the receiver's thread) and a lone UTF-16 surrogate escape in an
object key (upb raised SystemError). A seeded mutation run over a valid body checks that
the parser raises nothing but ``ValueError`` for whatever else a client may send.
"""

from __future__ import annotations

import json
import random

import httpx
import pytest

from mltrace_collector.service.collector import Collector
from mltrace_collector.service.receivers.otlp_json import parse_otlp_json

JSON = {"Content-Type": "application/json"}
IDS = '"traceId":"' + "ab" * 16 + '","spanId":"' + "cd" * 8 + '"'


def _span_body(span_fields: str) -> bytes:
    return ('{"resourceSpans":[{"scopeSpans":[{"spans":[{' + span_fields + "}]}]}]}").encode()


def _nested(kind: str, depth: int) -> bytes:
    value = '{"stringValue":"x"}'
    for _ in range(depth):
        if kind == "kvlist":
            value = '{"kvlistValue":{"values":[{"key":"a","value":' + value + "}]}}"
        else:
            value = '{"arrayValue":{"values":[' + value + "]}}"
    return _span_body(IDS + ',"name":"n","attributes":[{"key":"k","value":' + value + "}]")


MALFORMED = {
    "300-deep kvlist": _nested("kvlist", 300),
    "300-deep array": _nested("array", 300),
    "100k-deep objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "lone surrogate in an attribute key": _span_body(
        IDS + ',"attributes":[{"key":"\\ud800k","value":{"stringValue":"v"}}]'
    ),
    "lone surrogate in an object key": b'{"resourceSpans\\ud800":[]}',
    "lone surrogate in a span field name": _span_body(IDS + ',"x\\udc00":1'),
    "lone surrogate as an enum": _span_body(IDS + ',"kind":"\\ud800"'),
    "time out of range": _span_body(IDS + ',"startTimeUnixNano":"99999999999999999999999"'),
    "time infinite": _span_body(IDS + ',"startTimeUnixNano":1e400'),
    "NaN trace ID": _span_body('"traceId":NaN'),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_parser_names_the_problem(name: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_otlp_json(MALFORMED[name])
    assert str(caught.value)
    if "surrogate" in name:
        assert "surrogate" in str(caught.value) or "hex" in str(caught.value)
    if "deep" in name:
        assert "deep" in str(caught.value) or "parse" in str(caught.value)


def test_collector_answers_400_for_every_malformed_body(collector: Collector) -> None:
    assert collector.http is not None
    url = f"http://127.0.0.1:{collector.http.port}/v1/traces"
    with httpx.Client(timeout=30) as http:
        for name, body in MALFORMED.items():
            got = http.post(url, content=body, headers=JSON)
            assert got.status_code == 400, (name, got.status_code, got.text[:200])
            assert json.loads(got.content)["message"], name


_MUTATIONS = ['\\ud800', '\\udfff', "[", "]", "{", "}", '"', ",", ":", "null", "1e999",
              "-1", "18446744073709551616", "true", '""', "[[[[", "\\u0000", "é"]  # fmt: skip


def test_mutated_bodies_raise_only_value_error() -> None:
    """2,000 seeded mutations of a valid body (inserted, replaced and dropped tokens):
    each parses or raises ValueError; anything else would be a 500."""
    valid = _span_body(
        IDS + ',"name":"n","kind":1,"startTimeUnixNano":"5","endTimeUnixNano":"6",'
        '"attributes":[{"key":"mltrace.component","value":{"stringValue":"c"}},'
        '{"key":"l","value":{"arrayValue":{"values":[{"intValue":"3"}]}}}],'
        '"status":{"code":2,"message":"m"},"links":[{' + IDS + "}]"
    ).decode()
    rng = random.Random(11)
    outcomes = {"parsed": 0, "rejected": 0}
    for _ in range(2000):
        text = valid
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text))
            cut = rng.choice([0, 0, 1, 3])
            text = text[:at] + rng.choice(_MUTATIONS) + text[at + cut :]
        try:
            parse_otlp_json(text.encode("utf-8", "surrogatepass"))
            outcomes["parsed"] += 1
        except ValueError:
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 1000 and outcomes["parsed"] > 0, outcomes
