"""The promotion gate's rules (registry.promotion.decide), at their boundaries: a candidate exactly at
the minimum accuracy, or exactly as good as production, is promoted."""

from __future__ import annotations

import pytest

from sentiment_mlops.registry.promotion import DEFAULT_MIN_ACCURACY, PromotionDecision, decide


def test_first_model_above_minimum_is_promoted() -> None:
    d = decide(0.78, None, None, min_accuracy=0.75)
    assert d.promote and d.reason == "no current production model"


def test_below_minimum_is_kept() -> None:
    d = decide(0.74, None, None, min_accuracy=0.75)
    assert d.promote is False
    assert d.reason == "test accuracy 0.7400 is below the minimum 0.7500"


def test_candidate_exactly_at_the_minimum_is_promoted() -> None:
    d = decide(0.75, None, None, min_accuracy=0.75)
    assert d.promote, d.reason
    assert not decide(0.7499, None, None, min_accuracy=0.75).promote


def test_default_minimum_is_075_and_applies_at_its_boundary() -> None:
    assert DEFAULT_MIN_ACCURACY == 0.75
    assert decide(0.75, None, None).promote
    assert not decide(0.7499, None, None).promote
    assert decide(0.75, None, None).min_accuracy == 0.75


def test_candidate_equal_to_production_is_promoted() -> None:
    d = decide(0.80, 0.80, "3", min_accuracy=0.75)
    assert d.promote, d.reason
    assert d.reason == "test accuracy 0.8000 >= production v3 (0.8000)"


def test_worse_than_current_is_kept_and_better_is_promoted() -> None:
    kept = decide(0.7899, 0.79, "3")
    assert kept.promote is False
    assert kept.reason == "test accuracy 0.7899 is worse than production v3 (0.7900) on the same test split"
    better = decide(0.80, 0.79, "3")
    assert better.promote and better.reason == "test accuracy 0.8000 >= production v3 (0.7900)"


def test_minimum_is_checked_before_production() -> None:
    """A candidate better than a weak production model is still refused below the minimum."""
    d = decide(0.60, 0.55, "2", min_accuracy=0.75)
    assert not d.promote and "below the minimum" in d.reason


def test_force_overrides_both_rules() -> None:
    d = decide(0.10, 0.90, "1", force=True)
    assert d.promote and d.forced and d.reason == "forced with --force-promote"
    assert not decide(0.10, 0.90, "1").forced


@pytest.mark.parametrize(("candidate", "current"), [(0.9, None), (0.5, 0.4), (0.8, 0.9)])
def test_decision_records_every_input(candidate: float, current: float | None) -> None:
    d = decide(candidate, current, "7" if current is not None else None, min_accuracy=0.6, force=False)
    assert d.as_dict() == {
        "promote": d.promote,
        "reason": d.reason,
        "candidate_accuracy": candidate,
        "current_accuracy": current,
        "current_version": "7" if current is not None else None,
        "min_accuracy": 0.6,
        "forced": False,
    }
    assert isinstance(d, PromotionDecision)
