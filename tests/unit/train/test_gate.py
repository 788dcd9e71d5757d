"""The promotion gate's rule (``rakuten_train.gate``) and its params section."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rakuten_train.gate import decide, fixed_split_check, holdout_check
from rakuten_train.gate_params import GateParams, load_gate_params

PARAMS = GateParams(test_margin=0.01, holdout_margin=0.02, holdout_min_rows=50)


def test_beat_on_the_test_split_by_more_than_the_margin() -> None:
    assert fixed_split_check(0.811, 0.80, rows=100, params=PARAMS).passed  # 0.811 > 0.80 + 0.01
    below = fixed_split_check(0.805, 0.80, rows=100, params=PARAMS)
    assert not below.passed
    assert "0.8050 <= champion 0.8000 + margin 0.0100 = 0.8100" in below.reason
    assert not fixed_split_check(0.81, 0.80, rows=100, params=PARAMS).passed  # exactly the margin
    assert fixed_split_check(0.5, None, rows=100, params=PARAMS).passed  # no champion


@pytest.mark.parametrize("margin", [0.0, 0.01])
def test_an_equal_model_is_never_promoted_whatever_the_margin(margin: float) -> None:
    params = GateParams(test_margin=margin)
    equal = fixed_split_check(0.8746, 0.8746, rows=200, params=params)
    assert not equal.passed and "<= champion 0.8746" in equal.reason
    # F1s are rounded to 6 digits: float noise in champion + margin decides nothing
    assert not fixed_split_check(0.3 + margin, 0.1 + 0.2, rows=200, params=params).passed
    assert fixed_split_check(0.8746 + margin + 1e-6, 0.8746, rows=200, params=params).passed


def test_holdout_tolerates_a_loss_up_to_its_margin_and_no_more() -> None:
    assert holdout_check(0.79, 0.80, rows=60, params=PARAMS).passed  # lost 0.01 <= 0.02
    lost = holdout_check(0.77, 0.80, rows=60, params=PARAMS)
    assert not lost.passed and not lost.skipped
    assert "0.7700 < champion 0.8000 - margin 0.0200 = 0.7800" in lost.reason


def test_a_small_holdout_is_skipped_with_its_reason() -> None:
    check = holdout_check(None, None, rows=49, params=PARAMS)
    assert check.skipped and check.passed
    assert "49 rows < holdout_min_rows 50" in check.reason
    with pytest.raises(ValueError, match="needs the challenger"):
        holdout_check(None, 0.8, rows=50, params=PARAMS)


def test_decision_names_the_first_failed_check_and_keeps_every_reason() -> None:
    checks = [
        fixed_split_check(0.9, 0.8, rows=100, params=PARAMS),
        holdout_check(0.5, 0.8, rows=80, params=PARAMS),
    ]
    decision = decide(checks)
    assert not decision.promote and decision.refused_by == "holdout"
    assert decision.reason.startswith("refused: test split (100 rows)")
    document = decision.to_json()
    assert document["decision"] == "refuse"
    assert document["checks"]["holdout"]["challenger_f1"] == 0.5
    passed = decide([checks[0], holdout_check(None, None, rows=3, params=PARAMS)])
    assert passed.promote and passed.refused_by is None and passed.decision == "promote"


def test_the_champion_itself_is_never_promoted_again() -> None:
    same = [fixed_split_check(0.8, 0.8, rows=10, params=GateParams())]
    decision = decide(same, already_champion=True)
    assert not decision.promote and decision.refused_by == "already_champion"


def test_params_come_from_the_gate_section_and_refuse_unknown_keys(tmp_path: Path) -> None:
    file = tmp_path / "params.yaml"
    file.write_text("train: {epochs: 1}\ngate:\n  test_margin: 0.05\n", encoding="utf-8")
    assert load_gate_params(file).test_margin == 0.05
    assert load_gate_params(file, {"holdout_min_rows": 5}).holdout_min_rows == 5
    assert load_gate_params(tmp_path / "absent.yaml") == GateParams()
    file.write_text("gate:\n  test_margn: 0.05\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="test_margn"):
        load_gate_params(file)
    with pytest.raises(ValidationError):
        GateParams(holdout_margin=-0.1)


def test_the_repository_params_have_a_gate_section() -> None:
    from tests.utils.paths import REPO_ROOT

    params = load_gate_params(REPO_ROOT / "params.yaml")
    assert params.test_margin == 0.0 and params.holdout_min_rows >= 1
