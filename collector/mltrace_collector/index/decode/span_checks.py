"""Limits and errors of one span's attributes, shared by the run decoder (``processor``)
and the start-record decoder (``run_starts``) without either importing the other.

Example::

    run_id = _string(attrs, semconv.RUN_ID, MAX_RUN_ID_LENGTH)  # SpanRejected if bad
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_RUN_ID_LENGTH = 256
MAX_COMPONENT_LENGTH = 512


class SpanRejected(ValueError):
    """A component-run span that cannot be indexed; the message names the problem."""


def _string(attrs: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = attrs.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SpanRejected(f"{key} must be a non-empty string, got {type(value).__name__}")
    if "\x00" in value:
        raise SpanRejected(f"{key} contains a NUL character")
    if len(value) > limit:
        raise SpanRejected(f"{key} is {len(value)} characters long; the limit is {limit}")
    return value
