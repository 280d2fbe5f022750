"""Encoded sample text per group of series, so ``/metrics`` re-encodes only what changed.

The store-derived families are long (samples for every (component, output) pair and every
component), but a scrape after a few new runs changes only the pairs and components those
runs touched. Each *group* (one pair's samples across its families, one component's, or a
small family as a whole) is encoded on its own with the scrape format's own
``prometheus_client`` encoder, its ``# HELP``/``# TYPE``/``# UNIT`` lines stripped, and the
sample text cached per format under a *stamp* that changes whenever the group's state does.
A render then writes, family by family, the header followed by every group's cached
samples: the same bytes as encoding the whole families at once (tested), for the cost of
encoding the changed groups only.

Example::

    cache = GroupCache()
    bodies = cache.bodies(fmt, encoder, ("pair", key), state.version, lambda: families(key))
    heads = cache.headers(fmt, encoder, lambda: families(None))
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from prometheus_client.metrics_core import Metric

from mltrace_collector.service.exporters.families import Families

Encoder = Callable[[Families], bytes]
Build = Callable[[], Sequence[Metric]]
MAX_FORMATS = 4
"""Formats (content types) cached at once; a fifth one resets the cache."""
_EOF = "# EOF"


def split_families(text: str, expected: int) -> list[tuple[str, str]]:
    """``(header lines, sample lines)`` of each family in an exposition, EOF dropped.

    Sample lines never start with ``#`` (label values escape newlines), so every ``# HELP``
    starts a family. ``ValueError`` unless there are exactly ``expected`` families (e.g.
    the classic format's extra ``_created`` sections, which our families never have).
    """
    out: list[tuple[str, str]] = []
    head: list[str] = []
    body: list[str] = []
    for line in text.split("\n")[:-1]:  # not splitlines(): label values may hold \x1c etc.
        if line.startswith("# HELP "):
            if head:
                out.append(("".join(head), "".join(body)))
            head, body = [line + "\n"], []
        elif line == _EOF:
            continue
        elif line.startswith("# "):
            head.append(line + "\n")
        else:
            body.append(line + "\n")
    if head:
        out.append(("".join(head), "".join(body)))
    if len(out) != expected:
        raise ValueError(f"encoder produced {len(out)} family sections, expected {expected}")
    return out


class GroupCache:
    """Per format: ``group -> (stamp, sample text of each of its families)``."""

    def __init__(self) -> None:
        self._bodies: dict[str, dict[Hashable, tuple[Hashable, list[str]]]] = {}
        self._headers: dict[tuple[str, Hashable], list[str]] = {}

    def _format(self, fmt: str) -> dict[Hashable, tuple[Hashable, list[str]]]:
        cache = self._bodies.get(fmt)
        if cache is None:
            if len(self._bodies) >= MAX_FORMATS:
                self._bodies.clear()
            cache = self._bodies[fmt] = {}
        return cache

    def bodies(
        self, fmt: str, encoder: Encoder, group: Hashable, stamp: Hashable, build: Build
    ) -> list[str]:
        """Sample text of each family ``build()`` returns for ``group``, re-encoded only
        when ``stamp`` differs from the cached one."""
        cache = self._format(fmt)
        hit = cache.get(group)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        families = list(build())
        text = encoder(Families(families)).decode("utf-8")
        bodies = [body for _, body in split_families(text, len(families))]
        cache[group] = (stamp, bodies)
        return bodies

    def forget(self, fmt: str, group: Hashable, stamp: Hashable, n: int) -> list[str]:
        """Cache ``n`` empty bodies for a group that failed to build (logged once per stamp)."""
        bodies = [""] * n
        self._format(fmt)[group] = (stamp, bodies)
        return bodies

    def text(
        self, fmt: str, encoder: Encoder, group: Hashable, stamp: Hashable, build: Build
    ) -> str:
        """The whole text (headers and samples) of the families ``build()`` returns, for
        small families kept in one group; re-encoded only when ``stamp`` changes."""
        cache = self._format(fmt)
        hit = cache.get(group)
        if hit is not None and hit[0] == stamp:
            return hit[1][0]
        families = list(build())
        text = encoder(Families(families)).decode("utf-8")
        whole = "".join(h + b for h, b in split_families(text, len(families)))
        cache[group] = (stamp, [whole])
        return whole

    def headers(self, fmt: str, encoder: Encoder, kind: Hashable, build: Build) -> list[str]:
        """HELP/TYPE/UNIT lines of each family ``build()`` returns (built empty)."""
        key = (fmt, kind)
        heads = self._headers.get(key)
        if heads is None:
            families = list(build())
            text = encoder(Families(families)).decode("utf-8")
            heads = [head for head, _ in split_families(text, len(families))]
            self._headers[key] = heads
        return heads
