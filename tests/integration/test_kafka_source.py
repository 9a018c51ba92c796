"""The `kafka_py` streaming source against a real broker and a real Spark session: exactly-once across a
restart from the checkpoint, maxOffsetsPerTrigger, startingOffsets. No mocks."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

from sentiment_mlops.backends.local.kafka_broker import KafkaBroker
from sentiment_mlops.serving.kafka.python_source import KAFKA_SCHEMA, KafkaPyStreamReader, _split_limit
from sentiment_mlops.serving.kafka.source_choice import read_kafka_stream
from sentiment_mlops.serving.kafka.spark_env import jvm_class_loadable, native_kafka_available
from tests.fixtures_kafka import kafka_broker_fixture, new_topic, produce  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:.*is deprecated. Use files:DeprecationWarning"),
]


def _run_to_parquet(stream: DataFrame, out: Path, checkpoint: Path) -> StreamingQuery:
    """Start the query; every micro-batch overwrites its own batch-id folder, so a re-run batch replaces
    its earlier attempt instead of adding to it (what makes the sink exactly-once)."""

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        batch.write.mode("overwrite").parquet(str(out / f"batch_id={batch_id}"))

    return stream.writeStream.foreachBatch(write_batch).option("checkpointLocation", str(checkpoint)).start()


def _drain(query: StreamingQuery) -> None:
    query.processAllAvailable()
    query.stop()
    assert query.exception() is None


def _values(spark: SparkSession, out: Path) -> list[str]:
    return [r.v for r in spark.read.parquet(str(out)).selectExpr("CAST(value AS STRING) AS v").collect()]


def _reader(broker: KafkaBroker, topic: str, **options: str) -> KafkaPyStreamReader:
    return KafkaPyStreamReader({"kafka.bootstrap.servers": broker.bootstrap, "subscribe": topic, **options})


# -- planning, without Spark ----------------------------------------------------------------------------
def test_split_limit_is_proportional_and_exact() -> None:
    backlog = {("t", 0): 600, ("t", 1): 300, ("t", 2): 100}
    assert _split_limit(backlog, 10_000) == backlog
    assert _split_limit(backlog, 100) == {("t", 0): 60, ("t", 1): 30, ("t", 2): 10}
    tiny = _split_limit(backlog, 2)
    assert sum(tiny.values()) == 2 and all(0 <= tiny[tp] <= backlog[tp] for tp in backlog)
    assert sum(_split_limit({("t", 0): 1, ("t", 1): 0, ("t", 2): 7}, 5).values()) == 5


@pytest.mark.timeout(60)
def test_offsets_planning_against_the_broker(kafka_broker: KafkaBroker) -> None:
    topic = new_topic(kafka_broker.bootstrap, "plan", partitions=3)
    produce(kafka_broker.bootstrap, topic, [str(i) for i in range(300)])

    earliest = _reader(kafka_broker, topic, startingOffsets="earliest")
    start = earliest.initialOffset()
    assert start == {topic: {"0": 0, "1": 0, "2": 0}}
    json.dumps(start)  # what Spark does with it
    everything = earliest.latestOffset(start, ReadAllAvailable())
    assert sum(everything[topic].values()) == 300
    capped = earliest.latestOffset(start, ReadMaxRows(100))
    assert sum(capped[topic].values()) == 100
    ranges = earliest.partitions(start, capped)
    assert sum(r.end - r.start for r in ranges) == 100 and len({r.partition for r in ranges}) == len(ranges)
    assert earliest.latestOffset(everything, ReadAllAvailable()) == everything  # nothing new: same offset

    latest = _reader(kafka_broker, topic, startingOffsets="latest")
    assert latest.initialOffset() == everything

    specific = _reader(kafka_broker, topic, startingOffsets=json.dumps({topic: {"0": 5, "1": -2, "2": -1}}))
    assert specific.initialOffset() == {topic: {"0": 5, "1": 0, "2": everything[topic]["2"]}}
    with pytest.raises(ValueError, match="missing"):
        _reader(kafka_broker, topic, startingOffsets=json.dumps({topic: {"0": 5}})).initialOffset()
    with pytest.raises(ValueError, match="kafka.bootstrap.servers"):
        KafkaPyStreamReader({"subscribe": topic})

    # A checkpoint ahead of the log (in-memory broker restarted, topic recreated): fail loudly by default ...
    ahead = {topic: {p: n + 1000 for p, n in everything[topic].items()}}
    with pytest.raises(RuntimeError, match="went backwards"):
        _reader(kafka_broker, topic).latestOffset(ahead, ReadAllAvailable())
    # ... or, with failOnDataLoss=false, reread those partitions from their earliest offset.
    lenient = _reader(kafka_broker, topic, failOnDataLoss="false")
    restarted = lenient.latestOffset(ahead, ReadAllAvailable())
    assert restarted == everything
    assert sum(r.end - r.start for r in lenient.partitions(ahead, restarted)) == 300


# -- streaming with Spark -------------------------------------------------------------------------------
@pytest.mark.timeout(240)
def test_stream_reads_exactly_once_across_restart(
    spark: SparkSession, kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = new_topic(kafka_broker.bootstrap, "stream", partitions=3)
    first = [f"m{i}" for i in range(2500)]
    produce(kafka_broker.bootstrap, topic, first)
    out, checkpoint = tmp_path / "out", tmp_path / "checkpoint"

    def stream() -> DataFrame:
        return read_kafka_stream(
            spark, kafka_broker.bootstrap, topic, "earliest", max_offsets_per_trigger=1000, prefer_native=False
        )

    df = stream()
    assert df.schema == KAFKA_SCHEMA  # the native kafka source's columns and types
    _drain(_run_to_parquet(df, out, checkpoint))
    batches = spark.read.parquet(str(out)).groupBy("batch_id").count().collect()
    assert sorted(r["count"] for r in batches) == [500, 1000, 1000]  # maxOffsetsPerTrigger respected
    assert sorted(_values(spark, out)) == sorted(first)

    second = [f"n{i}" for i in range(1500)]
    produce(kafka_broker.bootstrap, topic, second)
    _drain(_run_to_parquet(stream(), out, checkpoint))  # same checkpoint: resumes after the first run

    rows = spark.read.parquet(str(out))
    assert rows.count() == len(first) + len(second)
    assert rows.select("partition", "offset").distinct().count() == len(first) + len(second)
    assert sorted(_values(spark, out)) == sorted(first + second)

    sample = rows.where("CAST(value AS STRING) = 'n7'").first()
    assert sample is not None and sample.key == b"n7" and sample.topic == topic and sample.timestampType == 0
    now = datetime.now(UTC).replace(tzinfo=None)  # the session time zone is UTC
    assert now - timedelta(minutes=10) < sample.timestamp <= now + timedelta(minutes=1)


@pytest.mark.timeout(180)
def test_starting_offsets_latest_skips_older_messages(
    spark: SparkSession, kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = new_topic(kafka_broker.bootstrap, "latest", partitions=3)
    produce(kafka_broker.bootstrap, topic, [f"old{i}" for i in range(200)])
    out = tmp_path / "out"
    query = _run_to_parquet(
        read_kafka_stream(spark, kafka_broker.bootstrap, topic, "latest", prefer_native=False),
        out,
        tmp_path / "checkpoint",
    )
    try:
        # "latest" is resolved by the first trigger: wait for it before producing the new messages.
        deadline = time.monotonic() + 90
        while not query.recentProgress:
            assert query.isActive and time.monotonic() < deadline, query.exception()
            time.sleep(0.2)
        new = [f"new{i}" for i in range(100)]
        produce(kafka_broker.bootstrap, topic, new)
        _drain(query)
    finally:
        if query.isActive:
            query.stop()
    assert sorted(_values(spark, out)) == sorted(new)


def test_native_kafka_detection(spark: SparkSession) -> None:
    """A class Spark always has is found, a missing one is not (and does not raise); the Kafka provider's
    answer matches what the JVM says (False on this machine, which has no spark-sql-kafka jar)."""
    assert jvm_class_loadable(spark, "org.apache.spark.sql.execution.datasources.parquet.ParquetFileFormat")
    assert not jvm_class_loadable(spark, "org.example.DoesNotExist")
    jvm = spark.sparkContext._jvm
    try:
        jvm.java.lang.Class.forName("org.apache.spark.sql.kafka010.KafkaSourceProvider")
        expected = True
    except Exception:
        expected = False
    assert native_kafka_available(spark) is expected
