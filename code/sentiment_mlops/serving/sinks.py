"""Idempotent per-micro-batch outputs of the serving job: predictions, quarantine, metrics.

The Parquet of micro-batch N of a stream lands directly in its day's folder, as
`base/date=D/part-<S>-<NNNNNNNNNN>-<k>.parquet`, where S is the streaming query's id from its
checkpoint: `gsutil cp .../predictions/date=D/part-*.parquet .` gets a day whole, and a reader of
`base` sees a `date` partition column. Every row also carries `stream` and `batch_id` columns.

Exactly once: a batch is written to `base/_staging/<S>-<N>` (hidden from readers by the `_`), then
its files are renamed into the day folder under names only this batch uses; before that, whatever
an earlier attempt of the same batch left (staged or renamed, whatever day it ran on) is deleted.
Spark marks a batch committed in the checkpoint only after foreachBatch returns, so a driver killed
at any moment replays the batch under the same names: each input row ends up in the output exactly
once. A new checkpoint is a new stream: other names, so older output is never taken for an earlier
attempt.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sentiment_mlops.core.spark_session import _fs_and_path, jvm_of, write_text
from sentiment_mlops.core.storage import join_uri

PREDICTIONS_DIR = "predictions"
METRICS_DIR = "_metrics/batches"
STAGING_DIR = "_staging"


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


def batch_prefix(stream: str, batch_id: int) -> str:
    """`part-<stream>-<batch_id, 10 digits>-`: the start of every file name of one batch."""
    return f"part-{stream}-{batch_id:010d}-"


def _path(spark: SparkSession, uri: str):  # pragma: no mutate block
    return jvm_of(spark).org.apache.hadoop.fs.Path(uri)


def delete_earlier_attempts(
    spark: SparkSession, base: str, stream: str, batch_id: int
) -> int:  # pragma: no mutate block
    """Remove what an earlier, uncommitted attempt of batch `batch_id` of `stream` left under `base`
    (its staging folder and its files in any day folder); returns how many paths were removed."""
    fs, root = _fs_and_path(spark, base)
    if not fs.exists(root):
        return 0
    patterns = (
        join_uri(base, "date=*", f"{batch_prefix(stream, batch_id)}*"),
        join_uri(base, STAGING_DIR, f"{stream}-{batch_id}"),
    )
    removed = 0
    for pattern in patterns:
        for status in fs.globStatus(_path(spark, pattern)) or []:
            fs.delete(status.getPath(), True)
            removed += 1
    return removed


def write_batch_parquet(
    df: DataFrame, base: str, date: str, stream: str, batch_id: int
) -> list[str]:  # pragma: no mutate block
    """Write `df` (plus `stream` and `batch_id` columns) as batch `batch_id`'s files in
    `base/date=<date>/`; returns their URIs. Call delete_earlier_attempts first."""
    spark = df.sparkSession
    staging = join_uri(base, STAGING_DIR, f"{stream}-{batch_id}")
    df.withColumn("stream", F.lit(stream)).withColumn("batch_id", F.lit(batch_id).cast("bigint")).write.mode(
        "overwrite"
    ).parquet(staging)
    fs, _ = _fs_and_path(spark, staging)
    day = join_uri(base, f"date={date}")
    fs.mkdirs(_path(spark, day))
    parts = sorted(s.getPath().toString() for s in fs.globStatus(_path(spark, join_uri(staging, "part-*"))) or [])
    written = []
    for k, part in enumerate(parts):
        target = join_uri(day, f"{batch_prefix(stream, batch_id)}{k:05d}.parquet")
        if not fs.rename(_path(spark, part), _path(spark, target)):
            raise OSError(f"cannot move {part} to {target}")
        written.append(target)
    fs.delete(_path(spark, staging), True)
    return written


def write_batch_metrics(
    spark: SparkSession, metrics_dir: str, stream: str, batch_id: int, record: dict[str, Any]
) -> str:
    """One small JSON file per batch (GCS has no append); a replay overwrites its own file."""
    uri = join_uri(metrics_dir, f"batch-{stream}-{batch_id:010d}.json")
    write_text(spark, uri, json.dumps(record, default=str) + "\n")
    return uri
