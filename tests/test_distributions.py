"""Distribution summaries: sketch accuracy, mergeability, counting rules, wire encoding."""

from __future__ import annotations

import json
import math
import random
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from otel_mltrace import distributions as dist
from otel_mltrace import semconv as sc
from otel_mltrace.distributions import (
    ALPHA,
    OutputSummary,
    Sketch,
    from_event_attributes,
    summarize,
    to_event_attributes,
)


def _sketch(values: Any) -> Sketch:
    s = summarize("x", values, kind="numeric").sketch
    assert s is not None
    return s


def _check_quantiles(values: np.ndarray[Any, Any]) -> None:
    sketch = _sketch(values)
    ordered = np.sort(values)
    for q in (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0):
        exact = float(ordered[math.floor(q * (len(values) - 1))])  # DDSketch's lower rank
        got = sketch.quantile(q)
        assert got is not None
        if abs(exact) < dist.MIN_MAGNITUDE:
            assert got == 0.0
        else:
            assert abs(got - exact) <= ALPHA * abs(exact) + 1e-12, (q, got, exact)


def test_quantiles_uniform_within_relative_accuracy() -> None:
    _check_quantiles(np.random.default_rng(1).uniform(0.5, 100.0, 50_000))


def test_quantiles_lognormal_within_relative_accuracy() -> None:
    _check_quantiles(np.random.default_rng(2).lognormal(0.0, 3.0, 50_000))


def test_quantiles_with_negatives_and_zeros() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 10, 20_000), np.zeros(5_000), [1e-12, -1e-12]])
    _check_quantiles(values)
    assert _sketch(values).zero_count == 5_002


def test_empty_sketch_and_summary() -> None:
    for values in ([], np.array([], dtype=float), [None, float("nan")]):
        s = summarize("x", values)
        assert s.kind == sc.OUTPUT_KIND_NUMERIC and s.count == 0
        assert s.sum is None and s.min is None and s.max is None
        assert s.sketch is not None and s.sketch.quantile(0.5) is None
        assert s.sketch.cdf(1.0) == 0.0 and s.sketch.bucket_counts([1.0]) == [0]
    assert summarize("x", [None, None]).null_ratio() == 1.0
    assert summarize("x", []).null_ratio() == 0.0


def test_quantile_rejects_out_of_range_q() -> None:
    with pytest.raises(ValueError, match="quantile"):
        _sketch([1.0]).quantile(1.5)


def test_merge_equals_summary_of_concatenation() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 5, 10_000), np.concatenate([rng.lognormal(0, 2, 10_000), [0.0]])
    assert _sketch(a).merge(_sketch(b)) == _sketch(np.concatenate([a, b]))
    merged = summarize("x", a).merge(summarize("x", b))
    whole = summarize("x", np.concatenate([a, b]))
    assert merged.sketch == whole.sketch
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.sum == pytest.approx(whole.sum)


def test_merge_rejects_different_gamma_and_kind() -> None:
    with pytest.raises(ValueError, match="gamma"):
        Sketch(gamma=1.02).merge(Sketch(gamma=1.05))
    with pytest.raises(ValueError, match="categorical"):
        summarize("x", [1.0]).merge(summarize("x", ["a"]))


def test_bucket_count_is_bounded_by_collapsing_lowest() -> None:
    values = np.geomspace(1e-8, 1e300, 20_000)
    sketch = _sketch(values)
    assert len(sketch.positive) <= dist.MAX_BUCKETS
    assert sketch.count == 20_000
    top = sketch.quantile(1.0)
    assert top is not None and abs(top - 1e300) <= ALPHA * 1e300
    both = sketch.merge(_sketch(-values))
    assert len(both.negative) <= dist.MAX_BUCKETS and both.count == 40_000


def test_bucket_counts_cumulative_and_monotonic() -> None:
    values = np.random.default_rng(5).normal(0, 1, 10_000)
    sketch = _sketch(values)
    bounds = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, math.inf]
    counts = sketch.bucket_counts(bounds)
    assert counts == sorted(counts) and counts[-1] == 10_000
    for bound, got in zip(bounds[:-1], counts, strict=False):
        exact = int(np.count_nonzero(values <= bound))
        assert abs(got - exact) <= 0.02 * 10_000  # only values within 2 % of a bound move
    assert sketch.cdf(0.0) == counts[3] / 10_000
    with pytest.raises(ValueError, match="ascending"):
        sketch.bucket_counts([1.0, 0.0])


