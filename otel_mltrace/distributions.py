"""Distribution summaries of component outputs: :func:`summarize` turns raw values into one.

A numeric output is summarized by count/sum/min/max and a DDSketch-style log-bucket
:class:`Sketch` (relative accuracy ``ALPHA`` = 1 %); a categorical output by its top-K value
counts. numpy is optional: with it, numeric summaries are vectorized; without it (or with
``USE_NUMPY = False``) a pure-Python path gives the same buckets. The summary type, its
merge and its ``mltrace.output`` span-event encoding live in
:mod:`otel_mltrace.output_summary`; this module re-exports them, so
``from otel_mltrace.distributions import OutputSummary, to_event_attributes`` keeps working.

Example::

    from otel_mltrace.distributions import summarize, to_event_attributes
    s = summarize("score", [0.1, 0.7, None, 0.4])
    span.add_event(semconv.OUTPUT_EVENT, to_event_attributes(s))
    s.sketch.quantile(0.5)   # ~0.4, within 1 %
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterable
from typing import Any

from otel_mltrace import semconv as sc

# Re-exported: the summary type and its wire encoding are part of this module's API.
from otel_mltrace.output_summary import DEFAULT_MAX_CATEGORIES as DEFAULT_MAX_CATEGORIES
from otel_mltrace.output_summary import KINDS as KINDS
from otel_mltrace.output_summary import MAX_WIRE_ITEMS as MAX_WIRE_ITEMS
from otel_mltrace.output_summary import AttributeValue as AttributeValue
from otel_mltrace.output_summary import OutputSummary as OutputSummary
from otel_mltrace.output_summary import _top_k
from otel_mltrace.output_summary import from_event_attributes as from_event_attributes
from otel_mltrace.output_summary import to_event_attributes as to_event_attributes
from otel_mltrace.sketch import ALPHA as ALPHA  # re-exported: part of this module's API
from otel_mltrace.sketch import DEFAULT_GAMMA as DEFAULT_GAMMA
from otel_mltrace.sketch import MAX_BUCKETS as MAX_BUCKETS
from otel_mltrace.sketch import MIN_MAGNITUDE as MIN_MAGNITUDE
from otel_mltrace.sketch import Sketch as Sketch
from otel_mltrace.sketch import _collapse

MAX_CATEGORY_CHARS = 256
"""Category strings are truncated to this many characters to bound the event size."""
USE_NUMPY = True
"""Set to ``False`` to force the pure-Python path (tests do, to compare both paths)."""

_np_cache: list[Any] = []


def _numpy() -> Any:
    """The numpy module, imported on first use; ``None`` if unavailable or disabled."""
    if not USE_NUMPY:
        return None
    if not _np_cache:
        try:
            import numpy
        except ImportError:  # pragma: no cover - exercised via USE_NUMPY in tests
            _np_cache.append(None)
        else:
            _np_cache.append(numpy)
    return _np_cache[0]


# --- summarizing ---------------------------------------------------------------------------


def _is_number(v: object) -> bool:
    if type(v) is float or type(v) is int:
        return True
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_null(v: object) -> bool:
    if v is None:
        return True
    if isinstance(v, numbers.Real) and not isinstance(v, (bool, int)):
        return bool(v != v)  # NaN, including numpy float scalars
    return type(v).__name__ in ("NAType", "NaTType")  # pandas.NA / pandas.NaT


def _numeric_array(np: Any, values: object) -> Any:
    """A flat float64 array when ``values`` is a numpy/pandas object of numeric dtype."""
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    if np is None or kind is None or kind not in "iuf":
        return None
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False).ravel()
    if hasattr(values, "to_numpy"):  # pandas Series / Index, nullable dtypes included
        return values.to_numpy(dtype=np.float64, na_value=np.nan).ravel()
    return None


def _as_list(values: object) -> list[Any]:
    if isinstance(values, (str, bytes)):
        raise TypeError("values must be an iterable of values, not a single str/bytes")
    ravel = getattr(values, "ravel", None)
    if callable(ravel) and hasattr(values, "tolist") and not hasattr(values, "to_numpy"):
        values = ravel()  # n-d numpy arrays are flattened
    tolist = getattr(values, "tolist", None)
    if callable(tolist):
        return list(tolist())
    if not isinstance(values, Iterable):
        raise TypeError(f"values must be iterable, got {type(values).__name__}")
    return list(values)


def _sketch_of(np: Any, arr: Any, gamma: float = DEFAULT_GAMMA) -> Sketch:
    """Sketch of finite float values: ``arr`` is a float64 ndarray (numpy) or a list."""
    k = 1.0 / math.log(gamma)
    if np is None:
        pos: dict[int, int] = {}
        neg: dict[int, int] = {}
        zero = 0
        for v in arr:
            if v >= MIN_MAGNITUDE:
                i = math.ceil(math.log(v) * k)
                pos[i] = pos.get(i, 0) + 1
            elif v <= -MIN_MAGNITUDE:
                i = math.ceil(math.log(-v) * k)
                neg[i] = neg.get(i, 0) + 1
            else:
                zero += 1
        return Sketch(
            gamma, zero, _collapse(dict(sorted(pos.items()))), _collapse(dict(sorted(neg.items())))
        )

    mag = np.abs(arr)
    zero = int(np.count_nonzero(mag < MIN_MAGNITUDE))
    if zero:
        keep = mag >= MIN_MAGNITUDE
        arr, mag = arr[keep], mag[keep]
    if mag.size == 0:
        return Sketch(gamma, zero)
    np.log(mag, out=mag)  # in place: no temporaries on large inputs
    mag *= k
    np.ceil(mag, out=mag)
    key = mag.astype(np.int64)
    key *= 2
    key += arr < 0  # even key: positive bucket, odd key: negative bucket
    lo = int(key.min())
    counts = np.bincount(key - lo)
    nz = np.flatnonzero(counts)
    keys, hits = (nz + lo), counts[nz]
    odd = (keys & 1).astype(bool)
    stores = [
        dict(zip((keys[sel] >> 1).tolist(), hits[sel].tolist(), strict=True)) for sel in (~odd, odd)
    ]
    return Sketch(gamma, zero, _collapse(stores[0]), _collapse(stores[1]))


def _numeric(np: Any, name: str, good: Any, nulls: int, invalid: int) -> OutputSummary:
    out = OutputSummary(name, sc.OUTPUT_KIND_NUMERIC, len(good), nulls, invalid)
    out.sketch = _sketch_of(np, good)
    if len(good):
        if np is None:
            out.sum, out.min, out.max = math.fsum(good), min(good), max(good)
        else:
            out.sum, out.min, out.max = float(good.sum()), float(good.min()), float(good.max())
    return out


def summarize(
    name: str,
    values: Iterable[Any] | Any,
    kind: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> OutputSummary:
    """Summarize one output's values (iterable, numpy array or pandas Series).

    ``kind=None`` picks numeric for numeric numpy/pandas dtypes, or when numbers (not bools)
    are the majority of the non-null Python values (empty input counts as numeric); else
    categorical, where every non-null value is stringified (bools included). None, NaN and
    pandas NA are nulls; in a numeric output non-numbers, bools and ±inf are invalid.

    >>> s = summarize("age", [31, 45, None, float("nan"), "n/a", float("inf")])
    >>> (s.kind, s.count, s.null_count, s.invalid_count, s.min, s.max)
    ('numeric', 2, 2, 2, 31.0, 45.0)
    """
    if not isinstance(name, str) or not name or "\n" in name or "\r" in name:
        raise ValueError(f"output name must be a non-empty str without newlines, got {name!r}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    if max_categories < 0:
        raise ValueError(f"max_categories must be >= 0, got {max_categories!r}")
    np = _numpy()
    arr = _numeric_array(np, values)
    if arr is not None and kind != sc.OUTPUT_KIND_CATEGORICAL:
        finite = np.isfinite(arr)
        n_finite = int(np.count_nonzero(finite))
        if n_finite == arr.size:
            return _numeric(np, name, arr, 0, 0)
        nulls = int(np.count_nonzero(np.isnan(arr)))
        return _numeric(np, name, arr[finite], nulls, arr.size - nulls - n_finite)

    raw = _as_list(values)
    items = [v for v in raw if not _is_null(v)]
    nulls = len(raw) - len(items)
    if kind is None:
        numbers_seen = sum(1 for v in items if _is_number(v))
        numeric = not items or 2 * numbers_seen > len(items)
        kind = sc.OUTPUT_KIND_NUMERIC if numeric else sc.OUTPUT_KIND_CATEGORICAL
    if kind == sc.OUTPUT_KIND_NUMERIC:
        good: list[float] = []
        for v in items:
            try:
                f = float(v) if _is_number(v) else math.inf
            except OverflowError:  # an int beyond float range
                f = math.inf
            if math.isfinite(f):
                good.append(f)
        invalid = len(items) - len(good)
        data = good if np is None else np.asarray(good, dtype=np.float64)
        return _numeric(np, name, data, nulls, invalid)

    counts: Counter[str] = Counter()
    invalid = 0
    for v in items:
        try:
            text = v if isinstance(v, str) else str(v)
        except Exception:  # a value whose __str__ fails is invalid
            invalid += 1
            continue
        counts[text[:MAX_CATEGORY_CHARS]] += 1
    out = OutputSummary(name, kind, sum(counts.values()), nulls, invalid)
    out.categories, out.other_count = _top_k(counts, max_categories)
    out.distinct_count = len(counts)
    return out
