"""The real class distribution of the Rakuten training set, and how to scale it down.

The sample generator reproduces the real imbalance (class 2583 is 13x class 1180). The counts are
read from the real label table when it is available, with a built-in copy of the same counts so
the generator works on a machine without the shared data.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from rakuten_core.categories import CODES
from rakuten_core.errors import InvalidInputError

logger = logging.getLogger(__name__)

# Rows per prdtypecode in the official training set (84,916 rows).
REAL_CLASS_COUNTS: dict[int, int] = {
    10: 3116, 40: 2508, 50: 1681, 60: 832, 1140: 2671, 1160: 3953, 1180: 764, 1280: 4870,
    1281: 2070, 1300: 5045, 1301: 807, 1302: 2491, 1320: 3241, 1560: 5073, 1920: 4303,
    1940: 803, 2060: 4993, 2220: 824, 2280: 4760, 2403: 4774, 2462: 1421, 2522: 4989,
    2582: 2589, 2583: 10209, 2585: 2496, 2705: 2761, 2905: 872,
}  # fmt: skip


def load_class_counts(label_table: Path | None) -> dict[int, int]:
    """Counts per class from a label table (``prdtypecode`` column), else the built-in copy.

    Both sources hold the same numbers; reading the table keeps the generator honest if the
    reference data is ever updated.
    """
    if label_table is None or not label_table.is_file():
        return dict(REAL_CLASS_COUNTS)
    counts = dict.fromkeys(CODES, 0)
    with label_table.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            code = int(row["prdtypecode"])
            if code not in counts:
                raise InvalidInputError(f"{label_table}: unknown prdtypecode {code}")
            counts[code] += 1
    logger.info("class distribution read from %s (%d rows)", label_table, sum(counts.values()))
    return counts


def scale_counts(counts: dict[int, int], total: int, *, min_per_class: int) -> dict[int, int]:
    """Scale ``counts`` to ``total`` rows, keeping every class at ``min_per_class`` or more.

    The minimum is reserved first and the rest is shared in proportion to the real counts by the
    largest-remainder method, so the result sums to exactly ``total`` and is deterministic.
    """
    codes = sorted(counts)
    floor_total = min_per_class * len(codes)
    if total < floor_total:
        raise InvalidInputError(
            f"{total} rows cannot hold {len(codes)} classes with at least {min_per_class} rows "
            f"each; ask for at least {floor_total} rows"
        )
    rest = total - floor_total
    weight = sum(counts[c] for c in codes)
    exact = {c: rest * counts[c] / weight for c in codes}
    scaled = {c: int(exact[c]) for c in codes}
    leftover = rest - sum(scaled.values())
    by_remainder = sorted(codes, key=lambda c: (-(exact[c] - scaled[c]), c))
    for code in by_remainder[:leftover]:
        scaled[code] += 1
    return {c: scaled[c] + min_per_class for c in codes}
