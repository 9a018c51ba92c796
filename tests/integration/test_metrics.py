"""Metrics from a small predictions DataFrame with known answers."""

from __future__ import annotations

import pytest
from pyspark.ml.linalg import Vectors

from sentiment_mlops.training import metrics


def test_confusion_and_rates(spark) -> None:
    rows = [(1.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0), (0.0, 1.0), (0.0, 0.0), (0.0, 0.0), (1.0, 1.0)]
    df = spark.createDataFrame(rows, ["label", "prediction"])
    c = metrics.confusion(df)
    assert (c.tn, c.fp, c.fn, c.tp) == (3, 1, 1, 3)
    r = metrics.rates(c)
    assert r["accuracy"] == pytest.approx(6 / 8)
    assert r["precision"] == pytest.approx(3 / 4)
    assert r["recall"] == pytest.approx(3 / 4)
    assert r["f1"] == pytest.approx(3 / 4)


def test_auc_from_raw_margin(spark) -> None:
    # Perfectly ranked margins give AUC 1; reversing them gives 0.
    rows = [(float(y), Vectors.dense([-m, m]), float(m > 0)) for y, m in [(0, -2.0), (0, -1.0), (1, 0.5), (1, 3.0)]]
    df = spark.createDataFrame(rows, ["label", "rawPrediction", "prediction"])
    assert metrics.auc(df) == pytest.approx(1.0)
    flipped = spark.createDataFrame([(1.0 - y, v, p) for y, v, p in rows], ["label", "rawPrediction", "prediction"])
    assert metrics.auc(flipped) == pytest.approx(0.0)


def test_roc_points_area() -> None:
    fpr, tpr = metrics.roc_points([(0.9, 1), (0.8, 1), (0.4, 0), (0.1, 0)])
    assert fpr[0] == 0.0 and tpr[-1] == 1.0 and fpr[-1] == 1.0
    area = sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(fpr) - 1))
    assert area == pytest.approx(1.0)


def test_empty_rates_do_not_divide_by_zero() -> None:
    assert metrics.rates(metrics.Confusion(0, 0, 0, 0)) == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
