"""The mergeable distribution summary of one output, and its span-event encoding.

:class:`OutputSummary` holds count/sum/min/max and a DDSketch-style :class:`Sketch` for a
numeric output, or its top-K value counts for a categorical one; summaries of the same
output merge without the raw values. It travels as one ``mltrace.output`` span event whose
attribute names all come from :mod:`otel_mltrace.semconv`; :func:`to_event_attributes` and
:func:`from_event_attributes` are that encoding (the receiving side validates every value).
Computing a summary from raw values is :func:`otel_mltrace.distributions.summarize`, which
also re-exports every name of this module.

Example::

    from otel_mltrace.output_summary import from_event_attributes, to_event_attributes
    s = from_event_attributes(to_event_attributes(summary))   # == summary
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_mltrace import semconv as sc
from otel_mltrace.sketch import Sketch, _collapse

DEFAULT_MAX_CATEGORIES = 100
MAX_WIRE_ITEMS = 100_000
"""Longest array :func:`from_event_attributes` accepts."""

KINDS = (sc.OUTPUT_KIND_NUMERIC, sc.OUTPUT_KIND_CATEGORICAL)
AttributeValue = str | bool | int | float | list[str] | list[int] | list[float]


def _top_k(counts: Mapping[str, int], k: int) -> tuple[dict[str, int], int]:
    """Most frequent ``k`` categories (ties by name) and the count of the rest."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[:k])
    return kept, sum(c for _, c in ranked[k:])


