"""The online server stays Spark-free, and the shared smoke check refuses what it should."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from sentiment_mlops.registry.smoke_check import SMOKE_LABELS, SMOKE_TEXTS, check_predictions, check_python_model


def test_importing_the_online_app_does_not_import_pyspark() -> None:
    # A fresh interpreter: other tests of this session import pyspark themselves.
    code = (
        "import sys; import sentiment_mlops.online.app, sentiment_mlops.online.server; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


@dataclass
class _Pred:
    label: int
    probability: float | None


class _Model:
    """Right on every smoke text, except that `label` and `probability` replace the first answer."""

    def __init__(self, label: int, probability: float | None) -> None:
        self.first = _Pred(label, probability)

    def predict(self, texts):  # type: ignore[no-untyped-def]
        right = [_Pred(y, 0.9 if y else 0.1) for y in SMOKE_LABELS]
        return [self.first, *right[1:]][: len(texts)]


def test_smoke_check_accepts_labels_and_probabilities() -> None:
    check_python_model(_Model(1, 0.9))
    check_python_model(_Model(0, None))  # LinearSVC: no probability


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Model(2, 0.5), "label 2 is not 0 or 1"),
        (_Model(1, float("nan")), "not in \\[0, 1\\]"),
        (_Model(0, 1.5), "1.5"),
    ],
)
def test_smoke_check_refuses_nonsense(model: _Model, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_python_model(model)


def test_smoke_check_needs_one_prediction_per_text() -> None:
    with pytest.raises(ValueError, match="predictions for"):
        check_predictions([1.0], [None])
    assert len(SMOKE_TEXTS) >= 2 and all(t.strip() for t in SMOKE_TEXTS)
