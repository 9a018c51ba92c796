"""The shadow challenger on live traffic: how often it agrees with the served model, how accurate each
is on the same labelled rows, and whether it may take `@production` through the promotion gate.

The serving job scores every row with the served model and, while the `@challenger` alias exists, with
the challenger too (`challenger_prediction`, `challenger_model_version` beside `prediction`,
`model_version`). Pure functions over that Parquet read as pandas: no Spark, no Airflow, no registry
calls (the monitoring task asks the registry and acts on the decision).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from sentiment_mlops.registry.promotion import decide

# The Variables that govern promotion, named in the reasons (orchestration.monitoring_config).
AUTO_PROMOTE_VARIABLE = "monitoring_challenger_auto_promote"
MIN_LABELLED_VARIABLE = "monitoring_challenger_min_labelled_rows"


@dataclass(frozen=True)
class Comparison:
    """One (served version, challenger version) pair over the rows both scored."""

    model_name: str
    served_version: str
    challenger_version: str
    rows: int  # rows scored by both
    agreement: float | None  # share of those rows where the two labels are the same
    labelled_rows: int  # of those, rows carrying a 0/1 label
    served_correct: int
    challenger_correct: int

    @property
    def served_accuracy(self) -> float | None:
        return round(self.served_correct / self.labelled_rows, 6) if self.labelled_rows else None

    @property
    def challenger_accuracy(self) -> float | None:
        return round(self.challenger_correct / self.labelled_rows, 6) if self.labelled_rows else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "served_accuracy": self.served_accuracy,
            "challenger_accuracy": self.challenger_accuracy,
        }


def compare(window: pd.DataFrame) -> list[Comparison]:
    """Every (model_name, model_version, challenger_model_version) in `window` with rows both models
    scored, sorted. Rows without a challenger prediction (no challenger then, or files written before
    the serving job had one) do not count."""
    needed = {"prediction", "challenger_prediction", "challenger_model_version", "model_name", "model_version"}
    if window.empty or not needed <= set(window.columns):
        return []
    both = window[window["prediction"].notna() & window["challenger_prediction"].notna()]
    both = both[both["challenger_model_version"].notna()]
    out = []
    keys = ["model_name", "model_version", "challenger_model_version"]
    for (name, served, challenger), rows in both.groupby(keys, sort=True):
        served_label = rows["prediction"].astype(int)
        challenger_label = rows["challenger_prediction"].astype(int)
        labelled = rows["label"].notna() if "label" in rows.columns else pd.Series(False, index=rows.index)
        truth = rows.loc[labelled, "label"].astype(int)
        out.append(
            Comparison(
                model_name=str(name),
                served_version=str(served),
                challenger_version=str(challenger),
                rows=len(rows),
                agreement=round(float((served_label == challenger_label).mean()), 6),
                labelled_rows=int(labelled.sum()),
                served_correct=int((served_label[labelled] == truth).sum()),
                challenger_correct=int((challenger_label[labelled] == truth).sum()),
            )
        )
    return out


def promotion_decision(
    comparisons: list[Comparison],
    production_version: str | None,
    challenger_version: str | None,
    *,
    auto_promote: bool,
    min_labelled_rows: int,
    min_accuracy: float,
) -> dict[str, Any]:
    """Whether the challenger the registry names now (`challenger_version`) takes `@production` (now
    `production_version`), judged on the window's rows scored by exactly that pair. It must have at
    least `min_labelled_rows` labelled rows and pass the promotion gate with its live accuracy: at least
    `min_accuracy` and strictly better than the served model on the same rows. `auto_promote` off: the
    verdict is reported, nothing moves. Returns {"promote", "reason", "gate", "comparison", ...}."""
    decision: dict[str, Any] = {
        "promote": False,
        "would_promote": False,
        "auto_promote": auto_promote,
        "production_version": production_version,
        "challenger_version": challenger_version,
        "min_labelled_rows": min_labelled_rows,
        "gate": None,
        "comparison": None,
    }
    if challenger_version is None:
        return {**decision, "reason": "no challenger: the alias names no version"}
    if production_version is None:
        return {**decision, "reason": "no production version to compare with"}
    if challenger_version == production_version:
        return {**decision, "reason": f"the challenger is the production version v{production_version}"}
    wanted = (production_version, challenger_version)
    pair = next((c for c in comparisons if (c.served_version, c.challenger_version) == wanted), None)
    if pair is None:
        return {
            **decision,
            "reason": f"no rows scored by production v{production_version} and challenger v{challenger_version} "
            "in the window",
        }
    decision["comparison"] = pair.as_dict()
    if pair.labelled_rows < min_labelled_rows or pair.challenger_accuracy is None:
        return {
            **decision,
            "reason": f"{pair.labelled_rows} labelled rows < {MIN_LABELLED_VARIABLE} {min_labelled_rows}",
        }
    gate = decide(
        pair.challenger_accuracy,
        pair.served_accuracy,
        production_version,
        min_accuracy=min_accuracy,
        strict=True,
        measured_on="live",
    )
    decision["gate"] = gate.as_dict()
    reason = f"challenger v{challenger_version}: {gate.reason} ({pair.labelled_rows} labelled rows)"
    if not gate.promote:
        return {**decision, "reason": reason}
    if not auto_promote:
        return {**decision, "would_promote": True, "reason": f"{reason}; {AUTO_PROMOTE_VARIABLE} is off: report only"}
    return {**decision, "would_promote": True, "promote": True, "reason": reason}