@dataclass
class OutputSummary:
    """Distribution summary of one named output; the payload of an ``mltrace.output`` event.

    ``count`` counts valid values; ``null_count`` None/NaN/NA; ``invalid_count`` values not
    readable as the kind (non-numbers, booleans and ±inf in a numeric output). ``sum``,
    ``min``, ``max`` and ``sketch`` are numeric-only; ``categories`` (top-K), ``other_count``
    and ``distinct_count`` categorical-only.

    >>> from otel_mltrace.distributions import summarize
    >>> a, b = summarize("y", ["a", "b"]), summarize("y", ["a", None])
    >>> m = a.merge(b); m.categories, m.null_ratio()
    ({'a': 2, 'b': 1}, 0.25)
    >>> OutputSummary.from_json(m.to_json()) == m
    True
    """

    name: str
    kind: str
    count: int = 0
    null_count: int = 0
    invalid_count: int = 0
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    sketch: Sketch | None = None
    categories: dict[str, int] = field(default_factory=dict)
    other_count: int = 0
    distinct_count: int | None = None

    def null_ratio(self) -> float:
        """Nulls over all observed values (valid + null + invalid); 0.0 when nothing seen."""
        total = self.count + self.null_count + self.invalid_count
        return self.null_count / total if total else 0.0

    def quantile(self, q: float) -> float | None:
        """Sketch quantile clamped to the exact ``[min, max]`` (numeric only)."""
        if self.sketch is None:
            raise ValueError(f"output {self.name!r} is {self.kind}: quantiles need numeric")
        v = self.sketch.quantile(q)
        if v is None or self.min is None or self.max is None:
            return v
        return min(max(v, self.min), self.max)

    def merge(
        self, other: OutputSummary, max_categories: int = DEFAULT_MAX_CATEGORIES
    ) -> OutputSummary:
        """Summary of both inputs. Sketches merge exactly; top-K categories are re-ranked
        (a category kept by one side but folded into ``other`` by the other is undercounted)
        and ``distinct_count`` is exact when neither side was truncated, else a lower bound.
        """
        if (other.name, other.kind) != (self.name, self.kind):
            raise ValueError(
                f"cannot merge {self.kind} output {self.name!r} with "
                f"{other.kind} output {other.name!r}"
            )
        out = OutputSummary(
            self.name,
            self.kind,
            self.count + other.count,
            self.null_count + other.null_count,
            self.invalid_count + other.invalid_count,
        )
        if self.sketch is not None and other.sketch is not None:
            out.sketch = self.sketch.merge(other.sketch)
            sums = [s for s in (self.sum, other.sum) if s is not None]
            out.sum = math.fsum(sums) if sums else None
            out.min = min((v for v in (self.min, other.min) if v is not None), default=None)
            out.max = max((v for v in (self.max, other.max) if v is not None), default=None)
        if self.kind == sc.OUTPUT_KIND_CATEGORICAL:
            union = Counter(self.categories)
            union.update(other.categories)
            out.categories, dropped = _top_k(union, max_categories)
            out.other_count = self.other_count + other.other_count + dropped
            seen = [len(union), self.distinct_count or 0, other.distinct_count or 0]
            exact = self.other_count == 0 and other.other_count == 0
            out.distinct_count = len(union) if exact else max(seen)
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (bucket indices as strings); exact inverse of :meth:`from_json`."""
        out: dict[str, Any] = {key: getattr(self, key) for key, _ in _SCALARS}
        out["categories"] = dict(self.categories)
        out["sketch"] = None
        if self.sketch is not None:
            out["sketch"] = {"gamma": self.sketch.gamma, "zero_count": self.sketch.zero_count}
            for key, store in (
                ("positive", self.sketch.positive),
                ("negative", self.sketch.negative),
            ):
                out["sketch"][key] = {str(k): v for k, v in sorted(store.items())}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputSummary:
        """Inverse of :meth:`to_json`; validated like :func:`from_event_attributes`
        (error messages name the corresponding wire attribute)."""
        attrs: dict[str, Any] = {}
        for key, attr in _SCALARS:
            if data.get(key) is not None:
                attrs[attr] = data[key]
        sk = data.get("sketch")
        if sk is not None:
            if not isinstance(sk, Mapping):
                raise ValueError(f"sketch: expected an object, got {type(sk).__name__}")
            attrs[sc.OUT_SKETCH_GAMMA] = sk.get("gamma")
            attrs[sc.OUT_SKETCH_ZERO] = sk.get("zero_count", 0)
            for key, idx_attr, cnt_attr in _STORES:
                store = sk.get(key) or {}
                try:
                    attrs[idx_attr] = [int(k) for k in store]
                except (TypeError, ValueError):
                    raise ValueError(f"sketch.{key}: keys must be integers") from None
                attrs[cnt_attr] = list(store.values())
        cats = data.get("categories") or {}
        if not isinstance(cats, Mapping):
            raise ValueError(f"categories: expected an object, got {type(cats).__name__}")
        attrs[sc.OUT_CATEGORIES] = list(cats)
        attrs[sc.OUT_CATEGORY_COUNTS] = list(cats.values())
        return from_event_attributes(attrs)


_SCALARS = (
    ("name", sc.OUT_NAME),
    ("kind", sc.OUT_KIND),
    ("count", sc.OUT_COUNT),
    ("null_count", sc.OUT_NULL_COUNT),
    ("invalid_count", sc.OUT_INVALID_COUNT),
    ("sum", sc.OUT_SUM),
    ("min", sc.OUT_MIN),
    ("max", sc.OUT_MAX),
    ("other_count", sc.OUT_OTHER_COUNT),
    ("distinct_count", sc.OUT_DISTINCT_COUNT),
)
_STORES = (
    ("positive", sc.OUT_SKETCH_POS_INDEX, sc.OUT_SKETCH_POS_COUNT),
    ("negative", sc.OUT_SKETCH_NEG_INDEX, sc.OUT_SKETCH_NEG_COUNT),
)


# --- wire encoding -------------------------------------------------------------------------


def _validate(s: OutputSummary) -> OutputSummary:
    """Check the invariants of a summary; ``ValueError`` naming the wire attribute."""
    if not s.name or "\n" in s.name or "\r" in s.name:
        raise ValueError(f"{sc.OUT_NAME}: must be a non-empty string without newlines")
    if s.kind not in KINDS:
        raise ValueError(f"{sc.OUT_KIND}: unknown kind {s.kind!r}, expected one of {KINDS}")
    if s.kind == sc.OUTPUT_KIND_NUMERIC:
        if s.sketch is None:
            raise ValueError(f"{sc.OUT_SKETCH_GAMMA}: required for a numeric output")
        if s.categories or s.other_count or s.distinct_count is not None:
            raise ValueError(f"{sc.OUT_CATEGORIES}: not allowed on a numeric output")
        if s.sketch.count != s.count:
            raise ValueError(
                f"{sc.OUT_COUNT}: {s.count} differs from the sketch total {s.sketch.count}"
            )
        if s.min is not None and s.max is not None and s.min > s.max:
            raise ValueError(f"{sc.OUT_MIN}: {s.min} is greater than {sc.OUT_MAX} {s.max}")
    else:
        if s.sketch is not None or s.sum is not None or s.min is not None or s.max is not None:
            raise ValueError(f"{sc.OUT_SKETCH_GAMMA}: sketch/sum/min/max on a categorical output")
        total = sum(s.categories.values()) + s.other_count
        if total != s.count:
            raise ValueError(
                f"{sc.OUT_COUNT}: {s.count} differs from category counts + other_count {total}"
            )
        if s.distinct_count is not None and s.distinct_count < len(s.categories):
            raise ValueError(f"{sc.OUT_DISTINCT_COUNT}: smaller than the number of categories")
    return s


def to_event_attributes(summary: OutputSummary) -> dict[str, AttributeValue]:
    """Attributes of the ``mltrace.output`` event for ``summary`` (semconv ``OUT_*`` names).

    Arrays are homogeneous; ``None`` fields and empty arrays are omitted.

    >>> attrs = to_event_attributes(summarize("label", ["cat", "dog", "cat"]))
    >>> attrs["mltrace.output.categories"], attrs["mltrace.output.category_counts"]
    (['cat', 'dog'], [2, 1])
    """
    s = _validate(summary)
    attrs: dict[str, AttributeValue] = {
        sc.OUT_NAME: s.name,
        sc.OUT_KIND: s.kind,
        sc.OUT_COUNT: s.count,
        sc.OUT_NULL_COUNT: s.null_count,
        sc.OUT_INVALID_COUNT: s.invalid_count,
    }
    for key, val in ((sc.OUT_SUM, s.sum), (sc.OUT_MIN, s.min), (sc.OUT_MAX, s.max)):
        if val is not None:
            attrs[key] = float(val)
    if s.sketch is not None:
        attrs[sc.OUT_SKETCH_GAMMA] = float(s.sketch.gamma)
        attrs[sc.OUT_SKETCH_ZERO] = s.sketch.zero_count
        for store, (_, idx_attr, cnt_attr) in zip(
            (s.sketch.positive, s.sketch.negative), _STORES, strict=True
        ):
            if store:
                keys = sorted(store)
                attrs[idx_attr] = keys
                attrs[cnt_attr] = [store[k] for k in keys]
    if s.kind == sc.OUTPUT_KIND_CATEGORICAL:
        if s.categories:
            attrs[sc.OUT_CATEGORIES] = list(s.categories)
            attrs[sc.OUT_CATEGORY_COUNTS] = list(s.categories.values())
        attrs[sc.OUT_OTHER_COUNT] = s.other_count
        if s.distinct_count is not None:
            attrs[sc.OUT_DISTINCT_COUNT] = s.distinct_count
    return attrs


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(attrs: Mapping[str, Any], key: str, default: int | None = 0) -> int | None:
    value = attrs.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: expected a non-negative int, got {_short(value)}")
    if value < 0:
        raise ValueError(f"{key}: must be non-negative, got {value}")
    return int(value)


def _float(attrs: Mapping[str, Any], key: str) -> float | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key}: expected a number, got {_short(value)}")
    if isinstance(value, int) and abs(value) > 2**1023 or not math.isfinite(value):
        raise ValueError(f"{key}: must be finite, got {_short(value)}")
    return float(value)


def _list(attrs: Mapping[str, Any], key: str, of: type) -> list[Any]:
    value = attrs.get(key)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{key}: expected an array, got {type(value).__name__}")
    if len(value) > MAX_WIRE_ITEMS:
        raise ValueError(f"{key}: {len(value)} items, more than the limit {MAX_WIRE_ITEMS}")
    for item in value:
        if not isinstance(item, of) or isinstance(item, bool):
            raise ValueError(f"{key}: expected {of.__name__} items, got {_short(item)}")
        if isinstance(item, int) and item < 0 and not key.endswith("indices"):
            raise ValueError(f"{key}: counts must be non-negative, got {item}")
    return list(value)


def _pairs(attrs: Mapping[str, Any], keys_attr: str, counts_attr: str, of: type) -> dict[Any, int]:
    keys, counts = _list(attrs, keys_attr, of), _list(attrs, counts_attr, int)
    if len(keys) != len(counts):
        raise ValueError(
            f"{keys_attr}: {len(keys)} items but {counts_attr} has {len(counts)}; "
            "the arrays must be parallel"
        )
    out = dict(zip(keys, counts, strict=True))
    if len(out) != len(keys):
        raise ValueError(f"{keys_attr}: contains duplicates")
    return out


def from_event_attributes(attrs: Mapping[str, Any]) -> OutputSummary:
    """Decode and validate the attributes of a received ``mltrace.output`` event.

    Raises ``ValueError`` naming the attribute and the problem (missing or mistyped values,
    negative counts, non-parallel arrays, unknown kind, gamma <= 1, inconsistent totals).
    Arrays may be lists or tuples; unknown attributes are ignored.

    >>> s = summarize("label", ["cat", "dog", "cat"])
    >>> from_event_attributes(to_event_attributes(s)) == s
    True
    """
    name, kind = attrs.get(sc.OUT_NAME), attrs.get(sc.OUT_KIND)
    if not isinstance(name, str):
        raise ValueError(f"{sc.OUT_NAME}: expected a string, got {_short(name)}")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"{sc.OUT_KIND}: unknown kind {_short(kind)}, expected one of {KINDS}")
    count = _int(attrs, sc.OUT_COUNT, None)
    if count is None:
        raise ValueError(f"{sc.OUT_COUNT}: required")
    s = OutputSummary(
        name,
        kind,
        count,
        _int(attrs, sc.OUT_NULL_COUNT) or 0,
        _int(attrs, sc.OUT_INVALID_COUNT) or 0,
        _float(attrs, sc.OUT_SUM),
        _float(attrs, sc.OUT_MIN),
        _float(attrs, sc.OUT_MAX),
    )
    gamma = _float(attrs, sc.OUT_SKETCH_GAMMA)
    if gamma is not None:
        if gamma <= 1.0:
            raise ValueError(f"{sc.OUT_SKETCH_GAMMA}: must be > 1, got {gamma!r}")
        stores = [_pairs(attrs, i, c, int) for _, i, c in _STORES]
        limit = 800.0 / math.log(gamma)  # gamma**index must stay a float
        for (_, idx_attr, _), store in zip(_STORES, stores, strict=True):
            if any(abs(i) > limit for i in store):
                raise ValueError(f"{idx_attr}: bucket index out of range for gamma {gamma}")
        s.sketch = Sketch(
            gamma,
            _int(attrs, sc.OUT_SKETCH_ZERO) or 0,
            _collapse(dict(sorted(stores[0].items()))),
            _collapse(dict(sorted(stores[1].items()))),
        )
    if kind == sc.OUTPUT_KIND_CATEGORICAL:
        s.categories = _pairs(attrs, sc.OUT_CATEGORIES, sc.OUT_CATEGORY_COUNTS, str)
        s.other_count = _int(attrs, sc.OUT_OTHER_COUNT) or 0
        s.distinct_count = _int(attrs, sc.OUT_DISTINCT_COUNT, None)
    return _validate(s)
