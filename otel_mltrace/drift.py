"""Drift between a reference and a current :class:`OutputSummary` of the same output.

Everything works on the mergeable summaries (never raw values), so the collector can compare
a run with a reference window of earlier runs. Measures and default alert thresholds:

- **PSI** (population stability index, natural log) over ``bins`` reference-quantile bins
  (numeric) or category shares (categorical), each share floored at ``EPSILON``.
  Conventional reading from credit-scoring practice (Siddiqi, *Credit Risk Scorecards*,
  Wiley 2006): < 0.1 no shift, 0.1-0.25 moderate shift, > 0.25 significant shift.
  ``PSI_THRESHOLD = 0.25``.
- **JS** — Jensen-Shannon *distance* (square root of the divergence, base 2, in [0, 1]).
  ``JS_THRESHOLD = 0.1`` is our own default, not a published standard. Rationale, measured
  on normal outputs: a mean shift of ~0.25 standard deviation scores ~0.1 (a 1 sd shift
  ~0.40), while two independent samples of one distribution score ~0.05 or less from about
  a thousand values on (see :func:`js_distance` for how its bins follow the sample size).
  For comparison, Google Vertex AI model monitoring uses JS *divergence* for numeric
  features (API reference, ``ThresholdConfig``) with a default threshold of 0.3 in its
  Featurestore monitoring config (Terraform/Pulumi google provider docs); its log base is
  not stated, but in base 2 that is a distance of ~0.55, far less sensitive than ours.
- **KS** — two-sample Kolmogorov-Smirnov statistic ``max |F_ref - F_cur|``, evaluated at the
  sketch bucket boundaries (the exact supremum up to the sketch's 1 % resolution). Compare
  with :func:`ks_critical_value` (``c(0.05) = 1.36``). Not defined for categories: ``None``.

Every function returns ``None`` when either summary has no valid values, and raises
``ValueError`` when the kinds (or sketch gammas) differ.

Example::

    from otel_mltrace.drift import compare, PSI_THRESHOLD
    scores = compare(reference_summary, current_summary)   # {"psi": .., "js": .., "ks": ..}
    alert = scores["psi"] is not None and scores["psi"] > PSI_THRESHOLD
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from otel_mltrace import semconv as sc
from otel_mltrace.distributions import OutputSummary
from otel_mltrace.sketch import Sketch

PSI_THRESHOLD = 0.25
JS_THRESHOLD = 0.1
EPSILON = 1e-4
"""Floor of a bin share in PSI, so that empty bins give a large but finite term."""
JS_BINS = 64
"""JS distance coarsens the aligned sketch buckets to at most this many equal-mass bins
(fewer for small samples, see :func:`js_distance`)."""
_OTHER = "\x00other"  # share of the values folded beyond top-K (cannot collide: no NUL)


def _check(ref: OutputSummary, cur: OutputSummary) -> bool:
    """True if both have data; ValueError if they cannot be compared."""
    if ref.kind != cur.kind:
        raise ValueError(f"cannot compare a {ref.kind} output with a {cur.kind} output")
    if ref.kind == sc.OUTPUT_KIND_NUMERIC:
        if ref.sketch is None or cur.sketch is None:
            raise ValueError("numeric summaries need a sketch")
        if ref.sketch.gamma != cur.sketch.gamma:
            raise ValueError(f"sketch gammas differ: {ref.sketch.gamma} vs {cur.sketch.gamma}")
    return ref.count > 0 and cur.count > 0


def _aligned(ref: Sketch, cur: Sketch) -> tuple[list[float], list[float], list[float]]:
    """Union of both sketches' buckets ascending: values, reference and current shares."""
    r, c = dict(ref.ordered()), dict(cur.ordered())
    values = sorted(r.keys() | c.keys())
    nr, nc = ref.count, cur.count
    return values, [r.get(v, 0) / nr for v in values], [c.get(v, 0) / nc for v in values]


def _category_shares(ref: OutputSummary, cur: OutputSummary) -> tuple[list[float], list[float]]:
    keys = sorted(ref.categories.keys() | cur.categories.keys())
    out = []
    for s in (ref, cur):
        counts = [s.categories.get(k, 0) for k in keys] + [s.other_count]
        out.append([n / s.count for n in counts])
    return out[0], out[1]


def _psi_terms(p: Sequence[float], q: Sequence[float]) -> float:
    total = 0.0
    for a, b in zip(p, q, strict=True):
        a, b = max(a, EPSILON), max(b, EPSILON)
        total += (b - a) * math.log(b / a)
    return total


def psi(ref: OutputSummary, cur: OutputSummary, bins: int = 10) -> float | None:
    """Population stability index of ``cur`` against ``ref``.

    Numeric: bins are the reference quantiles ``k/bins`` (deciles by default; ties
    collapse, so a discrete output may get fewer bins); categorical: the union of the top-K
    categories plus the ``other`` bucket.

    >>> from otel_mltrace.distributions import summarize
    >>> a = summarize("x", [float(i) for i in range(1000)])
    >>> psi(a, a)
    0.0
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    if not _check(ref, cur):
        return None
    if ref.kind == sc.OUTPUT_KIND_CATEGORICAL:
        return _psi_terms(*_category_shares(ref, cur))
    assert ref.sketch is not None and cur.sketch is not None
    edges = sorted({q or 0.0 for q in ref.sketch.quantiles([k / bins for k in range(1, bins)])})
    p = _bin_shares(ref.sketch, edges)
    q = _bin_shares(cur.sketch, edges)
    return _psi_terms(p, q)


def _bin_shares(sketch: Sketch, edges: Sequence[float]) -> list[float]:
    """Shares of ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    n = sketch.count
    cum = [0, *sketch.bucket_counts(edges), n]
    return [(b - a) / n for a, b in zip(cum, cum[1:], strict=False)]


