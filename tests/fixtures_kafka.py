"""Kafka fixtures and helpers: one real Tansu broker per test session, real producers and consumers.

Import the fixture into a test module with `from tests.fixtures_kafka import kafka_broker_fixture  # noqa: F401`
and ask for it as `kafka_broker`: the function has another name than the fixture so that test parameters
named `kafka_broker` do not shadow the import (ruff F811).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator

import pytest

from sentiment_mlops.backends.local.kafka_broker import KafkaBroker, create_topics, true_end_offsets
from sentiment_mlops.backends.local.mlflow_server import free_port


@pytest.fixture(scope="session", name="kafka_broker")
def kafka_broker_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A started in-memory Tansu broker on a free port; dies with the test process even if it crashes."""
    broker = KafkaBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("kafka")).start()
    try:
        yield broker
    finally:
        broker.stop()


def new_topic(bootstrap: str, prefix: str, partitions: int = 3) -> str:
    """A fresh topic per test, so tests sharing the session broker never see each other's messages."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [topic], partitions)
    return topic


def produce(bootstrap: str, topic: str, values: Iterable[str], keyed: bool = True) -> int:
    """Send each value (keyed by itself, so keys spread over partitions); returns how many were acknowledged.

    linger_ms batches several records per request: the case where Tansu's ListOffsets(LATEST) is wrong.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    try:
        futures = [producer.send(topic, key=v.encode() if keyed else None, value=v.encode()) for v in values]
        producer.flush(timeout=60)
        for f in futures:
            f.get(timeout=60)
        return len(futures)
    finally:
        producer.close(timeout=10)


def consume_all(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every record of `topic` as (partition, offset, key, value), read with assign + seek up to the true ends."""
    from kafka import KafkaConsumer, TopicPartition

    ends = true_end_offsets(bootstrap, topic)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    out: list[tuple[int, int, bytes | None, bytes]] = []
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp.partition] for tp in tps):
            assert time.monotonic() < deadline, f"timed out reading {topic} up to {ends}"
            for tp, records in consumer.poll(timeout_ms=200).items():
                out.extend((tp.partition, r.offset, r.key, r.value) for r in records if r.offset < ends[tp.partition])
        return out
    finally:
        consumer.close()
