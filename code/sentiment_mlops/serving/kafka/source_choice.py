"""Which Kafka source a stream uses: Spark's native connector when its jar is on the class path
(Dataproc, `--packages`), else the `kafka_py` Python data source (this machine: Maven is
unreachable). Kept apart from `kafka_source` so that a cluster with the native connector never
imports the Python Data Source API, which older Spark releases lack.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SHORT_NAME = "kafka_py"
NATIVE_PROVIDER = "org.apache.spark.sql.kafka010.KafkaSourceProvider"


def jvm_class_loadable(spark: SparkSession, class_name: str) -> bool:
    """True when the driver JVM can load `class_name` through Spark's class loader (which sees --jars and
    --packages); False on Spark Connect, where there is no JVM handle on this side."""
    try:
        jvm = spark.sparkContext._jvm
    except Exception:
        return False
    if jvm is None:
        return False
    try:
        loader = jvm.org.apache.spark.util.Utils.getContextOrSparkClassLoader()
        jvm.java.lang.Class.forName(class_name, False, loader)
        return True
    except Exception:
        return False


def native_kafka_available(spark: SparkSession) -> bool:
    """True when Spark's own Kafka connector (spark-sql-kafka-0-10) is on the JVM's class path."""
    return jvm_class_loadable(spark, NATIVE_PROVIDER)


@contextmanager
def local_worker_python(spark: SparkSession) -> Iterator[None]:
    """Within this block, Python functions handed to Spark run in THIS interpreter when Spark is local.

    Spark binds the worker interpreter when a Python function is wrapped (data source registration, RDD
    operations): PYSPARK_PYTHON, else whatever `python3` is first on PATH, which on this machine is a pyenv
    Python without kafka-python, pyarrow or this package. On a cluster, or when PYSPARK_PYTHON is set, the
    setting is left alone.
    """
    sc = spark.sparkContext
    old = sc.pythonExec
    swap = str(sc.master).startswith("local") and "PYSPARK_PYTHON" not in os.environ and old != sys.executable
    if swap:
        sc.pythonExec = sys.executable
    try:
        yield
    finally:
        if swap:
            sc.pythonExec = old


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
