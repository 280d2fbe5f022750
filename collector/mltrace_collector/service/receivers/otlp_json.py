"""OTLP/JSON encoding of trace messages, and ``google.rpc.Status`` error bodies.

OTLP/JSON is the proto3 JSON mapping with deviations (OTLP specification, "JSON Protobuf
Encoding"): ``traceId``/``spanId`` (and ``parentSpanId``, the span ID of the parent) are
case-insensitive **hex** strings, not base64; enums are integers; keys are lowerCamelCase;
receivers MUST ignore unknown fields; 64-bit integers may be decimal strings.
``google.protobuf.json_format`` does the mapping; this module only swaps the ID encoding,
by walking ``resourceSpans[].scopeSpans[].spans[]`` (and each span's ``links[]``).

Receivers are lenient where that loses nothing: enum names and snake_case keys, which the
specification tells senders not to use, are accepted as ``json_format`` accepts them.

Example::

    req = parse_otlp_json(b'{"resourceSpans": []}')
    body = to_otlp_json(ExportTraceServiceResponse())      # b"{}"
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["parse_otlp_json", "status_payload", "to_otlp_json"]

_HEX = re.compile(r"[0-9a-fA-F]*")
# ID fields and their byte length; both JSON spellings, since json_format accepts both.
_SPAN_IDS = {
    "traceId": 16,
    "trace_id": 16,
    "spanId": 8,
    "span_id": 8,
    "parentSpanId": 8,
    "parent_span_id": 8,
}
_LINK_IDS = {k: v for k, v in _SPAN_IDS.items() if "parent" not in k}


def _items(obj: Any, *keys: str) -> Iterator[Any]:
    """The elements of the first list found under ``keys`` in ``obj`` (none if absent)."""
    if not isinstance(obj, dict):
        return
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise ValueError(f"{key!r} must be a JSON array, got {type(value).__name__}")
        yield from value
        return


def _spans(root: Any) -> Iterator[tuple[str, dict[str, Any], dict[str, int]]]:
    """Every span and link object of a trace request, with its path and ID fields."""
    for r, rs in enumerate(_items(root, "resourceSpans", "resource_spans")):
        for s, ss in enumerate(_items(rs, "scopeSpans", "scope_spans")):
            for i, span in enumerate(_items(ss, "spans")):
                if not isinstance(span, dict):
                    continue  # json_format reports the type error with its own message
                path = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                yield path, span, _SPAN_IDS
                for j, link in enumerate(_items(span, "links")):
                    if isinstance(link, dict):
                        yield f"{path}.links[{j}]", link, _LINK_IDS


def _convert_ids(root: Any, convert: Callable[[str, str, int], str]) -> None:
    for path, obj, fields in _spans(root):
        for key, size in fields.items():
            value = obj.get(key)
            if value is not None:
                if not isinstance(value, str):
                    raise ValueError(f"{path}.{key} must be a hex string, got {value!r}")
                obj[key] = convert(f"{path}.{key}", value, size)


def _hex_to_b64(where: str, value: str, size: int) -> str:
    if not _HEX.fullmatch(value):
        raise ValueError(f"{where} is not a hex string: {value[:64]!r}")
    if len(value) not in (0, 2 * size):
        raise ValueError(
            f"{where} must be {2 * size} hex digits ({size} bytes), got {len(value)} digits"
        )
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


def _b64_to_hex(where: str, value: str, size: int) -> str:
    return base64.b64decode(value).hex()


def parse_otlp_json(body: bytes) -> ExportTraceServiceRequest:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest``; ``ValueError`` says what is wrong.

    Example::

        req = parse_otlp_json(b'{"resourceSpans":[{"scopeSpans":[{"spans":[{'
                              b'"traceId":"5B8EFFF798038103D269B633813FC60C",'
                              b'"spanId":"EEE19B7EC3C1B174","name":"train","kind":1}]}]}]}')
        assert req.resource_spans[0].scope_spans[0].spans[0].span_id.hex() == "eee19b7ec3c1b174"
    """
    try:
        root = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # json's C decoder recurses per level: a few hundred nested [/{
        raise ValueError(
            "body nests JSON arrays/objects too deeply to decode; OTLP attribute values "
            "nest a few levels, not hundreds"
        ) from None
    if not isinstance(root, dict):
        raise ValueError(f"OTLP/JSON body must be a JSON object, got {type(root).__name__}")
    _convert_ids(root, _hex_to_b64)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(root, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise ValueError(f"body is not a valid OTLP/JSON trace request: {exc}") from None
    except Exception as exc:  # upb raises SystemError on a lone surrogate in a key or enum
        if _has_lone_surrogate(body):
            raise ValueError(
                "body holds a lone UTF-16 surrogate escape (such as \\ud800) outside a "
                "pair: JSON strings and keys must be valid Unicode"
            ) from None
        raise ValueError(f"body is not a valid OTLP/JSON trace request: {exc!r}") from None
    return request


def _has_lone_surrogate(body: bytes) -> bool:
    """Whether the JSON text decodes to a string with an unpaired surrogate."""
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False
    return False


def to_otlp_json(message: Message) -> bytes:
    """Encode ``message`` as OTLP/JSON: integer enums, camelCase keys, hex trace/span IDs.

    Example::

        body = to_otlp_json(ExportTraceServiceResponse(
            partial_success=ExportTracePartialSuccess(rejected_spans=2, error_message="bad")))
        # b'{"partialSuccess":{"rejectedSpans":"2","errorMessage":"bad"}}'
    """
    obj = json_format.MessageToDict(message, use_integers_for_enums=True)
    if isinstance(message, ExportTraceServiceRequest):
        _convert_ids(obj, _b64_to_hex)
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def status_payload(code: int, message: str, *, as_json: bool, field: str | None = None) -> bytes:
    """A ``google.rpc.Status`` error body (OTLP/HTTP "Failures"), protobuf or JSON.

    ``code`` is the gRPC code number (the spec lets clients ignore it). With ``field``, a
    ``google.rpc.BadRequest`` detail names the offending part, as "Bad Data" recommends.

    Example::

        status_payload(3, "body is not valid JSON", as_json=True, field="body")
    """
    status = status_pb2.Status(code=code, message=message)
    if field is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    if as_json:
        return json.dumps(json_format.MessageToDict(status), separators=(",", ":")).encode()
    encoded: bytes = status.SerializeToString()
    return encoded
