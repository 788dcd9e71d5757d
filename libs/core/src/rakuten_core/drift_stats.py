"""Drift scores: a recent window of feature values against the bundle's reference.

Why not a raw PSI: with 27 classes and a few hundred predictions, sampling noise alone gives a
PSI of 0.4-0.5 on identical distributions, so a fixed PSI threshold alerts on noise and a
threshold high enough to stay quiet misses real shifts. The score here is the same kind of
divergence with the noise taken out, by Pearson's chi-square test of homogeneity:

1. Both samples are binned the same way (categories, or the reference's deciles for numeric
   features); bins expected to hold fewer than :data:`MIN_EXPECTED` values in either sample
   are pooled, so the chi-square approximation holds (rare classes, a class never predicted
   on the test split, a code the reference never saw).
2. Pearson's statistic ``X2 = sum((observed - expected)**2 / expected)`` of the 2 x k table,
   ``expected = row total * column total / grand total``, has ``dof = k - 1`` (no continuity
   correction, even at ``dof = 1``). Both samples count as samples: a small reference is
   trusted less.
3. ``divergence = X2 / n_eff`` with ``n_eff = n m / (n + m)`` is the size of the shift (it
   equals a PSI to second order for small shifts), and ``score = max(0, X2 - c) / n_eff``
   where ``c`` is the chi-square value identical distributions exceed with probability
   :data:`ALPHA` (1%) at this ``dof``. So the score is 0 on identical distributions 99% of the
   time whatever the window size, and approaches the raw divergence when the window is large.

The chi-square tail (:func:`chi2_sf`, the p-value) and its inverse (:func:`chi2_isf`, ``c``)
are the closed forms for an integer ``dof``, in plain Python: SciPy, the only other source of
them, would add 140 MB to the monitor's image for two functions. The tests check them, and
:func:`chi_square_score`, against SciPy's ``chi2`` and ``chi2_contingency``.

A feature alerts when its score exceeds its threshold (:data:`rakuten_core.drift.FEATURES`);
a window with fewer values than the caller's minimum gets no score at all.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rakuten_core.drift import FeatureReference, FeatureSpec

ALPHA = 0.01
MIN_EXPECTED = 5.0
OTHER_BIN = "other"


@dataclass(frozen=True)
class DriftResult:
    """One feature's comparison, with what a report shows of it."""

    feature: str
    score: float
    threshold: float
    divergence: float
    statistic: float
    dof: int
    p_value: float
    n: int
    n_reference: int
    bins: list[str]
    reference_share: list[float]
    recent_share: list[float]

    @property
    def drifted(self) -> bool:
        return self.score > self.threshold


