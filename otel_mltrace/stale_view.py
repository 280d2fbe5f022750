"""``stale``'s rows kept short on screen: at most ``limit`` rows, then what was left out.

A big fan-out below one stale upstream run makes ``stale`` list one row per live stale run
(20,000 rows). The ``otel-mltrace stale`` table (``--limit``) and the Python API's printed
``Index.stale()`` show the first ``limit`` rows (0: all), then a line saying how many more
there are and how to list them, and a per-component count of the stale runs; the data
itself (``--format json``, ``Records.rows``, the HTTP API) stays complete.

Example::

    shown, notes = shorten(rows, limit=50)
    # notes: ["… and 19,950 more stale runs (use --limit 0 to list all)",
    #         "stale runs by component: score 20,000"]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

MAX_COMPONENTS = 10
"""Components named in the summary line (those with most stale runs), then a count."""


def shorten(
    rows: Sequence[dict[str, Any]], limit: int, hint: str = "use --limit 0 to list all"
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows to show (the first ``limit``; 0 = all) and the lines to print below them
    (``hint``: how to see the rest)."""
    shown = list(rows) if limit == 0 else list(rows[:limit])
    notes: list[str] = []
    hidden = rows[len(shown) :]
    if hidden:
        n_stale = sum(1 for r in hidden if r["stale"])
        what = (
            f"{n_stale:,} more stale runs"
            if n_stale == len(hidden)
            else f"{len(hidden):,} more runs ({n_stale:,} stale)"
        )
        notes.append(f"… and {what} ({hint})")
    counts = Counter(r["component"] for r in rows if r["stale"])
    if counts and (hidden or len(counts) > 1):
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        named = ", ".join(f"{comp} {n:,}" for comp, n in top[:MAX_COMPONENTS])
        rest = len(top) - MAX_COMPONENTS
        more = f", and {rest:,} more components" if rest > 0 else ""
        total = sum(counts.values())
        notes.append(f"{total:,} stale runs by component: {named}{more}")
    return shown, notes
