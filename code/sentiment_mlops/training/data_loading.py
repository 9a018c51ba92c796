"""Reading the Sentiment140 layouts into a labelled DataFrame, with counts of what was dropped.

Two layouts, both without a header:
- six columns `polarity,id,date,query,user,text` (the full Kaggle corpus, Latin-1);
- two columns `polarity,text` (the 100k sample, UTF-8).
Polarity 0 -> label 0, 4 -> label 1; 2 (neutral) is dropped and counted; anything else, a row
with the wrong number of fields or an empty text is malformed, counted and dropped.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

log = logging.getLogger(__name__)

SIX_COLUMNS = ("polarity", "id", "date", "query", "user", "text")
TWO_COLUMNS = ("polarity", "text")
LAYOUTS = {"six": SIX_COLUMNS, "two": TWO_COLUMNS}
DEFAULT_ENCODING = {"six": "ISO-8859-1", "two": "UTF-8"}
CORRUPT_COL = "_corrupt_record"


class InputDataError(ValueError):
    """The input cannot produce a single usable training row."""


@dataclass(frozen=True)
class LoadReport:
    layout: str
    rows_read: int
    rows_usable: int
    neutral_dropped: int
    malformed_dropped: int

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def detect_layout(spark: SparkSession, path: str) -> str:
    """'six' or 'two', from the field count of the first non-empty lines."""
    sample = spark.read.option("header", "false").option("quote", '"').csv(path).limit(50)
    widths = {len([v for v in row if v is not None]) for row in sample.collect()}
    if not widths:
        raise InputDataError(f"input is empty: {path}")
    if max(widths) >= 6:
        return "six"
    if max(widths) >= 2:
        return "two"
    raise InputDataError(f"input has neither the 2-column nor the 6-column Sentiment140 layout: {path}")


def read_raw(spark: SparkSession, path: str, layout: str, encoding: str | None = None) -> DataFrame:
    """All lines as strings in the layout's columns plus the corrupt-record column."""
    schema = StructType(
        [StructField(name, StringType(), True) for name in LAYOUTS[layout]]
        + [StructField(CORRUPT_COL, StringType(), True)]
    )
    return (
        spark.read.schema(schema)
        .option("header", "false")
        .option("encoding", encoding or DEFAULT_ENCODING[layout])
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COL)
        .option("multiLine", "false")
        .csv(path)
    )


def classify_rows(raw: DataFrame) -> DataFrame:
    """Adds `label` (0/1 or null) and `row_status` (ok | neutral | malformed)."""
    polarity = F.trim(F.col("polarity"))
    text_ok = F.col("text").isNotNull() & (F.length(F.trim(F.col("text"))) > 0)
    status = (
        F.when(F.col(CORRUPT_COL).isNotNull(), F.lit("malformed"))
        .when(polarity == "2", F.lit("neutral"))
        .when(polarity.isin("0", "4") & text_ok, F.lit("ok"))
        .otherwise(F.lit("malformed"))
    )
    label = F.when(polarity == "4", F.lit(1.0)).when(polarity == "0", F.lit(0.0))
    return raw.withColumn("row_status", status).withColumn("label", label)


def load_labelled(
    spark: SparkSession, path: str, layout: str = "auto", encoding: str | None = None
) -> tuple[DataFrame, LoadReport]:
    """The usable rows as (`text`, `label`), and a report of what was read and dropped."""
    if layout == "auto":
        layout = detect_layout(spark, path)
    classified = classify_rows(read_raw(spark, path, layout, encoding)).cache()
    counts = {row["row_status"]: row["count"] for row in classified.groupBy("row_status").count().collect()}
    report = LoadReport(
        layout=layout,
        rows_read=sum(counts.values()),
        rows_usable=counts.get("ok", 0),
        neutral_dropped=counts.get("neutral", 0),
        malformed_dropped=counts.get("malformed", 0),
    )
    log.info(
        "read %d rows (%s layout): %d usable, %d neutral dropped, %d malformed dropped",
        report.rows_read,
        layout,
        report.rows_usable,
        report.neutral_dropped,
        report.malformed_dropped,
    )
    if report.rows_usable == 0:
        raise InputDataError(
            f"no usable rows in {path}: read {report.rows_read}, neutral {report.neutral_dropped}, "
            f"malformed {report.malformed_dropped}"
        )
    usable = classified.filter(F.col("row_status") == "ok").select("text", "label")
    return usable, report


def subsample(df: DataFrame, sample_fraction: float, max_rows: int, seed: int) -> DataFrame:
    """Random subset: `sample_fraction` of the rows, then at most `max_rows` (0 = all).

    The sample file is sorted by label, so taking the first rows would train on one class only.
    """
    if not 0.0 < sample_fraction <= 1.0:
        raise ValueError(f"--sample-fraction must be in (0, 1], got {sample_fraction}")
    if sample_fraction < 1.0:
        df = df.sample(withReplacement=False, fraction=sample_fraction, seed=seed)
    if max_rows and max_rows > 0:
        df = df.orderBy(F.rand(seed)).limit(max_rows)
    return df


def split_dataset(
    df: DataFrame, train_ratio: float, val_ratio: float, seed: int
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Seeded train/validation/test split; test gets what is left."""
    test_ratio = 1.0 - train_ratio - val_ratio
    if train_ratio <= 0 or val_ratio <= 0 or test_ratio <= 1e-9:
        raise ValueError(
            f"--train-ratio {train_ratio} and --val-ratio {val_ratio} must be positive and leave room for a test set"
        )
    train, val, test = df.randomSplit([train_ratio, val_ratio, test_ratio], seed=seed)
    return train, val, test