def test_nulls_nan_inf_and_text_in_numeric() -> None:
    values: list[Any] = [1.0, 2, None, float("nan"), float("inf"), -math.inf, "x", True, 3.5]
    s = summarize("x", values)
    assert s.kind == sc.OUTPUT_KIND_NUMERIC
    assert (s.count, s.null_count, s.invalid_count) == (3, 2, 4)
    assert (s.sum, s.min, s.max) == (6.5, 1.0, 3.5)
    assert s.null_ratio() == pytest.approx(2 / 9)
    arr = summarize("x", np.array([1.0, np.nan, np.inf, -2.0]))
    assert (arr.count, arr.null_count, arr.invalid_count, arr.min) == (2, 1, 1, -2.0)


def test_pandas_series_nullable_and_numpy_scalars() -> None:
    s = summarize("x", pd.Series([1, None, 3], dtype="Int64"))
    assert (s.kind, s.count, s.null_count, s.sum) == ("numeric", 2, 1, 4.0)
    c = summarize("c", pd.Series(["a", None, "a"], dtype="category"))
    assert (c.kind, c.categories, c.null_count) == ("categorical", {"a": 2}, 1)
    n = summarize("n", [np.float32(1.5), np.int64(2), np.float32("nan")])
    assert (n.kind, n.count, n.null_count) == ("numeric", 2, 1)


def test_auto_kind_and_bools_are_categorical() -> None:
    assert summarize("b", [True, False, True]).categories == {"True": 2, "False": 1}
    assert summarize("b", np.array([True, False])).kind == sc.OUTPUT_KIND_CATEGORICAL
    assert summarize("m", [1, 2, "a"]).kind == sc.OUTPUT_KIND_NUMERIC
    mixed = summarize("m", [1, "a", "b"])
    assert mixed.kind == sc.OUTPUT_KIND_CATEGORICAL and mixed.categories["1"] == 1
    forced = summarize("f", np.array([1.0, 2.0, 1.0]), kind="categorical")
    assert forced.categories == {"1.0": 2, "2.0": 1}


