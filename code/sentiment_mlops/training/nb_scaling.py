"""NB-SVM style log-count-ratio scaling (Wang and Manning, 2012), as one Spark ML stage.

Each feature is multiplied by r = log((p / |p|1) / (q / |q|1)), where p and q are the feature sums
over the positive and the negative training tweets plus ALPHA: words typical of one class weigh
more before the linear model sees them. r is computed once on the training split and saved inside
the PipelineModel as an `ElementwiseProduct` stage (its `scalingVec`), so serving needs no extra
code; the Spark-free model multiplies the same doubles (online/model).
"""

from __future__ import annotations

import math

from pyspark.ml.feature import ElementwiseProduct
from pyspark.ml.linalg import Vectors
from pyspark.ml.stat import Summarizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ALPHA = 1.0


def log_count_ratios(train_features: DataFrame, features_col: str, label_col: str = "label") -> list[float]:
    """r per feature from the featurized training split (both classes must occur)."""
    sums = {
        float(row[label_col]): row["sum"].toArray()
        for row in train_features.groupBy(label_col).agg(Summarizer.sum(F.col(features_col)).alias("sum")).collect()
    }
    if set(sums) != {0.0, 1.0}:
        raise ValueError(f"NB scaling needs both labels in the training split, found {sorted(sums)}")
    p = [ALPHA + float(v) for v in sums[1.0]]
    q = [ALPHA + float(v) for v in sums[0.0]]
    p_total, q_total = math.fsum(p), math.fsum(q)
    return [math.log((a / p_total) / (b / q_total)) for a, b in zip(p, q, strict=True)]


def scaling_stage(train_features: DataFrame, input_col: str, output_col: str) -> ElementwiseProduct:
    """The fitted scaling as a transformer from `input_col` to `output_col`."""
    ratios = log_count_ratios(train_features, input_col)
    return ElementwiseProduct(scalingVec=Vectors.dense(ratios), inputCol=input_col, outputCol=output_col)
