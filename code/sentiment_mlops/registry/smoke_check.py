"""The check a candidate model must pass before it may serve, shared by every front end.

The streaming job (a Spark scorer) and the online server (a Spark-free model) both score
SMOKE_SET, a small built-in set of clear positive and negative tweets, with the candidate and refuse
it unless every text gets a 0/1 label, every probability is a number in [0, 1], and at least
SMOKE_MIN_ACCURACY of the labels are right. The floor is what rejects a version that loads but predicts
badly: an inverted model scores about 0 here, a constant one 0.5. The Spark variant also checks that the
scorer keeps the columns the sinks copy from the input (`id`, `source`, ...), which a changed pipeline
could drop, leaving NULLs in every prediction row.

Pure Python: pyspark is imported by nobody here, the Spark variant only calls methods of the session it
is given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

# (text, label): sentiment any usable model gets right; no sarcasm, no negation tricks. Empty and blank
# texts are not here: both front ends refuse them before scoring.
SMOKE_SET: tuple[tuple[str, int], ...] = (
    ("i love this, best day ever!", 1),
    ("so happy right now, thank you all", 1),
    ("what a great game tonight, loved it", 1),
    ("good morning! have a wonderful day", 1),
    ("this made me smile, awesome news", 1),
    ("had the best time with friends today", 1),
    ("yay finally got it, so excited", 1),
    ("thanks so much, you are amazing", 1),
    ("this is awful, i hate it", 0),
    ("so sad and tired, worst day ever", 0),
    ("i miss you so much, feeling lonely", 0),
    ("my head hurts and i feel sick", 0),
    ("ugh stuck in traffic again, hate mondays", 0),
    ("terrible service, never going back", 0),
    ("lost my phone, this sucks", 0),
    ("crying, everything went wrong today", 0),
)
SMOKE_TEXTS: tuple[str, ...] = tuple(text for text, _ in SMOKE_SET)
SMOKE_LABELS: tuple[int, ...] = tuple(label for _, label in SMOKE_SET)
# Env override for operators whose model is trained on very different text.
SMOKE_MIN_ACCURACY_ENV = "SENTIMENT_SMOKE_MIN_ACCURACY"
DEFAULT_SMOKE_MIN_ACCURACY = 0.75


class _Predicted(Protocol):
    @property
    def label(self) -> int: ...

    @property
    def probability(self) -> float | None: ...


class _PythonModel(Protocol):
    def predict(self, texts: Iterable[str]) -> Sequence[_Predicted]: ...


def min_accuracy() -> float:
    """The accuracy floor on SMOKE_SET: SENTIMENT_SMOKE_MIN_ACCURACY, else 0.75."""
    raw = os.environ.get(SMOKE_MIN_ACCURACY_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_SMOKE_MIN_ACCURACY
    except ValueError as exc:
        raise ValueError(f"{SMOKE_MIN_ACCURACY_ENV} must be a number in [0, 1], got {raw!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{SMOKE_MIN_ACCURACY_ENV} must be a number in [0, 1], got {raw!r}")
    return value


def check_predictions(labels: Sequence[Any], probabilities: Sequence[Any]) -> float:
    """Raise ValueError unless there is one 0/1 label per smoke text, each probability is None or in
    [0, 1], and the labels reach the accuracy floor. Returns the accuracy on SMOKE_SET."""
    if len(labels) != len(SMOKE_TEXTS):
        raise ValueError(f"smoke check: {len(labels)} predictions for {len(SMOKE_TEXTS)} texts")
    for label in labels:
        if label is None or float(label) not in (0.0, 1.0):
            raise ValueError(f"smoke check: label {label!r} is not 0 or 1")
    for p in probabilities:
        if p is not None and not (math.isfinite(float(p)) and 0.0 <= float(p) <= 1.0):
            raise ValueError(f"smoke check: probability {p!r} is not in [0, 1]")
    accuracy = sum(int(float(got)) == want for got, want in zip(labels, SMOKE_LABELS, strict=True)) / len(labels)
    floor = min_accuracy()
    if accuracy < floor:
        raise ValueError(
            f"smoke check: accuracy {accuracy:.2f} on {len(labels)} clear tweets is below {floor:.2f}"
            " (inverted or broken model?)"
        )
    return accuracy


def check_python_model(model: _PythonModel) -> None:
    """The check for a model with `predict(texts) -> [Prediction(label, probability)]`."""
    predictions = model.predict(SMOKE_TEXTS)
    check_predictions([p.label for p in predictions], [p.probability for p in predictions])


def _row_number(value: Any) -> int:
    try:
        return int(str(value).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1  # a changed value: the column check below reports it


def spark_smoke_check(spark: Any, passthrough: Sequence[str] = ()) -> Callable[[Callable[[Any], Any]], None]:
    """The check for a Spark scorer `DataFrame(text, *passthrough) -> DataFrame(prediction, probability,
    *passthrough)`, bound to `spark` (a SparkSession). `passthrough` names the input columns the sinks
    copy into every output row: the scorer must keep each with its values."""

    def check(score: Callable[[Any], Any]) -> None:
        rows_in = [(t, *(f"{col}-{i}" for col in passthrough)) for i, t in enumerate(SMOKE_TEXTS)]
        schema = ", ".join(["text string", *(f"`{col}` string" for col in passthrough)])
        out = score(spark.createDataFrame(rows_in, schema))
        missing = [col for col in ("prediction", *passthrough) if col not in out.columns]
        if missing:
            raise ValueError(f"smoke check: the model's output has no column(s) {missing}")
        has_probability = "probability" in out.columns
        rows = [
            r.asDict() for r in out.select("prediction", *passthrough, *(["probability"] * has_probability)).collect()
        ]
        if passthrough:  # back into input order, by the row number carried in the first column
            rows.sort(key=lambda r: _row_number(r[passthrough[0]]))
        for col in passthrough:
            if [r[col] for r in rows] != [f"{col}-{i}" for i in range(len(SMOKE_TEXTS))]:
                raise ValueError(f"smoke check: the model's output changes or loses column {col!r}")
        check_predictions([r["prediction"] for r in rows], [r.get("probability") for r in rows])

    return check
