"""How far the feedback export trusts one user: a cap per user, no silent override between users.

Feedback comes from API users holding the ``label`` scope, and one of them may be wrong or
hostile. Two rules keep one account from steering a retraining (docs/data.md, "export-feedback"):

- **A cap per user**: at most ``max_rows_per_user`` feedback rows from any one user per export,
  their most recent; the rest are dropped and counted.
- **Users who disagree drop the product**: each user's latest answer on a product stands for
  that user; when two users' answers differ, nobody wins and the product leaves the slice
  (there is no basis to choose, and "the latest wins" would let anyone overwrite anyone).
  Users who agree give one row, the latest.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import datetime

from rakuten_data.feedback_slice import FeedbackRow
from rakuten_data.report import Issue, issue

logger = logging.getLogger(__name__)

DEFAULT_MAX_ROWS_PER_USER = 200


def _order(row: FeedbackRow) -> tuple[datetime, str]:
    return (row.feedback_at, row.request_id)


def cap_per_user(rows: list[FeedbackRow], max_rows: int) -> tuple[list[FeedbackRow], Counter[str]]:
    """Each user's ``max_rows`` most recent rows (oldest first) and the rows dropped per user."""
    by_user: dict[str, list[FeedbackRow]] = defaultdict(list)
    for row in rows:
        by_user[row.username].append(row)
    kept: list[FeedbackRow] = []
    dropped: Counter[str] = Counter()
    for username, own in by_user.items():
        own.sort(key=_order)
        if len(own) > max_rows:
            dropped[username] = len(own) - max_rows
            own = own[-max_rows:]
        kept.extend(own)
    kept.sort(key=_order)
    return kept, dropped


def _product_key(row: FeedbackRow, sent_productid: bool) -> tuple[object, ...]:
    if sent_productid:
        return ("productid", row.productid)
    return ("content", row.designation, row.description, row.image_sha256)


def resolve_conflicts(
    rows: list[FeedbackRow], sent_productid: dict[str, bool]
) -> tuple[list[FeedbackRow], dict[str, int]]:
    """One row per product, or none when its labels conflict; returns rows and counts.

    A product is its ``productid`` when the client sent one, else its content. Within one user
    the latest feedback wins (``overridden``; two codes at that user's latest instant drop the
    product, ``conflict_ties_dropped``); across users the latest answers must agree
    (``merged``), else the product is dropped (``conflict_users_dropped`` rows,
    ``conflict_users_products`` products).
    """
    groups: dict[tuple[object, ...], list[FeedbackRow]] = defaultdict(list)
    for row in rows:
        groups[_product_key(row, sent_productid[row.request_id])].append(row)
    kept: list[FeedbackRow] = []
    counts = {
        "merged": 0,
        "overridden": 0,
        "conflict_ties_dropped": 0,
        "conflict_users_dropped": 0,
        "conflict_users_products": 0,
    }
    for group in groups.values():
        by_user: dict[str, list[FeedbackRow]] = defaultdict(list)
        for row in group:
            by_user[row.username].append(row)
        finals: list[FeedbackRow] = []
        overridden = 0
        tie = False
        for own in by_user.values():
            own.sort(key=_order)
            latest = own[-1]
            tie |= len({r.prdtypecode for r in own if r.feedback_at == latest.feedback_at}) > 1
            overridden += sum(r.prdtypecode != latest.prdtypecode for r in own)
            finals.append(latest)
        if tie:
            counts["conflict_ties_dropped"] += len(group)
        elif len({r.prdtypecode for r in finals}) > 1:
            counts["conflict_users_dropped"] += len(group)
            counts["conflict_users_products"] += 1
        else:
            counts["overridden"] += overridden
            counts["merged"] += len(group) - overridden - 1
            kept.append(max(finals, key=_order))
    kept.sort(key=_order)
    return kept, counts


def report_trust(
    over_cap: Counter[str], max_rows: int, counts: dict[str, int], issues: list[Issue]
) -> None:
    """The manifest's issues (and warnings in the log) for what the two rules dropped."""
    if over_cap:
        total = sum(over_cap.values())
        heaviest = [f"{user}: {n}" for user, n in over_cap.most_common()]
        issues.append(
            issue(
                "user_cap_dropped",
                f"{total} feedback rows from {len(over_cap)} users over the cap of {max_rows} "
                "rows per user; their oldest dropped",
                count=total,
                examples=heaviest,
            )
        )
        logger.warning(
            "%d feedback rows dropped by the cap of %d rows per user (%s)",
            total,
            max_rows,
            ", ".join(heaviest[:5]),
        )
    if counts["conflict_users_products"]:
        products, dropped = counts["conflict_users_products"], counts["conflict_users_dropped"]
        issues.append(
            issue(
                "conflicting_users_dropped",
                f"{products} products labelled differently by different users ({dropped} "
                "feedback rows); dropped",
                count=products,
            )
        )
        logger.warning("%d products labelled differently by different users: dropped", products)
    if counts["conflict_ties_dropped"]:
        issues.append(
            issue(
                "conflicting_feedback_dropped",
                f"{counts['conflict_ties_dropped']} feedback rows: products whose latest "
                "feedbacks from one user disagree at the same instant; dropped",
                count=counts["conflict_ties_dropped"],
            )
        )
