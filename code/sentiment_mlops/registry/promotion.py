"""The promotion gate: when a newly trained best model may take the `production` alias."""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_MIN_ACCURACY = 0.75


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
) -> PromotionDecision:
    """Promote unless the candidate is below `min_accuracy` or worse than the current production
    model measured on the same test split; `force` overrides both."""

    def result(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promote, reason, candidate_accuracy, current_accuracy, current_version, min_accuracy, force
        )

    if force:
        return result(True, "forced with --force-promote")
    if candidate_accuracy < min_accuracy:
        return result(False, f"test accuracy {candidate_accuracy:.4f} is below the minimum {min_accuracy:.4f}")
    if current_accuracy is not None and candidate_accuracy < current_accuracy:
        return result(
            False,
            f"test accuracy {candidate_accuracy:.4f} is worse than production v{current_version} "
            f"({current_accuracy:.4f}) on the same test split",
        )
    if current_accuracy is None:
        return result(True, "no current production model")
    return result(
        True,
        f"test accuracy {candidate_accuracy:.4f} >= production v{current_version} ({current_accuracy:.4f})",
    )
