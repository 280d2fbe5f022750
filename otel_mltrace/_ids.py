"""Run IDs: UUIDv7 (RFC 9562), time-ordered so that IDs sort by start time."""

from __future__ import annotations

import os
import time


def uuid7() -> str:
    """A new UUIDv7 string: 48-bit Unix milliseconds, version 7, 74 random bits.

    Built as text directly (this runs once per component run, on the hot path).

    >>> u = uuid7(); (len(u), u[14], u[19] in "89ab")
    (36, '7', True)
    """
    ms = (time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF
    rand = os.urandom(10)
    rand_a = ((rand[0] << 8) | rand[1]) & 0x0FFF
    rand_b = (int.from_bytes(rand[2:], "big") & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
    b = f"{rand_b:016x}"
    return f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7{rand_a:03x}-{b[:4]}-{b[4:]}"
