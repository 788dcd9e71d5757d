"""Drift features drawn like real traffic: the Rakuten class imbalance, texts, images.

``draw_features(rng, n)`` gives rows from one fixed distribution (so a reference built from a
large draw and a window drawn later are identical in distribution); ``shift=True`` moves it
clearly: half the traffic lands in one class, texts 3x longer, images much darker.
"""

from __future__ import annotations

import numpy as np

from rakuten_core.categories import CODES
from rakuten_core.drift import ProductFeatures

# The real class imbalance of the Rakuten training set (rows per code, same order as CODES).
REAL_COUNTS = [
    3116, 2508, 1681, 832, 2671, 3953, 764, 4870, 2070, 5045, 807, 2491, 3241, 5073, 4303, 803,
    4993, 824, 4760, 4774, 1421, 4989, 2589, 10209, 2496, 2761, 872,
]  # fmt: skip
PRIOR = np.asarray(REAL_COUNTS, dtype=np.float64) / sum(REAL_COUNTS)
SHIFTED_CODE = 2583


def draw_features(
    rng: np.random.Generator, n: int, *, shift: bool = False
) -> list[ProductFeatures]:
    codes = rng.choice(CODES, size=n, p=PRIOR)
    if shift:
        codes = np.where(rng.random(n) < 0.5, SHIFTED_CODE, codes)
    lengths = rng.lognormal(5.0 + (1.1 if shift else 0.0), 0.9, size=n).astype(int)
    has_image = rng.random(n) < 0.9
    brightness = np.clip(rng.normal(150 - (70 if shift else 0), 35, size=n), 0, 255)
    return [
        ProductFeatures(
            prdtypecode=int(c),
            probability=round(float(p), 4),
            text_length=int(length),
            has_description=bool(d),
            has_image=bool(h),
            image_brightness=round(float(b), 2) if h else None,
        )
        for c, p, length, d, h, b in zip(
            codes,
            rng.beta(5, 2, size=n),
            lengths,
            rng.random(n) < 0.65,
            has_image,
            brightness,
            strict=True,
        )
    ]
