"""Leak check for C extension calls: Python memory that survives repeated calls.

tracemalloc sees every object an extension allocates through the Python allocators. RSS
is not the measure: in a long test session it also moves when the allocator grows once.

Example::

    growth = traced_growth(lambda i: decode_spans(bodies[i % 3]))
    assert min(growth) < 128 * 1024
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable


def traced_growth(
    call: Callable[[int], object], intervals: int = 4, per: int = 12_500
) -> list[int]:
    """Bytes of traced memory left after each of ``intervals`` rounds of ``per`` calls
    (``call(i)``, after a warm-up). A leak of one object per call leaves >= 32 x ``per``
    bytes in *every* round, so callers check the smallest round: a one-off table resize,
    or other threads of the test process (servers and delivery workers of earlier tests)
    allocating during a round, show in some rounds only."""
    tracemalloc.start()
    try:
        for i in range(2_000):  # warm caches (interned keys, lru caches, allocator pools)
            call(i)
        growth = []
        for _ in range(intervals):
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            for i in range(per):
                call(i)
            gc.collect()
            growth.append(tracemalloc.get_traced_memory()[0] - before)
        return growth
    finally:
        tracemalloc.stop()
