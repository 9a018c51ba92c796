"""Which Kafka source a stream uses: Spark's native connector when its jar is on the class path
(Dataproc, `--packages`), else the `kafka_py` Python data source (this machine: Maven is
unreachable). Kept apart from `python_source` so that a cluster with the native connector never
imports the Python Data Source API, which older Spark releases lack.

On Spark 3.5 (Dataproc image 2.2/2.3, Serverless 2.2) only the native connector can work: the Python
Data Source API arrived in Spark 4.0, so a 3.5 job without the connector's jar stops with one line naming
the `--packages` coordinates for its Spark instead of an import error.
"""

from __future__ import annotations

import logging
import re

from pyspark.sql import DataFrame, SparkSession

from sentiment_mlops.serving.kafka.spark_env import SHORT_NAME, native_kafka_available

log = logging.getLogger(__name__)

PYTHON_SOURCE_MIN_SPARK = (4, 0)


def python_source_missing(spark_version: str) -> str | None:
    """Why the `kafka_py` fallback cannot run on `spark_version` (None when it can): what to add instead."""
    match = re.match(r"^\s*(\d+)\.(\d+)", spark_version)
    if not match or (int(match.group(1)), int(match.group(2))) >= PYTHON_SOURCE_MIN_SPARK:
        return None
    scala = "2.12"  # Spark 3.x as Dataproc and PyPI build it
    return (
        f"the Kafka source on Spark {spark_version} needs Spark's native connector (the Python data-source "
        f"reader needs Spark 4.0+): submit with --packages org.apache.spark:spark-sql-kafka-0-10_{scala}:"
        f"{spark_version} (SPARK_KAFKA_PACKAGE sets it for the job specs)"
    )


def read_kafka_stream(
    spark: SparkSession,
    bootstrap: str,
    topic: str,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int | None = None,
    *,
    prefer_native: bool = True,
) -> DataFrame:
    """A streaming DataFrame over `topic` with the native Kafka schema.

    Uses Spark's `kafka` format when its jar is loaded (Dataproc), else `kafka_py`. `prefer_native=False`
    forces `kafka_py`, e.g. against Tansu, whose wrong ListOffsets(LATEST) makes the native source hold back
    the tail of the last record batch until more data arrives.
    """
    use_native = prefer_native and native_kafka_available(spark)
    if use_native:
        fmt = "kafka"
    else:
        missing = python_source_missing(spark.version)
        if missing:
            raise RuntimeError(missing)
        from sentiment_mlops.serving.kafka.python_source import register_kafka_py

        register_kafka_py(spark)
        fmt = SHORT_NAME
    log.info(
        "Kafka stream from %s topic %s uses the %s source",
        bootstrap,
        topic,
        "native Spark 'kafka'" if use_native else "Python 'kafka_py' (kafka-python)",
    )
    reader = (
        spark.readStream.format(fmt)
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
    )
    if max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(int(max_offsets_per_trigger)))
    return reader.load()
