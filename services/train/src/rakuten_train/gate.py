"""The promotion gate's rule: may the challenger replace the champion?

Two checks, both on weighted F1 of the fused inputs, with the margins of ``params.yaml``'s
``gate:`` section (:class:`rakuten_train.gate_params.GateParams`):

1. the fixed test split (computed from ``data/raw`` alone, so every retraining is measured on the
   same rows): challenger > champion + ``test_margin``, i.e. beat it by more than the margin. An
   equal model is refused even with a margin of 0: replacing a model by its equal only moves the
   alias (and reloads every replica) for nothing. This check is the platform's one promotion
   rule: the train job's own promotion (:func:`rakuten_train.tracking.register_and_promote`)
   applies it too;
2. the recent feedback holdout (the newest labelled feedback, never trained on): challenger >=
   champion - ``holdout_margin``, i.e. do not lose by more than the margin on today's traffic.
   Skipped, with the reason recorded, when it has fewer than ``holdout_min_rows`` rows.

Without a champion the challenger is promoted; a challenger that already is the champion is
refused (nothing would change). The rule is pure: :mod:`rakuten_train.gate_run` measures the
models and records the decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rakuten_train.gate_params import GateParams

_EPSILON = 1e-9  # F1s are rounded to 6 digits: float noise in a sum must not decide


@dataclass(frozen=True)
class Check:
    """One comparison: its figures, whether it passed, and why."""

    name: str
    rows: int
    challenger_f1: float | None
    champion_f1: float | None
    margin: float
    passed: bool
    skipped: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    """The gate's answer; ``to_json()`` is the file the DAG reads."""

    promote: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    refused_by: str | None = None  # the check that refused: test_split, holdout, already_champion

    @property
    def decision(self) -> str:
        return "promote" if self.promote else "refuse"

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "promote": self.promote,
            "reason": self.reason,
            "refused_by": self.refused_by,
            "checks": {c.name: asdict(c) for c in self.checks},
        }


def fixed_split_check(
    challenger_f1: float, champion_f1: float | None, *, rows: int, params: GateParams
) -> Check:
    """Beat the champion on the fixed test split by more than ``test_margin`` (strictly)."""
    margin = params.test_margin
    if champion_f1 is None:
        return Check(
            "test_split", rows, challenger_f1, None, margin, True, False,
            f"no champion to compare with; challenger weighted F1 {challenger_f1:.4f}",
        )  # fmt: skip
    needed = champion_f1 + margin
    passed = challenger_f1 > needed + _EPSILON
    relation = ">" if passed else "<="
    return Check(
        "test_split", rows, challenger_f1, champion_f1, margin, passed, False,
        f"test split ({rows} rows): challenger weighted F1 {challenger_f1:.4f} {relation} "
        f"champion {champion_f1:.4f} + margin {margin:.4f} = {needed:.4f}",
    )  # fmt: skip


def holdout_check(
    challenger_f1: float | None,
    champion_f1: float | None,
    *,
    rows: int,
    params: GateParams,
) -> Check:
    """Do not lose on the recent feedback by more than ``holdout_margin``; skipped when small."""
    margin = params.holdout_margin
    if rows < params.holdout_min_rows:
        return Check(
            "holdout", rows, None, None, margin, True, True,
            f"feedback holdout skipped: {rows} rows < holdout_min_rows {params.holdout_min_rows}",
        )  # fmt: skip
    if challenger_f1 is None:
        raise ValueError("a holdout with enough rows needs the challenger's F1")
    if champion_f1 is None:
        return Check(
            "holdout", rows, challenger_f1, None, margin, True, False,
            f"feedback holdout ({rows} rows): no champion; challenger {challenger_f1:.4f}",
        )  # fmt: skip
    floor = champion_f1 - margin
    passed = challenger_f1 >= floor - _EPSILON
    relation = ">=" if passed else "<"
    return Check(
        "holdout", rows, challenger_f1, champion_f1, margin, passed, False,
        f"feedback holdout ({rows} rows): challenger weighted F1 {challenger_f1:.4f} {relation} "
        f"champion {champion_f1:.4f} - margin {margin:.4f} = {floor:.4f}",
    )  # fmt: skip


def decide(checks: list[Check], *, already_champion: bool = False) -> Decision:
    """Promote when every check passed (a skipped check passes); else name the first failure."""
    if already_champion:
        return Decision(
            False,
            "the challenger already is the champion: nothing to promote",
            checks,
            "already_champion",
        )
    failed = [c for c in checks if not c.passed]
    reason = "; ".join(c.reason for c in checks)
    if failed:
        return Decision(False, f"refused: {reason}", checks, failed[0].name)
    return Decision(True, f"promoted: {reason}", checks, None)
