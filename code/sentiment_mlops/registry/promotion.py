"""The promotion gate: when a model may take the `production` alias. One rule for both ways in: a
newly trained best model (test accuracy on the shared test split) and the shadow challenger of the
monitoring DAG (live accuracy on the same labelled rows as the served model)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_MIN_ACCURACY = 0.75
TEST_SPLIT = "test"  # `measured_on` of a training run: accuracy on the shared test split


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    candidate_accuracy: float
    current_accuracy: float | None
    current_version: str | None
    min_accuracy: float
    forced: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def decide(
    candidate_accuracy: float,
    current_accuracy: float | None,
    current_version: str | None,
    min_accuracy: float = DEFAULT_MIN_ACCURACY,
    force: bool = False,
    strict: bool = False,
    measured_on: str = TEST_SPLIT,
) -> PromotionDecision:
    """Promote unless the candidate is below `min_accuracy` or worse than the current production
    model measured on the same rows; `force` overrides both. With `strict` a tie keeps production (the
    challenger must win, not draw). `measured_on` names the rows in the reasons: "test" (the test
    split) or e.g. "live" (labelled live rows)."""

    def result(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promote, reason, candidate_accuracy, current_accuracy, current_version, min_accuracy, force
        )

    what = f"{measured_on} accuracy"
    rows = "test split" if measured_on == TEST_SPLIT else f"{measured_on} rows"
    if force:
        return result(True, "forced with --force-promote")
    if candidate_accuracy < min_accuracy:
        return result(False, f"{what} {candidate_accuracy:.4f} is below the minimum {min_accuracy:.4f}")
    if current_accuracy is not None and candidate_accuracy < current_accuracy:
        return result(
            False,
            f"{what} {candidate_accuracy:.4f} is worse than production v{current_version} "
            f"({current_accuracy:.4f}) on the same {rows}",
        )
    if current_accuracy is not None and strict and candidate_accuracy == current_accuracy:
        return result(
            False,
            f"{what} {candidate_accuracy:.4f} only equals production v{current_version} on the same {rows}",
        )
    if current_accuracy is None:
        return result(True, "no current production model")
    sign = ">" if strict else ">="
    return result(
        True,
        f"{what} {candidate_accuracy:.4f} {sign} production v{current_version} ({current_accuracy:.4f})",
    )
