"""The true end offsets of a Kafka topic, right on both Apache Kafka and Tansu (the local broker).

Plain kafka-python client code with no broker of its own: the `kafka_py` source plans its batches with it,
and the local backend, tests and benchmarks use it to count what a topic holds.
"""

from __future__ import annotations

import time


class KafkaTopicError(RuntimeError):
    """The topic does not exist, or the broker gave no high watermark in time."""


def true_end_offsets(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """The real log end offset (next offset to be written) of each partition of `topic`.

    Tansu's ListOffsets(LATEST) answers the base offset of the last record batch + 1, short by up to a batch.
    The high watermark carried by a Fetch response is right on both Tansu and Apache Kafka, so: ask
    ListOffsets, fetch from (reported - 1) with a fresh consumer (a reused one returned stale ends), and take
    max(reported, high watermark). On Apache Kafka both numbers agree; an offset below the log start (retention)
    is reset to the end by the consumer and still yields the high watermark.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=1024,  # only the high watermark is wanted, not the records
        client_id="sentiment-mlops-end-offsets",
    )
    try:
        deadline = time.monotonic() + timeout_s
        parts = consumer.partitions_for_topic(topic)
        while not parts:
            if time.monotonic() >= deadline:
                raise KafkaTopicError(f"topic {topic!r} not found on {bootstrap}")
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        reported = consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, max(reported[tp] - 1, 0))
        highwater: dict[int, int] = {}
        while len(highwater) < len(tps):
            if time.monotonic() >= deadline:
                missing = sorted(tp.partition for tp in tps if tp.partition not in highwater)
                raise KafkaTopicError(f"no high watermark for {topic} partitions {missing} within {timeout_s:.0f}s")
            consumer.poll(timeout_ms=100, max_records=1, update_offsets=False)
            for tp in tps:
                if tp.partition not in highwater:
                    hw = consumer.highwater(tp)
                    if hw is not None:
                        highwater[tp.partition] = max(hw, reported[tp])
                        consumer.pause(tp)
        return dict(sorted(highwater.items()))
    finally:
        consumer.close()