def _pool(table: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Merge the columns whose expected count is under :data:`MIN_EXPECTED` into one.

    The expected count of a column is its total times the smaller sample's share of all values
    (the test's expectation for the smaller row). A pooled column still too small is merged
    into the smallest remaining column.
    """
    grand = table.sum()
    expected = table.sum(axis=0) * table.sum(axis=1).min() / grand
    keep = expected >= MIN_EXPECTED
    kept = table[:, keep]
    pooled = table[:, ~keep].sum(axis=1)
    if pooled.sum() == 0:
        return kept
    if pooled.sum() * table.sum(axis=1).min() / grand >= MIN_EXPECTED or kept.shape[1] == 0:
        return np.column_stack([kept, pooled])
    smallest = int(np.argmin(kept.sum(axis=0)))
    kept = kept.copy()
    kept[:, smallest] += pooled
    return kept


def chi2_sf(x: float, dof: int) -> float:
    """``P(X > x)`` for ``X`` chi-square with an integer ``dof``: the test's p-value.

    With ``y = x / 2``, ``Q(x; k + 2) = Q(x; k) + exp(-y) y**(k/2) / gamma(k/2 + 1)`` from
    ``Q(x; 2) = exp(-y)`` or ``Q(x; 1) = erfc(sqrt(y))``: the tail is ``erfc`` (odd ``dof``)
    plus a finite sum of positive terms ``exp(-y) y**a / gamma(a + 1)``, ``a`` stepping by 1
    from 0 (even) or 1/2 (odd), each term ``y / a`` times the one before it. The sum is taken
    relative to its largest term (``a`` nearest under ``y``), whose log alone is computed, so no
    term overflows and ``exp(-y)`` underflowing (``x`` over ~1,500) does not zero a tail the
    other factor keeps above the smallest double; a tail below it is 0, never NaN.
    """
    if dof < 1:
        raise ValueError(f"dof must be a positive integer, got {dof}")
    if math.isnan(x):
        return math.nan
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    y = x / 2
    head, first = (0.0, 0.0) if dof % 2 == 0 else (math.erfc(math.sqrt(y)), 0.5)
    if dof < 2:
        return head
    count = dof // 2  # terms, of powers first + j for j < count
    top = min(max(math.floor(y - first), 0), count - 1)  # the largest term's j
    total = term = 1.0
    for j in range(top + 1, count):  # after it each term is y / a < 1 times the one before
        term *= y / (first + j)
        total += term
    term = 1.0
    for j in range(top, 0, -1):  # and before it a / y <= 1 times the one after
        term *= (first + j) / y
        total += term
    peak = first + top
    log_peak = -y + peak * math.log(y) - math.lgamma(peak + 1)
    return head + math.exp(log_peak + math.log(total))


def _chi2_pdf(x: float, dof: int) -> float:
    half = dof / 2
    return math.exp((half - 1) * math.log(x) - x / 2 - half * math.log(2.0) - math.lgamma(half))


@functools.lru_cache(maxsize=256)
def chi2_isf(alpha: float, dof: int) -> float:
    """The ``x`` with ``chi2_sf(x, dof) == alpha``: the critical value of the test.

    The tail falls from 1 at 0 to 0, so ``x`` is bracketed by doubling from ``dof``, then found
    by Newton's steps (the tail's slope is minus the density), a step leaving the bracket
    replaced by bisection. Cached: every feature asks for it at every evaluation.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    low, high = 0.0, float(dof)
    while chi2_sf(high, dof) > alpha:
        low, high = high, 2 * high
    x = high
    for _ in range(2000):  # bisection alone would be done in ~1,100 halvings
        excess = chi2_sf(x, dof) - alpha
        if excess == 0:
            return x
        low, high = (x, high) if excess > 0 else (low, x)
        density = _chi2_pdf(x, dof)
        step = x + excess / density if density > 0 else math.nan
        if not low < step < high:
            step = low + (high - low) / 2
        if abs(step - x) <= 4 * sys.float_info.epsilon * step:
            return step
        x = step
    return x  # pragma: no cover - the bracket shrinks to adjacent doubles well before


def chi_square_score(
    reference_counts: Sequence[int], recent_counts: Sequence[int]
) -> tuple[float, float, float, int, float]:
    """``(score, divergence, statistic, dof, p_value)`` of two count vectors over the same bins.

    Identical or single-bin distributions give ``(0, 0, 0, 0, 1)``.
    """
    table = np.asarray([reference_counts, recent_counts], dtype=np.float64)
    m, n = table.sum(axis=1)
    if m == 0 or n == 0:
        raise ValueError("both samples need at least one value")
    table = _pool(table[:, table.sum(axis=0) > 0])
    if table.shape[1] < 2:
        return 0.0, 0.0, 0.0, 0, 1.0
    # SciPy's chi2_contingency, operation for operation, so the statistic is the same double
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    n_eff = m * n / (m + n)
    score = max(0.0, statistic - chi2_isf(ALPHA, dof)) / n_eff
    return score, statistic / n_eff, statistic, dof, chi2_sf(statistic, dof)


def compare(
    spec: FeatureSpec,
    reference: FeatureReference,
    values: Sequence[Any],
    *,
    min_count: int,
) -> DriftResult | None:
    """Score ``values`` (a recent window) against ``reference``; ``None`` when either sample
    holds too little to judge (fewer than ``min_count`` recent values, an empty reference).
    """
    if len(values) < max(min_count, 1) or reference.total == 0:
        return None
    counts, other = reference.bin_counts(values)
    ref_counts = list(reference.counts)
    bins = reference.bin_labels()
    if other:
        ref_counts.append(0)
        counts.append(other)
        bins.append(OTHER_BIN)
    score, divergence, statistic, dof, p_value = chi_square_score(ref_counts, counts)
    return DriftResult(
        feature=spec.name,
        score=round(score, 6),
        threshold=spec.threshold,
        divergence=round(divergence, 6),
        statistic=round(statistic, 6),
        dof=dof,
        p_value=p_value,
        n=len(values),
        n_reference=reference.total,
        bins=bins,
        reference_share=[c / reference.total for c in ref_counts],
        recent_share=[c / len(values) for c in counts],
    )
