"""Drift score vs raw divergence vs classic PSI: false alarms on identical traffic, and shifts.

Builds a reference from 2,000 products drawn with the real Rakuten class imbalance (texts,
images, descriptions as in ``tests/utils/drift_data.py``), then draws ``--draws`` windows of
100, 300 and 500 predictions from the same distribution and reports, per feature, the share of
windows over the feature's threshold for:

- the monitor's score (``rakuten_core.drift_stats``: chi-square excess over its 99% quantile);
- the raw divergence (the same ``X2 / n_eff`` without the noise correction);
- a classic PSI on the reference's bins (empty bins smoothed with 1e-4), the usual recipe;

and the mean classic PSI, and finally the monitor's score on one clearly shifted window. Prints
a table; asserts nothing.

    uv run --frozen python bench/monitor_drift_noise.py --draws 300
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.utils.drift_data

from rakuten_core.categories import CODES  # noqa: E402
from rakuten_core.drift import FEATURES, build_reference, feature_values  # noqa: E402
from rakuten_core.drift_stats import compare  # noqa: E402
from tests.utils.drift_data import draw_features  # noqa: E402

EPSILON = 1e-4


def classic_psi(ref_counts: list[int], counts: list[int]) -> float:
    p = np.asarray(ref_counts, dtype=np.float64) / max(sum(ref_counts), 1)
    q = np.asarray(counts, dtype=np.float64) / max(sum(counts), 1)
    p, q = np.clip(p, EPSILON, None), np.clip(q, EPSILON, None)
    return float(((q - p) * np.log(q / p)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    reference = build_reference(draw_features(rng, 2000), codes=CODES)
    print(f"reference: {reference.n} products; {args.draws} identical windows per size")
    print(
        f"{'feature':18s} {'n':>4s} {'thr':>5s} {'score>thr':>10s} {'raw>thr':>8s} "
        f"{'PSI>thr':>8s} {'mean PSI':>9s} {'shifted score':>14s}"
    )
    for n in (100, 300, 500):
        windows = [feature_values(draw_features(rng, n)) for _ in range(args.draws)]
        shifted = feature_values(draw_features(rng, n, shift=True))
        for spec in FEATURES:
            ref = reference.features[spec.name]
            over = raw = psi_over = 0
            psis = []
            for values in windows:
                result = compare(spec, ref, values[spec.name], min_count=1)
                assert result is not None
                over += result.score > spec.threshold
                raw += result.divergence > spec.threshold
                counts, _ = ref.bin_counts(values[spec.name])
                psi = classic_psi(ref.counts, counts)
                psis.append(psi)
                psi_over += psi > spec.threshold
            moved = compare(spec, ref, shifted[spec.name], min_count=1)
            moved_score = f"{moved.score:.3f}" if moved else "-"
            print(
                f"{spec.name:18s} {n:4d} {spec.threshold:5.2f} {over / args.draws:10.1%} "
                f"{raw / args.draws:8.1%} {psi_over / args.draws:8.1%} {np.mean(psis):9.3f} "
                f"{moved_score:>14s}"
            )


if __name__ == "__main__":
    main()
