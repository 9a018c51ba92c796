"""Binary classification metrics on a predictions DataFrame.

Accuracy, precision, recall and F1 are for the positive class (label 1) and come from one
confusion-matrix aggregation. AUC uses the positive-class score: the probability where the model
has one, else the raw margin (LinearSVC), which ranks rows the same way a probability would.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SCORE_COL = "positive_score"


@dataclass(frozen=True)
class Confusion:
    tn: int
    fp: int
    fn: int
    tp: int

    @property
    def total(self) -> int:
        return self.tn + self.fp + self.fn + self.tp

    def as_matrix(self) -> list[list[int]]:
        """Rows are the true label (0, 1), columns the prediction (0, 1)."""
        return [[self.tn, self.fp], [self.fn, self.tp]]


def confusion(predictions: DataFrame, label_col: str = "label", prediction_col: str = "prediction") -> Confusion:
    counts = {
        (int(r[0]), int(r[1])): int(r[2]) for r in predictions.groupBy(label_col, prediction_col).count().collect()
    }
    return Confusion(
        tn=counts.get((0, 0), 0), fp=counts.get((0, 1), 0), fn=counts.get((1, 0), 0), tp=counts.get((1, 1), 0)
    )


def rates(c: Confusion) -> dict[str, float]:
    def ratio(num: int, den: int) -> float:
        return num / den if den else 0.0

    precision = ratio(c.tp, c.tp + c.fp)
    recall = ratio(c.tp, c.tp + c.fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": ratio(c.tp + c.tn, c.total), "precision": precision, "recall": recall, "f1": f1}


def with_positive_score(predictions: DataFrame, has_probability: bool) -> DataFrame:
    source = "probability" if has_probability else "rawPrediction"
    return predictions.withColumn(SCORE_COL, vector_to_array(F.col(source)).getItem(1))


def auc(predictions: DataFrame, label_col: str = "label") -> float:
    """Area under ROC from `rawPrediction` (for probabilistic models it ranks like the probability)."""
    evaluator = BinaryClassificationEvaluator(
        labelCol=label_col, rawPredictionCol="rawPrediction", metricName="areaUnderROC"
    )
    return float(evaluator.evaluate(predictions))


def evaluate(predictions: DataFrame, label_col: str = "label") -> tuple[dict[str, float], Confusion]:
    c = confusion(predictions, label_col)
    metrics = rates(c)
    metrics["auc"] = auc(predictions, label_col)
    return metrics, c


def roc_points(scores_and_labels: list[tuple[float, int]]) -> tuple[list[float], list[float]]:
    """(false positive rates, true positive rates) over every distinct score threshold."""
    pairs = sorted(scores_and_labels, key=lambda p: -p[0])
    positives = sum(1 for _, y in pairs if y == 1)
    negatives = len(pairs) - positives
    fpr, tpr = [0.0], [0.0]
    tp = fp = 0
    for i, (score, y) in enumerate(pairs):
        if y == 1:
            tp += 1
        else:
            fp += 1
        if i + 1 == len(pairs) or pairs[i + 1][0] != score:
            fpr.append(fp / negatives if negatives else 0.0)
            tpr.append(tp / positives if positives else 0.0)
    return fpr, tpr


def sample_scores(predictions: DataFrame, has_probability: bool, limit: int, seed: int) -> list[tuple[float, int]]:
    scored = with_positive_score(predictions, has_probability).select(SCORE_COL, "label")
    total = scored.count()
    if total > limit:
        scored = scored.sample(False, min(1.0, 1.2 * limit / total), seed).limit(limit)
    return [(float(r[0]), int(r[1])) for r in scored.collect()]
