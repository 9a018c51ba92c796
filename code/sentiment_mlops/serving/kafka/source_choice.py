"""Which Kafka source a stream uses: Spark's native connector when its jar is on the class path
(Dataproc, `--packages`), else the `kafka_py` Python data source (this machine: Maven is
unreachable). Kept apart from `python_source` so that a cluster with the native connector never
imports the Python Data Source API, which older Spark releases lack.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession

from sentiment_mlops.serving.kafka.spark_env import SHORT_NAME, native_kafka_available

log = logging.getLogger(__name__)


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
