"""The local Tansu broker: lifecycle, port clashes, topics, true end offsets, CLI. Real processes, no mocks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sentiment_mlops.backends.local.kafka_broker import (
    KafkaBroker,
    ServiceError,
    create_topics,
    topic_partitions,
    true_end_offsets,
)
from sentiment_mlops.backends.local.mlflow_server import free_port, port_in_use
from tests.fixtures_kafka import kafka_broker_fixture, new_topic, produce  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:.*is deprecated. Use files:DeprecationWarning"),
]


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child: reap it so it does not linger as a zombie
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


def test_start_and_stop_own_broker(tmp_path: Path) -> None:
    broker = KafkaBroker(port=free_port(), data_dir=tmp_path).start(timeout=30)
    pid = broker.pid()
    assert pid is not None and broker.pid_file.read_text().strip() == str(pid)
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert "ready" in broker.log_file.read_text() or port_in_use(broker.port)
    assert broker.stop() == 0  # Tansu exits cleanly on SIGTERM
    assert _gone(pid, 5)
    assert not broker.pid_file.exists()
    assert not port_in_use(broker.port)
    assert broker.stop() is None  # stopping twice is harmless


def test_port_taken_by_running_broker(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    same_dir = KafkaBroker(port=kafka_broker.port, data_dir=kafka_broker.data_dir)
    with pytest.raises(ServiceError, match="taken by a Tansu broker already"):
        same_dir.start()
    with pytest.raises(ServiceError, match="taken"):
        KafkaBroker(port=kafka_broker.port, data_dir=tmp_path).start()
    assert kafka_broker.running()  # the failed starts left the real one alone


def test_port_taken_by_other_program(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServiceError, match="taken by another program"):
            KafkaBroker(port=port, data_dir=tmp_path).start()
    assert not (tmp_path / f"tansu-{port}.pid").exists()


def test_broker_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """Orphaned brokers after crashed test runs are what PR_SET_PDEATHSIG prevents."""
    port = free_port()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sentiment_mlops.backends.local.kafka_broker import KafkaBroker\n"
        f"b = KafkaBroker(port={port}, data_dir=Path({str(tmp_path)!r})).start()\n"
        "print(b.pid(), flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        broker_pid = int(parent.stdout.readline())
        assert port_in_use(port)
    finally:
        parent.send_signal(signal.SIGKILL)  # no cleanup code runs: only the kernel can stop the broker
        parent.wait(timeout=10)
    assert _gone(broker_pid, 10), "broker outlived the process that started it"


def test_create_topics_is_idempotent(kafka_broker: KafkaBroker) -> None:
    topic = new_topic(kafka_broker.bootstrap, "idem", partitions=3)
    create_topics(kafka_broker.bootstrap, [topic, topic], partitions=5)  # exists: left alone, no error
    other = f"{topic}-b"
    create_topics(kafka_broker.bootstrap, [topic, other], partitions=2)
    assert topic_partitions(kafka_broker.bootstrap, topic) == [0, 1, 2]
    assert topic_partitions(kafka_broker.bootstrap, other) == [0, 1]


def test_true_end_offsets_equal_messages_produced(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaConsumer, TopicPartition

    topic = new_topic(kafka_broker.bootstrap, "ends", partitions=3)
    empty = true_end_offsets(kafka_broker.bootstrap, topic)
    assert empty == {0: 0, 1: 0, 2: 0}

    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all", linger_ms=20)
    try:
        metas = [producer.send(topic, key=str(i).encode(), value=b"x") for i in range(5000)]
        producer.flush(timeout=60)
        per_partition = Counter(f.get(timeout=60).partition for f in metas)
    finally:
        producer.close()
    assert len(per_partition) == 3  # keys spread over every partition

    ends = true_end_offsets(kafka_broker.bootstrap, topic)
    assert ends == dict(sorted(per_partition.items()))
    assert sum(ends.values()) == 5000

    # What a plain ListOffsets(LATEST) says: never more than the truth (on Tansu, often less).
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, enable_auto_commit=False)
    try:
        reported = consumer.end_offsets([TopicPartition(topic, p) for p in ends])
    finally:
        consumer.close()
    assert all(reported[TopicPartition(topic, p)] <= ends[p] for p in ends)


def test_cli_start_status_stop(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SENTIMENT_HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "sentiment_mlops.backends.local.kafka_broker"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args, "--port", str(port)], env=env, capture_output=True, text=True, timeout=60)

    data_dir = tmp_path / "run" / "kafka"
    try:
        started = run("start", "--topics", "cli-a,cli-b", "--partitions", "2")
        assert started.returncode == 0, started.stderr
        assert f"127.0.0.1:{port}" in started.stdout
        assert (data_dir / f"tansu-{port}.pid").exists()
        assert topic_partitions(f"127.0.0.1:{port}", "cli-b") == [0, 1]

        status = run("status")
        assert status.returncode == 0 and "answering" in status.stdout

        again = run("start")
        assert again.returncode != 0
        err = again.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ERROR:") and "taken" in err[0]

        stopped = run("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert not (data_dir / f"tansu-{port}.pid").exists()
        assert run("status").returncode == 1
    finally:
        KafkaBroker(port=port, data_dir=data_dir).stop()  # whatever an assertion left running