Aligned = tuple[list[float], list[float], list[float]]


def js_distance(
    ref: OutputSummary, cur: OutputSummary, aligned: Aligned | None = None
) -> float | None:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two distributions.

    Numeric: the union of both sketches' buckets, grouped left to right into ``k`` bins of
    equal mass under the 50/50 mixture of the two, ``k <= JS_BINS`` shrinking with the
    sample sizes so that two samples of one distribution score ~0.05 at most (the fine
    1 % buckets would make the estimate noisy). Categorical: the shares of the union of the
    top-K categories plus ``other`` (many rare categories in small samples inflate it).

    >>> from otel_mltrace.distributions import summarize
    >>> a, b = summarize("x", [1.0, 2.0]), summarize("x", [5.0, 6.0])
    >>> js_distance(a, b)
    1.0
    """
    if not _check(ref, cur):
        return None
    if ref.kind == sc.OUTPUT_KIND_CATEGORICAL:
        p, q = _category_shares(ref, cur)
    else:
        assert ref.sketch is not None and cur.sketch is not None
        _, fine_p, fine_q = aligned or _aligned(ref.sketch, cur.sketch)
        # Plug-in JS divergence of two samples of one distribution is biased upwards by about
        # (k - 1) / (8 ln 2) * (1/n + 1/m) over k bins: fewer bins for small samples keep
        # that noise under a distance of ~0.05.
        eff = 1.0 / (1.0 / ref.count + 1.0 / cur.count)
        k = max(2, min(JS_BINS, 1 + int(0.0025 * 8 * math.log(2) * eff)))
        p, q = [], []
        acc_p = acc_q = mixture = 0.0
        step = 1  # close a bin each time the mixture CDF crosses step / k
        for a, b in zip(fine_p, fine_q, strict=True):
            acc_p, acc_q, mixture = acc_p + a, acc_q + b, mixture + (a + b) / 2
            if step < k and mixture >= step / k - 1e-12:
                p.append(acc_p)
                q.append(acc_q)
                acc_p = acc_q = 0.0
                step = int(mixture * k + 1e-9) + 1
        if acc_p > 0 or acc_q > 0:
            p.append(acc_p)
            q.append(acc_q)
    div = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        if a > 0:
            div += 0.5 * a * math.log2(a / m)
        if b > 0:
            div += 0.5 * b * math.log2(b / m)
    return math.sqrt(min(max(div, 0.0), 1.0))


def ks_statistic(
    ref: OutputSummary, cur: OutputSummary, aligned: Aligned | None = None
) -> float | None:
    """Two-sample KS statistic ``max |F_ref - F_cur|`` over the sketch bucket boundaries.

    ``None`` for categorical outputs (categories have no order) or without data.

    >>> from otel_mltrace.distributions import summarize
    >>> ks_statistic(summarize("x", [1.0, 2.0]), summarize("x", [2.0, 3.0]))
    0.5
    """
    if not _check(ref, cur) or ref.kind == sc.OUTPUT_KIND_CATEGORICAL:
        return None
    assert ref.sketch is not None and cur.sketch is not None
    _, p, q = aligned or _aligned(ref.sketch, cur.sketch)
    best = fp = fq = 0.0
    for a, b in zip(p, q, strict=True):
        fp, fq = fp + a, fq + b
        best = max(best, abs(fp - fq))
    return min(best, 1.0)


def ks_critical_value(n: int, m: int, alpha: float = 0.05) -> float:
    """Critical value of the two-sample KS statistic: ``c(alpha) * sqrt((n + m) / (n m))``.

    ``c(alpha) = sqrt(-ln(alpha / 2) / 2)`` (1.36 at alpha = 0.05, the large-sample
    approximation); a statistic above it rejects "same distribution" at level ``alpha``.

    >>> round(ks_critical_value(1000, 1000), 4)
    0.0607
    """
    if n <= 0 or m <= 0:
        raise ValueError(f"sample sizes must be positive, got n={n}, m={m}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def compare(ref: OutputSummary, cur: OutputSummary) -> dict[str, float | None]:
    """All three measures: ``{"psi": ..., "js": ..., "ks": ...}`` (see the module doc).

    >>> from otel_mltrace.distributions import summarize
    >>> compare(summarize("c", ["a", "b"]), summarize("c", ["a", "b"]))
    {'psi': 0.0, 'js': 0.0, 'ks': None}
    """
    aligned = None
    if _check(ref, cur) and ref.kind == sc.OUTPUT_KIND_NUMERIC:
        assert ref.sketch is not None and cur.sketch is not None
        aligned = _aligned(ref.sketch, cur.sketch)  # shared by JS and KS: one bucket walk
    return {
        "psi": psi(ref, cur),
        "js": js_distance(ref, cur, aligned),
        "ks": ks_statistic(ref, cur, aligned),
    }
