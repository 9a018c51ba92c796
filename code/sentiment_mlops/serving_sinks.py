"""Idempotent per-micro-batch outputs of the serving job: predictions, quarantine, metrics.

Every output of micro-batch N lives under a `batch_id=N` folder (inside its `date=` partition)
and is written with overwrite after any earlier attempt of batch N is deleted, whatever date that
attempt ran on. Spark marks a batch committed in the checkpoint only after foreachBatch returns,
so a driver killed at any moment replays the batch into the same folders: each input row ends up
in the output exactly once.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from sentiment_mlops.spark_session import _fs_and_path, write_text
from sentiment_mlops.storage import join_uri

PREDICTIONS_DIR = "predictions"
METRICS_DIR = "_metrics/batches"


def batch_folder(base: str, date: str, batch_id: int) -> str:
    return join_uri(base, f"date={date}", f"batch_id={batch_id}")


def delete_earlier_attempts(spark: SparkSession, base: str, batch_id: int) -> int:
    """Remove `base/date=*/batch_id=N` left by an earlier, uncommitted attempt of this batch."""
    fs, root = _fs_and_path(spark, base)
    if not fs.exists(root):
        return 0
    jvm = spark.sparkContext._jvm
    matches = fs.globStatus(jvm.org.apache.hadoop.fs.Path(join_uri(base, "date=*", f"batch_id={batch_id}")))
    for status in matches or []:
        fs.delete(status.getPath(), True)
    return len(matches or [])


def write_batch_parquet(df: DataFrame, base: str, date: str, batch_id: int) -> str:
    folder = batch_folder(base, date, batch_id)
    df.write.mode("overwrite").parquet(folder)
    return folder


def write_batch_metrics(spark: SparkSession, metrics_dir: str, batch_id: int, record: dict[str, Any]) -> str:
    """One small JSON file per batch (GCS has no append); a replay overwrites its own file."""
    uri = join_uri(metrics_dir, f"batch-{batch_id:010d}.json")
    write_text(spark, uri, json.dumps(record, default=str) + "\n")
    return uri
