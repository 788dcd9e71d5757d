"""The drift test's chi-square statistics, computed without SciPy, against SciPy's.

The monitor's image leaves SciPy out, so :mod:`rakuten_core.drift_stats` computes the tail of
the chi-square distribution, its inverse and Pearson's statistic itself; the dev environment
still has SciPy, which is the reference here.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from rakuten_core.drift_stats import (
    ALPHA,
    _pool,
    chi2_isf,
    chi2_sf,
    chi_square_score,
)

DOFS = range(1, 81)
XS = np.unique(np.concatenate([np.geomspace(1e-6, 1e5, 400), np.linspace(0.25, 2000, 300)]))
RTOL = 1e-9
TINY = 1e-300  # under this SciPy's own tail is at the end of the doubles' range


def _scipy_score(
    reference_counts: list[int], recent_counts: list[int]
) -> tuple[float, float, float, int, float]:
    """``chi_square_score`` as it was with SciPy: the reference for the one without."""
    table = np.asarray([reference_counts, recent_counts], dtype=np.float64)
    m, n = table.sum(axis=1)
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


@pytest.mark.parametrize("dof", DOFS)
def test_the_tail_equals_scipys(dof: int) -> None:
    theirs = stats.chi2.sf(XS, dof)
    ours = np.array([chi2_sf(float(x), dof) for x in XS])
    assert not np.isnan(ours).any()
    shown = theirs > TINY
    assert shown.sum() > 100  # the range is not all underflow
    np.testing.assert_allclose(ours[shown], theirs[shown], rtol=RTOL, atol=0)
    assert (ours[~shown] <= 1e-290).all()  # an underflowing tail is 0 or next to it, never NaN


@pytest.mark.parametrize("alpha", [1e-300, 1e-100, 1e-10, 1e-3, ALPHA, 0.05, 0.5, 0.9, 0.99])
def test_the_critical_value_equals_scipys(alpha: float) -> None:
    ours = np.array([chi2_isf(alpha, dof) for dof in DOFS])
    np.testing.assert_allclose(ours, stats.chi2.isf(alpha, np.array(DOFS)), rtol=RTOL, atol=0)
    tails = [chi2_sf(x, dof) for x, dof in zip(ours, DOFS, strict=True)]
    np.testing.assert_allclose(tails, alpha, rtol=RTOL)


def test_the_tail_at_its_ends() -> None:
    for dof in (1, 2, 3, 80):
        assert chi2_sf(0.0, dof) == 1.0
        assert chi2_sf(-1.0, dof) == 1.0
        assert chi2_sf(math.inf, dof) == 0.0
        assert chi2_sf(1e300, dof) == 0.0
        assert math.isnan(chi2_sf(math.nan, dof))
    assert chi2_sf(5e3, 1000) == pytest.approx(float(stats.chi2.sf(5e3, 1000)), rel=RTOL)
    assert chi2_sf(1e4, 10_000) == pytest.approx(float(stats.chi2.sf(1e4, 10_000)), rel=RTOL)


def test_the_tail_and_its_inverse_refuse_what_has_no_meaning() -> None:
    with pytest.raises(ValueError, match="dof"):
        chi2_sf(1.0, 0)
    for alpha in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(ValueError, match="alpha"):
            chi2_isf(alpha, 3)


def _tables(rng: np.random.Generator) -> list[tuple[list[int], list[int]]]:
    """Random pairs of count vectors: few and many bins, rare bins to pool, empty bins, shifts
    and none, small and large samples."""
    pairs = []
    for _ in range(400):
        k = int(rng.integers(2, 61))
        shares = rng.dirichlet(np.full(k, rng.choice([0.3, 1.0, 10.0])))
        m = int(rng.choice([20, 200, 2_000, 50_000]))
        n = int(rng.choice([20, 150, 1_000, 20_000]))
        shifted = rng.dirichlet(np.full(k, 5.0)) if rng.random() < 0.5 else shares
        reference, recent = rng.multinomial(m, shares), rng.multinomial(n, shifted)
        if rng.random() < 0.2:
            reference[int(rng.integers(k))] = 0  # a code the reference never saw
        if reference.sum() > 0 and recent.sum() > 0:
            pairs.append((reference.tolist(), recent.tolist()))
    return pairs


def test_the_score_equals_the_scipy_computation() -> None:
    pairs = _tables(np.random.default_rng(2024))
    assert len(pairs) > 350
    dofs = set()
    for reference, recent in pairs:
        score, divergence, statistic, dof, p_value = chi_square_score(reference, recent)
        r_score, r_divergence, r_statistic, r_dof, r_p_value = _scipy_score(reference, recent)
        assert (statistic, divergence, dof) == (r_statistic, r_divergence, r_dof)
        assert math.isclose(score, r_score, rel_tol=RTOL, abs_tol=1e-12)
        assert math.isclose(p_value, r_p_value, rel_tol=RTOL, abs_tol=TINY)
        dofs.add(dof)
    assert {0, 1} <= dofs and max(dofs) > 30  # single-bin, 2-bin and wide tables all seen


def test_the_statistics_load_no_scipy() -> None:
    code = "import sys, rakuten_core.drift_stats; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
