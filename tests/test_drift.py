"""Drift measures between summaries: identical, shifted, categorical, invalid comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from otel_mltrace import drift
from otel_mltrace.distributions import summarize
from otel_mltrace.drift import (
    JS_THRESHOLD,
    PSI_THRESHOLD,
    compare,
    js_distance,
    ks_critical_value,
    ks_statistic,
    psi,
)

N = 100_000


def test_identical_summaries_have_zero_drift() -> None:
    s = summarize("x", np.random.default_rng(1).normal(size=N))
    scores = compare(s, s)
    assert scores["psi"] == pytest.approx(0.0, abs=1e-12)
    assert scores["js"] == pytest.approx(0.0, abs=1e-6)
    assert scores["ks"] == pytest.approx(0.0, abs=1e-12)


def test_two_samples_of_one_distribution_stay_below_thresholds() -> None:
    rng = np.random.default_rng(2)
    for n in (2_000, N):
        a, b = summarize("x", rng.normal(size=n)), summarize("x", rng.normal(size=n))
        scores = compare(a, b)
        assert scores["psi"] is not None and scores["psi"] < 0.1
        assert scores["js"] is not None and scores["js"] < JS_THRESHOLD
        ks = scores["ks"]
        assert ks is not None and ks < ks_critical_value(n, n)


def test_shifted_normal_is_detected() -> None:
    rng = np.random.default_rng(3)
    ref, cur = summarize("x", rng.normal(0, 1, N)), summarize("x", rng.normal(1, 1, N))
    scores = compare(ref, cur)
    theory_ks = math.erf(0.5 / math.sqrt(2))  # 2 * Phi(0.5) - 1 = 0.3829
    assert scores["psi"] is not None and scores["psi"] > PSI_THRESHOLD
    assert scores["js"] is not None and scores["js"] > JS_THRESHOLD
    ks = scores["ks"]
    assert ks == pytest.approx(theory_ks, abs=0.05)
    assert ks is not None and ks > ks_critical_value(N, N)


def test_disjoint_supports_give_maximal_js_and_ks() -> None:
    a, b = summarize("x", [1.0, 2.0, 3.0]), summarize("x", [-5.0, 50.0, 60.0])
    assert ks_statistic(a, b) == pytest.approx(2 / 3)
    assert js_distance(summarize("x", [1.0, 2.0]), summarize("x", [8.0, 9.0])) == 1.0


def test_categorical_shift_is_detected_and_ks_undefined() -> None:
    ref = summarize("c", ["a"] * 500 + ["b"] * 300 + ["c"] * 200)
    same = summarize("c", ["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    shifted = summarize("c", ["a"] * 200 + ["b"] * 300 + ["d"] * 500)
    assert compare(ref, same) == {"psi": pytest.approx(0.0), "js": pytest.approx(0.0), "ks": None}
    scores = compare(ref, shifted)
    assert scores["psi"] is not None and scores["psi"] > PSI_THRESHOLD
    assert scores["js"] is not None and scores["js"] > JS_THRESHOLD
    assert scores["ks"] is None


def test_other_bucket_counts_in_categorical_drift() -> None:
    ref = summarize("c", ["a"] * 90 + [str(i) for i in range(10)], max_categories=1)
    cur = summarize("c", ["a"] * 10 + [str(i) for i in range(90)], max_categories=1)
    value = psi(ref, cur)
    assert value is not None and value > PSI_THRESHOLD


def test_different_kinds_raise() -> None:
    num, cat = summarize("x", [1.0, 2.0]), summarize("x", ["a"])
    for fn in (psi, js_distance, ks_statistic, compare):
        with pytest.raises(ValueError, match="cannot compare"):
            fn(num, cat)


def test_empty_side_gives_none() -> None:
    full, empty = summarize("x", [1.0, 2.0]), summarize("x", [])
    assert compare(full, empty) == {"psi": None, "js": None, "ks": None}


def test_psi_bins_and_discrete_reference() -> None:
    ref = summarize("x", [1.0] * 900 + [2.0] * 100)  # deciles collapse to few edges
    cur = summarize("x", [1.0] * 100 + [2.0] * 900)
    value = psi(ref, cur, bins=20)
    assert value is not None and value > PSI_THRESHOLD
    with pytest.raises(ValueError, match="bins"):
        psi(ref, cur, bins=1)


def test_ks_critical_value() -> None:
    assert ks_critical_value(1000, 1000) == pytest.approx(1.3581 * math.sqrt(2 / 1000), 1e-3)
    assert ks_critical_value(100, 400, alpha=0.01) > ks_critical_value(100, 400)
    with pytest.raises(ValueError, match="positive"):
        ks_critical_value(0, 10)
    assert drift.PSI_THRESHOLD == 0.25 and drift.JS_THRESHOLD == 0.1
