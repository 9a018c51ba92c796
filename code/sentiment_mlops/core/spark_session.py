"""SparkSession construction and Hadoop-filesystem helpers shared by the jobs.

Text files (summaries, reports, probes) go through Hadoop's FileSystem so one code path writes to
`gs://` on Dataproc and to local folders on the local backend.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from pyspark.sql import SparkSession

from sentiment_mlops.core.naming import BACKEND_PROPERTY
from sentiment_mlops.core.settings import Settings, load_settings

log = logging.getLogger(__name__)

# Local mode on a 2-core, 24 GiB machine: the driver is the only JVM, so it gets the executor's
# share too. Overridable with SPARK_DRIVER_MEMORY / SPARK_MASTER.
LOCAL_DEFAULTS = {
    "spark.driver.memory": os.environ.get("SPARK_DRIVER_MEMORY", "4g"),
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "4",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Xss16m",  # Java regex recursion on long tweets
    # Python workers connect back to the JVM within this time (default 15 s); on a loaded 2-core machine
    # a new worker took longer and failed the stream with "Python worker failed to connect back".
    "spark.python.authenticate.socketTimeout": "120s",
}


def under_spark_submit() -> bool:
    """True when spark-submit (or Dataproc's agent, which uses it) launched this driver."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(app_name: str, extra: dict[str, str] | None = None) -> SparkSession:
    """The job's session. Run directly with python, it is `local[*]` (SPARK_MASTER overrides) with
    the defaults above; under spark-submit the submitter's master and memory stand."""
    builder = SparkSession.builder.appName(app_name)
    if not under_spark_submit():
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python workers must run the driver's interpreter (the venv with this package), not `python3`.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(os.environ.get("SPARK_MASTER", "local[*]"))
        for key, value in LOCAL_DEFAULTS.items():
            builder = builder.config(key, value)
    for key, value in (extra or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    return spark


def job_settings(spark: SparkSession) -> Settings:
    """Settings for a running job: SENTIMENT_BACKEND, else the job's `spark.sentiment.backend`
    property (the Dataproc job spec sets it), else local."""
    backend = os.environ.get("SENTIMENT_BACKEND") or spark.conf.get(BACKEND_PROPERTY, None) or "local"
    return load_settings(backend)


def jvm_of(spark: SparkSession) -> Any:
    """The JVM gateway view of a live session (py4j's `sc._jvm`)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None, "the Spark context has no JVM gateway (stopped session?)"
    return jvm


def _fs_and_path(spark: SparkSession, uri: str):  # type: ignore[no-untyped-def]
    path = jvm_of(spark).org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, path


def path_exists(spark: SparkSession, uri: str) -> bool:
    fs, path = _fs_and_path(spark, uri)
    return bool(fs.exists(path))


def path_size_bytes(spark: SparkSession, uri: str) -> int:
    fs, path = _fs_and_path(spark, uri)
    return int(fs.getContentSummary(path).getLength())


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    fs, path = _fs_and_path(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def read_text(spark: SparkSession, uri: str) -> str:
    return "\n".join(row.value for row in spark.read.text(uri).collect())


def delete_path(spark: SparkSession, uri: str) -> None:
    fs, path = _fs_and_path(spark, uri)
    fs.delete(path, True)
