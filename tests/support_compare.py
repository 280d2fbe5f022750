"""Exact comparison of decoded values for the tests of the C reader against Python.

``==`` takes ``True`` for ``1`` and ``1.0``, and ``nan`` for nothing equal: :func:`exact`
turns a value into a form that compares equal only type for type and bit for bit.

Example::

    assert exact(decode_spans(body)) == exact(reference(body))
"""

from __future__ import annotations

import struct
from typing import Any


def exact(x: Any) -> Any:
    """Exactly comparable: type-tagged (True is not 1, tuple is not list), floats by bits,
    dicts in order."""
    kind = type(x)
    if kind is float:
        return ("float", struct.pack("<d", x))
    if kind is dict:
        return ("dict", tuple((exact(k), exact(v)) for k, v in x.items()))
    if kind is list or kind is tuple:
        return (kind.__name__, tuple(exact(v) for v in x))
    return (kind.__name__, x)
