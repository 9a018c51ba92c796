"""The streaming job's swap check on a real Spark session: a scorer that predicts badly or drops a column
the sinks copy is refused before it can serve."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sentiment_mlops.registry.smoke_check import SMOKE_SET, spark_smoke_check

pytestmark = pytest.mark.integration


def _truth_scorer(spark: Any, invert: bool = False):  # type: ignore[no-untyped-def]
    """A scorer that knows the smoke set's labels (right, or every one inverted)."""
    truth = spark.createDataFrame(
        [(t, float(1 - y if invert else y)) for t, y in SMOKE_SET], "text string, prediction double"
    )

    def score(df: DataFrame) -> DataFrame:
        return df.join(truth, "text", "left").withColumn("probability", F.col("prediction") * 0.8 + 0.1)

    return score


def test_a_right_scorer_that_keeps_the_columns_passes(spark) -> None:  # type: ignore[no-untyped-def]
    spark_smoke_check(spark, passthrough=("id", "source"))(_truth_scorer(spark))


def test_an_inverted_scorer_is_refused(spark) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="inverted or broken"):
        spark_smoke_check(spark, passthrough=("id", "source"))(_truth_scorer(spark, invert=True))


@pytest.mark.parametrize("column", ["id", "source"])
def test_a_scorer_that_drops_a_sink_column_is_refused(spark, column: str) -> None:  # type: ignore[no-untyped-def]
    right = _truth_scorer(spark)
    with pytest.raises(ValueError, match=f"no column.*{column}"):
        spark_smoke_check(spark, passthrough=("id", "source"))(lambda df: right(df).drop(column))


def test_a_scorer_that_rewrites_a_sink_column_is_refused(spark) -> None:  # type: ignore[no-untyped-def]
    right = _truth_scorer(spark)
    with pytest.raises(ValueError, match="changes or loses column 'source'"):
        spark_smoke_check(spark, passthrough=("id", "source"))(lambda df: right(df).withColumn("source", F.lit(None)))
