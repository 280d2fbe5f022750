"""OTLP attribute values -> plain Python, as the lineage processor stores them.

``AnyValue`` becomes str/bool/int/float, a list (arrays), a dict (kvlists) or hex (bytes);
:func:`_span_attributes` does the same for a span's attributes in one pass and says
whether the result is already JSON-safe, so that :func:`_json_safe` (non-finite floats
become strings) need not walk it again. :mod:`mltrace_collector.index.decode.processor`
uses these to turn spans into ``RunRecord``s and re-exports them.

Example::

    attrs = attributes(resource_spans.resource.attributes)   # {"service.name": "train", ...}
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def any_value(value: AnyValue) -> Any:
    """OTLP ``AnyValue`` -> plain Python (lists for arrays, dicts for kvlists, hex for bytes)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    return None


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _span_attributes(kvs: Iterable[KeyValue]) -> tuple[dict[str, Any], bool]:
    """``attributes(kvs)`` in one pass with the common kinds inlined, and whether every
    value is JSON-safe as is (no non-finite double, no map, no non-string array), so that
    ``_json_safe`` need not walk them again. Runs once per span: the decode hot path."""
    attrs: dict[str, Any] = {}
    safe = True
    for kv in kvs:
        value = kv.value
        which = value.WhichOneof("value")
        if which == "string_value":
            attrs[kv.key] = value.string_value
        elif which == "int_value":
            attrs[kv.key] = value.int_value
        elif which == "array_value":
            items = value.array_value.values
            strings = []
            for item in items:
                if item.WhichOneof("value") != "string_value":
                    strings = [any_value(v) for v in items]
                    safe = False
                    break
                strings.append(item.string_value)
            attrs[kv.key] = strings
        elif which == "double_value":
            number = value.double_value
            attrs[kv.key] = number
            safe = safe and math.isfinite(number)
        elif which == "bool_value":
            attrs[kv.key] = value.bool_value
        else:
            attrs[kv.key] = any_value(value)
            safe = False
    return attrs, safe


def _json_safe(value: Any) -> Any:
    kind = type(value)  # fast paths first: this runs over every attribute of every span
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is list and all(type(v) is str for v in value):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _text(value: str) -> str:
    """Free text as stored: NUL (which PostgreSQL text cannot hold) becomes U+FFFD."""
    return value.replace("\x00", "\ufffd")
