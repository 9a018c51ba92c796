"""Idempotent per-micro-batch outputs of the serving job: predictions, quarantine, metrics.

Every output of micro-batch N of a stream lives under `date=D/stream=S/batch_id=N`, where S is
the streaming query's id from its checkpoint, and is written with overwrite after any earlier
attempt of the same batch is deleted, whatever date that attempt ran on. Spark marks a batch
committed in the checkpoint only after foreachBatch returns, so a driver killed at any moment
replays the batch into the same folder: each input row ends up in the output exactly once. A new
checkpoint is a new stream: its batch ids restart at 0 in folders of its own, so older output is
never taken for an earlier attempt.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from sentiment_mlops.core.spark_session import _fs_and_path, jvm_of, write_text
from sentiment_mlops.core.storage import join_uri

# Functions marked `pragma: no mutate block` run only against Spark's Hadoop filesystem: the mutation
# run (scripts/mutation.sh, fast unit tests) leaves them to tests/integration/test_serving_job.py.

PREDICTIONS_DIR = "predictions"
METRICS_DIR = "_metrics/batches"


def stream_id(spark: SparkSession, checkpoint: str) -> str:  # pragma: no mutate block
    """`YYYYmmddHHMMSS-<id8>`: when the checkpoint was created and the streaming query's id, both
    kept in `{checkpoint}/metadata` across restarts. Names built on it sort by stream, then batch."""
    fs, path = _fs_and_path(spark, join_uri(checkpoint, "metadata"))
    created = datetime.fromtimestamp(fs.getFileStatus(path).getModificationTime() / 1000, tz=UTC)
    stream = fs.open(path)
    try:
        jio = jvm_of(spark).java.io
        first = jio.BufferedReader(jio.InputStreamReader(stream, "UTF-8")).readLine()
    finally:
        stream.close()
    return f"{created:%Y%m%d%H%M%S}-{str(json.loads(first)['id']).split('-')[0]}"


def batch_folder(base: str, date: str, stream: str, batch_id: int) -> str:
    return join_uri(base, f"date={date}", f"stream={stream}", f"batch_id={batch_id}")


def delete_earlier_attempts(
    spark: SparkSession, base: str, stream: str, batch_id: int
) -> int:  # pragma: no mutate block
    """Remove `base/date=*/stream=S/batch_id=N` left by an earlier, uncommitted attempt."""
    fs, root = _fs_and_path(spark, base)
    if not fs.exists(root):
        return 0
    jvm = jvm_of(spark)
    pattern = join_uri(base, "date=*", f"stream={stream}", f"batch_id={batch_id}")
    matches = fs.globStatus(jvm.org.apache.hadoop.fs.Path(pattern))
    for status in matches or []:
        fs.delete(status.getPath(), True)
    return len(matches or [])


def write_batch_parquet(
    df: DataFrame, base: str, date: str, stream: str, batch_id: int
) -> str:  # pragma: no mutate block
    folder = batch_folder(base, date, stream, batch_id)
    df.write.mode("overwrite").parquet(folder)
    return folder


def write_batch_metrics(
    spark: SparkSession, metrics_dir: str, stream: str, batch_id: int, record: dict[str, Any]
) -> str:
    """One small JSON file per batch (GCS has no append); a replay overwrites its own file."""
    uri = join_uri(metrics_dir, f"batch-{stream}-{batch_id:010d}.json")
    write_text(spark, uri, json.dumps(record, default=str) + "\n")
    return uri
