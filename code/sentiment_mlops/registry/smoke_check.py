"""The check a candidate model must pass before it may serve, shared by every front end.

The streaming job (a Spark scorer) and the online server (a Spark-free model) both score
SMOKE_TEXTS with the candidate and refuse it unless every text gets a 0/1 label and any
probability is a number in [0, 1]. Pure Python: pyspark is imported by nobody here, the Spark
variant only calls methods of the session it is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

# Empty and blank texts are not here: both front ends refuse them before scoring.
SMOKE_TEXTS = ("i love this, best day ever!", "this is awful, i hate it")


class _Predicted(Protocol):
    label: int

    @property
    def probability(self) -> float | None: ...


class _PythonModel(Protocol):
    def predict(self, texts: Iterable[str]) -> Sequence[_Predicted]: ...


def check_predictions(labels: Sequence[Any], probabilities: Sequence[Any]) -> None:
    """Raise ValueError unless there is one 0/1 label per smoke text and each probability is None
    or in [0, 1]."""
    if len(labels) != len(SMOKE_TEXTS):
        raise ValueError(f"smoke check: {len(labels)} predictions for {len(SMOKE_TEXTS)} texts")
    for label in labels:
        if label is None or float(label) not in (0.0, 1.0):
            raise ValueError(f"smoke check: label {label!r} is not 0 or 1")
    for p in probabilities:
        if p is not None and not (math.isfinite(float(p)) and 0.0 <= float(p) <= 1.0):
            raise ValueError(f"smoke check: probability {p!r} is not in [0, 1]")


def check_python_model(model: _PythonModel) -> None:
    """The check for a model with `predict(texts) -> [Prediction(label, probability)]`."""
    predictions = model.predict(SMOKE_TEXTS)
    check_predictions([p.label for p in predictions], [p.probability for p in predictions])


def spark_smoke_check(spark: Any) -> Callable[[Callable[[Any], Any]], None]:
    """The check for a Spark scorer `DataFrame(text) -> DataFrame(prediction, probability)`,
    bound to `spark` (a SparkSession)."""

    def check(score: Callable[[Any], Any]) -> None:
        df = spark.createDataFrame([(t,) for t in SMOKE_TEXTS], "text string")
        out = score(df)
        columns = ["prediction"] + (["probability"] if "probability" in out.columns else [])
        rows = out.select(*columns).collect()
        check_predictions([r[0] for r in rows], [r[1] if len(r) > 1 else None for r in rows])

    return check
