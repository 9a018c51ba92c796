"""Which Kafka source the streaming job picks on the Spark it runs on, with a real session and no broker.

On Spark 3.5 (Dataproc image 2.2/2.3, Serverless runtime 2.2) only Spark's native connector can read
Kafka: the Python data-source reader needs Spark 4. The connector's jar cannot be fetched here, so these
tests check the choice (and its one-line error without the jar); the Kafka path runs end to end on Spark 4
in test_kafka_source.py. Run under both virtualenvs (README, "Spark versions")."""

from __future__ import annotations

import sys

import pytest

from sentiment_mlops.registry.spark_versions import major_minor
from sentiment_mlops.serving.kafka import source_choice
from sentiment_mlops.serving.kafka.spark_env import native_kafka_available

pytestmark = pytest.mark.integration
NOWHERE = "127.0.0.1:9"  # no broker: building the stream never connects


def test_without_the_connector_jar_spark_35_stops_naming_the_package_and_4_falls_back(spark) -> None:  # type: ignore[no-untyped-def]
    assert not native_kafka_available(spark)  # the jar is not on this machine's class path
    if major_minor(spark.version) < (4, 0):
        with pytest.raises(RuntimeError) as err:
            source_choice.read_kafka_stream(spark, NOWHERE, "tweets")
        assert f"--packages org.apache.spark:spark-sql-kafka-0-10_2.12:{spark.version}" in str(err.value)
        # the Python Data Source API is never imported on 3.5 (pyspark.sql.datasource does not exist there)
        assert "sentiment_mlops.serving.kafka.python_source" not in sys.modules
    else:
        stream = source_choice.read_kafka_stream(spark, NOWHERE, "tweets")
        assert stream.isStreaming and {"key", "value", "topic", "partition", "offset"} <= set(stream.columns)


def test_with_the_connector_loaded_the_job_uses_sparks_native_kafka_source(spark, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With the jar on the class path (as `--packages` puts it on Dataproc) the job asks Spark for its
    `kafka` format: here, without the jar, Spark's own lookup fails with its message pointing to the Kafka
    integration guide, which shows the choice."""
    from pyspark.errors import AnalysisException

    monkeypatch.setattr(source_choice, "native_kafka_available", lambda _spark: True)
    with pytest.raises(AnalysisException, match=r"Failed to find (the )?data source: kafka\b") as err:
        source_choice.read_kafka_stream(spark, NOWHERE, "tweets")
    assert "kafka_py" not in str(err.value)
