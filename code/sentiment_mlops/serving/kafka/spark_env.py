"""What the Kafka source and sink need to know about the Spark session they run in: the name the
`kafka_py` source registers under, whether Spark's native Kafka connector is loadable, and which Python
interpreter runs the workers. Shared by `source_choice` (which picks a source) and `python_source` (which
implements `kafka_py`), so neither has to import the other's half.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

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
