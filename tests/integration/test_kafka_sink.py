"""The Kafka sink: one JSON message per row keyed by id, from Spark partitions; dead letters from the driver.
Real broker, real Spark, no mocks."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from sentiment_mlops.backends.local.kafka_broker import KafkaBroker
from sentiment_mlops.serving.kafka.sink import send_dead_letters, write_json_messages
from sentiment_mlops.serving.kafka.source_choice import read_kafka_stream
from tests.fixtures_kafka import consume_all, kafka_broker_fixture, new_topic, produce  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore:.*is deprecated. Use files:DeprecationWarning"),
]


def test_write_json_messages_one_message_per_row_with_keys(spark: SparkSession, kafka_broker: KafkaBroker) -> None:
    topic = new_topic(kafka_broker.bootstrap, "preds", partitions=3)
    when = datetime(2024, 1, 31, 12, 30, 5, tzinfo=UTC)
    rows = [
        (i, f"tweet {i}", float(i % 2), when, date(2024, 1, 31), None, Vectors.dense([0.25, 0.75]))
        for i in range(1, 401)
    ]
    schema = StructType(
        [
            StructField("id", LongType()),
            StructField("text", StringType()),
            StructField("prediction", DoubleType()),
            StructField("ts", TimestampType()),
            StructField("day", DateType()),
            StructField("note", StringType()),
            StructField("probability", VectorUDT()),
        ]
    )
    df = spark.createDataFrame(rows, schema).repartition(4)

    sent = write_json_messages(df, kafka_broker.bootstrap, topic)
    assert sent == 400

    messages = consume_all(kafka_broker.bootstrap, topic)
    assert len(messages) == 400
    assert len({p for p, *_ in messages}) == 3  # keyed: spread over the partitions
    by_key = {key.decode(): json.loads(value) for _, _, key, value in messages}
    assert sorted(by_key, key=int) == [str(i) for i in range(1, 401)]
    first = by_key["7"]
    assert first["id"] == 7 and first["text"] == "tweet 7" and first["prediction"] == 1.0
    assert datetime.fromisoformat(first["ts"]) == when  # ISO 8601 with the zone
    assert first["day"] == "2024-01-31"
    assert "note" in first and first["note"] is None  # nulls kept: every message has the same fields
    assert first["probability"] == [0.25, 0.75]  # ML vector -> JSON array

    only = new_topic(kafka_broker.bootstrap, "preds-narrow", partitions=1)
    assert write_json_messages(df.limit(5), kafka_broker.bootstrap, only, value_cols=["prediction"]) == 5
    narrow = consume_all(kafka_broker.bootstrap, only)
    assert all(set(json.loads(v)) == {"prediction"} and k is not None for _, _, k, v in narrow)

    with pytest.raises(ValueError, match="not in the DataFrame"):
        write_json_messages(df, kafka_broker.bootstrap, topic, key_col="tweet_id")


def test_stream_to_kafka_through_foreach_batch(spark: SparkSession, kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """The serving job's shape: kafka_py in, foreachBatch, JSON messages out, keyed by the input key."""
    source = new_topic(kafka_broker.bootstrap, "tweets", partitions=3)
    sink = new_topic(kafka_broker.bootstrap, "scored", partitions=3)
    produce(kafka_broker.bootstrap, source, [f"t{i}" for i in range(300)])

    def score(batch: DataFrame, batch_id: int) -> None:
        scored = batch.selectExpr("CAST(key AS STRING) AS id", "CAST(value AS STRING) AS text", "timestamp")
        write_json_messages(scored, kafka_broker.bootstrap, sink)

    stream = read_kafka_stream(spark, kafka_broker.bootstrap, source, max_offsets_per_trigger=200, prefer_native=False)
    query = stream.writeStream.foreachBatch(score).option("checkpointLocation", str(tmp_path / "ck")).start()
    try:
        query.processAllAvailable()
    finally:
        query.stop()
    assert query.exception() is None
    out = consume_all(kafka_broker.bootstrap, sink)
    assert sorted(k.decode() for _, _, k, _ in out) == sorted(f"t{i}" for i in range(300))
    assert all(json.loads(v)["text"] == k.decode() for _, _, k, v in out)


def test_send_dead_letters(kafka_broker: KafkaBroker) -> None:
    topic = new_topic(kafka_broker.bootstrap, "dead", partitions=1)
    records = [
        {"id": "a1", "error": "empty text", "received_at": datetime(2024, 5, 1, 8, 0, tzinfo=UTC)},
        {"id": None, "error": "no id", "day": date(2024, 5, 2), "raw": b"\xff"},
    ]
    assert send_dead_letters(records, kafka_broker.bootstrap, topic) == 2
    assert send_dead_letters([], kafka_broker.bootstrap, topic) == 0
    (p0, o0, k0, v0), (_, _, k1, v1) = sorted(consume_all(kafka_broker.bootstrap, topic))
    assert (p0, o0, k0) == (0, 0, b"a1") and k1 is None
    assert json.loads(v0) == {"id": "a1", "error": "empty text", "received_at": "2024-05-01T08:00:00+00:00"}
    assert json.loads(v1)["day"] == "2024-05-02"
