"""Drift scores: a recent window of feature values against the bundle's reference.

Why not a raw PSI: with 27 classes and a few hundred predictions, sampling noise alone gives a
PSI of 0.4-0.5 on identical distributions, so a fixed PSI threshold alerts on noise and a
threshold high enough to stay quiet misses real shifts. The score here is the same kind of
divergence with the noise taken out, using scipy's chi-square test of homogeneity:

1. Both samples are binned the same way (categories, or the reference's deciles for numeric
   features); bins expected to hold fewer than :data:`MIN_EXPECTED` values in either sample
   are pooled, so the chi-square approximation holds (rare classes, a class never predicted
   on the test split, a code the reference never saw).
2. ``scipy.stats.chi2_contingency`` on the 2 x k table gives Pearson's statistic ``X2`` with
   ``dof = k - 1``. Both samples count as samples: a small reference is trusted less.
3. ``divergence = X2 / n_eff`` with ``n_eff = n m / (n + m)`` is the size of the shift (it
   equals a PSI to second order for small shifts), and ``score = max(0, X2 - c) / n_eff``
   where ``c`` is the chi-square value identical distributions exceed with probability
   :data:`ALPHA` (1%) at this ``dof``. So the score is 0 on identical distributions 99% of the
   time whatever the window size, and approaches the raw divergence when the window is large.

A feature alerts when its score exceeds its threshold (:data:`rakuten_core.drift.FEATURES`);
a window with fewer values than the caller's minimum gets no score at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

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
    result = stats.chi2_contingency(table, correction=False)
    statistic = float(result.statistic)
    dof = int(result.dof)
    n_eff = m * n / (m + n)
    critical = float(stats.chi2.isf(ALPHA, dof))
    score = max(0.0, statistic - critical) / n_eff
    return score, statistic / n_eff, statistic, dof, float(result.pvalue)


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