def test_invalid_arguments_are_named() -> None:
    for bad in ("", "a\nb", 3):
        with pytest.raises(ValueError, match="output name"):
            summarize(bad, [1.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        summarize("x", [1.0], kind="ordinal")
    with pytest.raises(TypeError, match="str"):
        summarize("x", "abc")


def test_ten_thousand_categories_are_bounded() -> None:
    values = [f"c{i}" for i in range(10_000)] + ["c1"] * 50 + ["c2"] * 40
    s = summarize("c", values, max_categories=100)
    assert len(s.categories) == 100 and s.distinct_count == 10_000
    assert list(s.categories)[:2] == ["c1", "c2"] and s.categories["c1"] == 51
    assert s.other_count == len(values) - sum(s.categories.values()) == 9_900
    assert list(s.categories)[2:4] == ["c0", "c10"]  # ties: by name
    attrs = to_event_attributes(s)
    assert len(json.dumps(attrs)) < 8_000


def test_categorical_merge_keeps_top_k_and_totals() -> None:
    a = summarize("c", ["a"] * 5 + ["b"] * 3 + ["x"], max_categories=2)
    b = summarize("c", ["b"] * 4 + ["c"], max_categories=2)
    m = a.merge(b, max_categories=2)
    assert m.categories == {"b": 7, "a": 5}
    assert m.count == 14 and m.other_count == 2
    assert m.distinct_count is not None and m.distinct_count >= 3


def test_long_category_strings_are_truncated() -> None:
    s = summarize("c", ["x" * 1000])
    assert list(s.categories) == ["x" * dist.MAX_CATEGORY_CHARS]


def _roundtrip_cases() -> list[OutputSummary]:
    rng = np.random.default_rng(6)
    return [
        summarize("num", np.concatenate([rng.normal(0, 3, 5_000), [0.0, np.nan, np.inf]])),
        summarize("empty", []),
        summarize("cat", [random.Random(0).choice("abcdef") for _ in range(500)] + [None]),
        summarize("cats", [str(i) for i in range(300)], max_categories=10),
    ]


def test_event_attribute_and_json_round_trip_is_exact() -> None:
    for s in _roundtrip_cases():
        attrs = to_event_attributes(s)
        assert all(k.startswith("mltrace.output.") for k in attrs)
        assert all(v is not None for v in attrs.values())
        for v in attrs.values():
            if isinstance(v, list):
                assert len({type(x) for x in v}) <= 1
        assert from_event_attributes(attrs) == s
        tupled = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}
        assert from_event_attributes(tupled) == s
        assert OutputSummary.from_json(json.loads(json.dumps(s.to_json()))) == s


def _good_numeric() -> dict[str, Any]:
    attrs: dict[str, Any] = dict(to_event_attributes(summarize("x", [-1.0, 0.0, 1.0, 2.0])))
    return attrs


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (sc.OUT_SKETCH_POS_COUNT, [1, 1, 1], "parallel"),
        (sc.OUT_SKETCH_POS_COUNT, [-1, 3], "non-negative"),
        (sc.OUT_COUNT, -4, "non-negative"),
        (sc.OUT_COUNT, "4", "int"),
        (sc.OUT_COUNT, True, "int"),
        (sc.OUT_COUNT, 4.0, "int"),
        (sc.OUT_COUNT, 5, "sketch total"),
        (sc.OUT_COUNT, None, "required"),
        (sc.OUT_KIND, "ordinal", "unknown kind"),
        (sc.OUT_NAME, 7, "string"),
        (sc.OUT_NAME, "a\nb", "newline"),
        (sc.OUT_SKETCH_GAMMA, 1.0, "> 1"),
        (sc.OUT_SKETCH_GAMMA, "1.02", "number"),
        (sc.OUT_SKETCH_GAMMA, None, "required"),
        (sc.OUT_SKETCH_POS_INDEX, "0,1", "array"),
        (sc.OUT_SKETCH_POS_INDEX, [1.5, 2], "int items"),
        (sc.OUT_SKETCH_POS_INDEX, [10**9, 1], "out of range"),
        (sc.OUT_SKETCH_POS_INDEX, [1, 1], "duplicates"),
        (sc.OUT_MIN, float("nan"), "finite"),
        (sc.OUT_SUM, 10**400, "finite"),
        (sc.OUT_MIN, 9.0, "greater"),
    ],
)
def test_from_event_attributes_rejects_malformed_numeric(
    key: str, value: object, message: str
) -> None:
    attrs = _good_numeric()
    assert len(attrs[sc.OUT_SKETCH_POS_INDEX]) == 2
    attrs[key] = value
    with pytest.raises(ValueError, match=message) as info:
        from_event_attributes(attrs)
    assert str(info.value).startswith("mltrace.output.")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (sc.OUT_CATEGORIES, ["a"], "parallel"),
        (sc.OUT_CATEGORIES, ["a", 2], "str items"),
        (sc.OUT_CATEGORY_COUNTS, [2, -1], "non-negative"),
        (sc.OUT_OTHER_COUNT, 5, "differs"),
        (sc.OUT_DISTINCT_COUNT, 1, "smaller"),
        (sc.OUT_SKETCH_GAMMA, 1.02, "categorical"),
    ],
)
def test_from_event_attributes_rejects_malformed_categorical(
    key: str, value: object, message: str
) -> None:
    attrs: dict[str, Any] = dict(to_event_attributes(summarize("c", ["a", "a", "b"])))
    attrs[key] = value
    with pytest.raises(ValueError, match=message) as info:
        from_event_attributes(attrs)
    assert key in str(info.value) or "mltrace.output." in str(info.value)


def test_from_json_rejects_malformed_sketch_keys() -> None:
    data = summarize("x", [1.0]).to_json()
    data["sketch"]["positive"] = {"one": 1}
    with pytest.raises(ValueError, match="sketch.positive"):
        OutputSummary.from_json(data)


def test_pure_python_fallback_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(0, 100, 20_000), [0.0, 1e-12, np.nan, np.inf]])
    cats = [str(x) for x in rng.integers(0, 300, 5_000)]
    with_numpy = summarize("x", values), summarize("c", cats), summarize("l", values.tolist())
    monkeypatch.setattr(dist, "USE_NUMPY", False)
    assert dist._numpy() is None
    fallback = summarize("x", values), summarize("c", cats), summarize("l", values.tolist())
    for a, b in zip(with_numpy, fallback, strict=True):
        assert a.sketch == b.sketch and a.categories == b.categories
        assert (a.count, a.null_count, a.invalid_count, a.min, a.max) == (
            b.count,
            b.null_count,
            b.invalid_count,
            b.min,
            b.max,
        )
        assert a.sum == b.sum or a.sum == pytest.approx(b.sum, rel=1e-12)


def test_million_values_are_fast() -> None:
    values = np.random.default_rng(8).normal(size=1_000_000)
    summarize("x", values)  # warm up
    start = time.perf_counter()
    to_event_attributes(summarize("x", values))
    assert time.perf_counter() - start < 1.0  # ~0.03 s; generous for loaded CI machines
