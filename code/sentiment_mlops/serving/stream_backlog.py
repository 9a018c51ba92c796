"""What the streaming job has not read yet: files in the input folder, or Kafka offsets behind the end.

Both are estimates taken on the driver, cheap enough to run at every scrape (cached a few seconds):

* files: the `*.csv` files under the input folder (the stream's own filter: hidden `.x` and `_x`
  names are skipped) modified after the newest file the stream has planned, read from the file
  source's log in the checkpoint. Spark's file source takes the oldest files first, so that is what
  it has still to read (a late file with an old modification time is not counted).
* Kafka: the true end offset of each partition minus the end offset of the last batch's progress.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from pyspark.sql import SparkSession

from sentiment_mlops.core.spark_session import _fs_and_path
from sentiment_mlops.core.storage import join_uri

log = logging.getLogger(__name__)
LOG_NAME = re.compile(r"^\d+(\.compact)?$")  # the file source's log: one file per batch, compacted every 10


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def newest_planned_mtime(spark: SparkSession, checkpoint: str) -> float | None:
    """Epoch seconds of the newest file the file source has planned (its latest log entry in the
    checkpoint: a batch in flight counts as read); None before the first batch."""
    fs, folder = _fs_and_path(spark, join_uri(checkpoint, "sources", "0"))
    if not fs.exists(folder):
        return None
    logs: dict[int, Any] = {}
    for status in fs.listStatus(folder):
        name = status.getPath().getName()
        if LOG_NAME.match(name):
            logs[int(name.split(".")[0])] = status.getPath()
    if not logs:
        return None
    stream = fs.open(logs[max(logs)])
    try:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        text = str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()
    stamps = [json.loads(line).get("timestamp", 0) for line in text.splitlines()[1:] if line.strip()]
    return max(stamps) / 1000 if stamps else None


def csv_files_after(spark: SparkSession, input_uri: str, after: float | None) -> int:
    """How many visible `*.csv` files under `input_uri` were modified after `after` (epoch seconds)."""
    fs, root = _fs_and_path(spark, input_uri)
    if not fs.exists(root):
        return 0
    count = 0
    pending = [root]
    while pending:
        for status in fs.listStatus(pending.pop()):
            name = status.getPath().getName()
            if _hidden(name):
                continue
            if status.isDirectory():
                pending.append(status.getPath())
            elif name.endswith(".csv") and (after is None or status.getModificationTime() / 1000 > after):
                count += 1
    return count


def file_backlog(spark: SparkSession, input_uri: str, checkpoint: str) -> int:
    return csv_files_after(spark, input_uri, newest_planned_mtime(spark, checkpoint))


def committed_offsets(end_offset: Any) -> dict[tuple[str, int], int]:
    """A progress report's `endOffset` for Kafka (`{"topic": {"0": 12}}`, as JSON or parsed)."""
    if isinstance(end_offset, str):
        end_offset = json.loads(end_offset)
    if not isinstance(end_offset, dict):
        return {}
    return {
        (topic, int(part)): int(off)
        for topic, parts in end_offset.items()
        if isinstance(parts, dict)
        for part, off in parts.items()
    }


def kafka_backlog(bootstrap: str, topic: str, end_offset: Any) -> int:
    """Messages in `topic` after the last batch's end offsets (all of them before the first batch)."""
    from sentiment_mlops.serving.kafka.end_offsets import true_end_offsets

    done = committed_offsets(end_offset)
    ends = true_end_offsets(bootstrap, topic, timeout_s=5.0)
    return sum(max(end - done.get((topic, part), 0), 0) for part, end in ends.items())
