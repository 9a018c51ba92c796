"""The serving job on the Kafka source (kafka_py here; the native connector on Dataproc): JSON in,
Parquet and a Kafka topic out, bad messages to quarantine and a dead-letter topic. Real broker."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from kafka import KafkaProducer

from sentiment_mlops.backends.local.kafka_broker import create_topics
from sentiment_mlops.core.storage import local_path
from sentiment_mlops.serving import job as serving_job
from tests.fixtures_kafka import consume_all, kafka_broker_fixture, new_topic  # noqa: F401
from tests.fixtures_serving import SERVING_MODEL, served_version_fixture  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.mark.timeout(400)
def test_kafka_json_in_parquet_and_topic_out(spark, kafka_broker, mlflow_server, served_version) -> None:
    bootstrap = kafka_broker.bootstrap
    topic = new_topic(bootstrap, "tweets")
    out_topic, dead_topic = f"{topic}-predictions", f"{topic}-dead"
    create_topics(bootstrap, [out_topic, dead_topic], partitions=1)
    good = [{"id": f"k{i}", "text": f"tweet number {i} {'love it' if i % 2 else 'hate it'}"} for i in range(40)]
    # poison that must be scored: a non-finite label (no label), a lone surrogate, a year-1 timestamp
    good += [{"id": "k-inf", "text": "label overflows", "label": 1e999}, {"id": "k-sur", "text": "\ud800 lone"},
             {"id": "k-y1", "text": "year one", "timestamp": "0001-01-01T00:00:00+05:00"}]  # fmt: skip
    bad = [b"{not json", b"\xff\xfe\xfa", json.dumps({"id": "no-text"}).encode(), json.dumps({"text": ""}).encode(),
           b'{"text": "deep", "x": ' + b"[" * 2000 + b"]" * 2000 + b"}",
           b'{"text": "long number", "label": ' + b"9" * 5000 + b"}"]  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for msg in good:
        producer.send(topic, key=msg["id"].encode(), value=json.dumps(msg).replace("Infinity", "1e999").encode())
    for raw in bad:
        producer.send(topic, value=raw)
    producer.flush()
    producer.close()

    tag = "kafkaserve"
    args = serving_job.build_arg_parser().parse_args(
        [
            "--source-type", "kafka", "--kafka-bootstrap", bootstrap, "--kafka-topic", topic,
            "--output-path", f"gs://{tag}-out", "--checkpoint", f"gs://{tag}-ckpt/q", "--mlflow-uri", mlflow_server,
            "--model-name", SERVING_MODEL, "--model-stage", served_version, "--batch-interval-seconds", "1",
            "--max-offsets-per-trigger", "20", "--write-kafka", "--kafka-output-topic", out_topic,
            "--dead-letter-topic", dead_topic,
        ]
    )  # fmt: skip
    serving_job.validate_args(args)
    state = serving_job.build_state(spark, args)
    state.watcher.load_initial()
    query = serving_job.start_query(spark, args, state)
    try:
        query.processAllAvailable()
    finally:
        query.stop()

    out = pd.read_parquet(local_path(f"gs://{tag}-out") / "predictions")
    assert sorted(out["id"]) == sorted(m["id"] for m in good)
    assert out["source"].str.startswith(f"{topic}/").all()  # topic/partition/offset of each message
    assert (out["model_version"] == served_version).all()
    assert out["batch_id"].nunique() >= 2  # maxOffsetsPerTrigger split the 49 messages

    quarantine = pd.read_parquet(local_path(f"gs://{tag}-out") / "quarantine")
    reasons = sorted(e.split(":")[0] for e in quarantine["error"])
    assert reasons == ["empty text", "missing text", "undecodable bytes", *["unparseable JSON"] * 3]
    assert out.set_index("id").loc["k-inf", "label"] is None or pd.isna(out.set_index("id").loc["k-inf", "label"])

    published = consume_all(bootstrap, out_topic)
    keys = sorted(k.decode() for _, _, k, _ in published)
    assert keys == sorted(m["id"] for m in good)  # one message per prediction, keyed by id
    first = json.loads(published[0][3])
    assert {"id", "text", "prediction", "probability", "model_version"} <= set(first)
    assert len(consume_all(bootstrap, dead_topic)) == len(bad)
