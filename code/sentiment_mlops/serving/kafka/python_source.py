"""Kafka as a Spark Structured Streaming source, with or without Spark's Kafka connector jar.

Spark's native `kafka` source lives in the spark-sql-kafka-0-10 jar, which Dataproc ships but this machine
cannot download (Maven is unreachable and no Debian or PyPI package carries it). `kafka_py` is a PySpark
Python Data Source on kafka-python with the native source's option names, offset JSON and output schema, so
the serving job reads both the same way; `source_choice.read_kafka_stream` picks whichever is available.

Semantics of `kafka_py` (same as the native source where it matters):

* Offsets are ``{"topic": {"partition": next_offset}}``, written to the query checkpoint by Spark. Nothing is
  committed to Kafka and no consumer group is used (Tansu's group join is slow and its group API partial).
* Each micro-batch has one input partition per Kafka partition with new data; read() does assign + seek and
  returns exactly the records with start <= offset < end, so a batch re-run after a failure or a restart from
  the checkpoint reads the same records again: exactly-once into a sink that overwrites per batch id.
* The end of a batch comes from the TRUE high watermark (:func:`true_end_offsets`),
  right on both Tansu (whose ListOffsets(LATEST) is short by up to a record batch) and Apache Kafka.
* ``maxOffsetsPerTrigger`` spreads the limit over partitions in proportion to their backlog, like the native
  source. Partitions that appear during the query start at their earliest offset.
* Options: ``kafka.bootstrap.servers``, ``subscribe`` (one topic or a comma list), ``startingOffsets``
  (``earliest`` | ``latest`` | JSON, -2 = earliest and -1 = latest per partition; ignored on restart, where the
  checkpoint wins), ``maxOffsetsPerTrigger``, ``failOnDataLoss`` (default true: fail when records in a planned
  range are gone, e.g. deleted by retention), ``kafkaConsumer.pollTimeoutMs`` (default 120000: how long a read
  may see no progress before failing the task).
* Not supported: ``subscribePattern``, ``assign``, headers, ``minPartitions``, batch (non-streaming) reads.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows
from pyspark.sql.types import (
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from sentiment_mlops.serving.kafka.end_offsets import true_end_offsets
from sentiment_mlops.serving.kafka.spark_env import SHORT_NAME, local_worker_python

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


# Spark's native Kafka source schema, column for column (kafka010.KafkaRecordToRowConverter.kafkaSchema).
KAFKA_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
    ]
)

EARLIEST = -2  # the native source's JSON markers in startingOffsets
LATEST = -1
_ARROW_BATCH_ROWS = 10_000
IDLE_PROBE_INTERVAL_S = 0.25  # see KafkaPyStreamReader.latestOffset

Offsets = dict[str, dict[str, int]]  # {"topic": {"0": next_offset}}: the checkpointed form


def _opt(options: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = options.get(name, default)
    return None if value is None else str(value)


def _as_offsets(raw: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, int], int]:
    return {(topic, int(part)): int(off) for topic, parts in raw.items() for part, off in parts.items()}


def _to_json_offsets(flat: Mapping[tuple[str, int], int]) -> Offsets:
    """Checkpoint form, ordered by topic then partition: Spark compares offsets as JSON text, so the same
    positions must always serialise the same way."""
    out: Offsets = {}
    for topic, part in sorted(flat):
        out.setdefault(topic, {})[str(part)] = int(flat[(topic, part)])
    return out


def _consumer(bootstrap: str, **extra: Any):
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        client_id="sentiment-mlops-kafka-py",
        **extra,
    )


def _beginning_offsets(bootstrap: str, topic: str, partitions: list[int]) -> dict[int, int]:
    from kafka import TopicPartition

    consumer = _consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        return {tp.partition: int(off) for tp, off in consumer.beginning_offsets(tps).items()}
    finally:
        consumer.close()


def _split_limit(backlog: dict[tuple[str, int], int], limit: int) -> dict[tuple[str, int], int]:
    """How many records each partition may contribute when at most `limit` are allowed in all.

    Proportional to each partition's backlog (like the native source), with the remainder handed out by
    largest fraction so the total is exactly min(limit, sum(backlog)) and a tiny limit still progresses.
    """
    total = sum(backlog.values())
    if total <= limit:
        return dict(backlog)
    share = {tp: (limit * n) // total for tp, n in backlog.items()}
    left = limit - sum(share.values())
    by_fraction = sorted(backlog, key=lambda tp: ((limit * backlog[tp]) % total, backlog[tp]), reverse=True)
    for tp in by_fraction:
        if left == 0:
            break
        if share[tp] < backlog[tp]:
            share[tp] += 1
            left -= 1
    return share


@dataclass(frozen=True)
class KafkaRange(InputPartition):
    """One Spark task: records [start, end) of one Kafka partition. Pickled to the executor."""

    bootstrap: str
    topic: str
    partition: int
    start: int
    end: int
    poll_timeout_ms: int
    fail_on_data_loss: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", f"{self.topic}-{self.partition}[{self.start},{self.end})")


class _ArrowColumns:
    """Records of one Kafka partition gathered column by column, emptied into an Arrow batch by flush()."""

    def __init__(self, rng: KafkaRange) -> None:
        from pyspark.sql.pandas.types import to_arrow_schema

        self.rng = rng
        self.schema = to_arrow_schema(KAFKA_SCHEMA, timezone="UTC")
        self.cols: dict[str, list[Any]] = {name: [] for name in self.schema.names}

    def __len__(self) -> int:
        return len(self.cols["offset"])

    def append(self, rec: Any) -> None:
        cols = self.cols
        cols["key"].append(rec.key)
        cols["value"].append(rec.value)
        cols["offset"].append(rec.offset)
        cols["timestamp"].append(rec.timestamp * 1000)  # ms -> us
        cols["timestampType"].append(-1 if rec.timestamp_type is None else int(rec.timestamp_type))

    def flush(self) -> pa.RecordBatch:
        import pyarrow as pa

        cols, schema, n = self.cols, self.schema, len(self)
        arrays = [
            pa.array(cols["key"], type=pa.binary()),
            pa.array(cols["value"], type=pa.binary()),
            pa.array([self.rng.topic] * n, type=schema.field("topic").type),
            pa.array([self.rng.partition] * n, type=pa.int32()),
            pa.array(cols["offset"], type=pa.int64()),
            pa.array(cols["timestamp"], type=pa.int64()).cast(schema.field("timestamp").type),
            pa.array(cols["timestampType"], type=pa.int32()),
        ]
        for values in cols.values():
            values.clear()
        return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _take_records(
    consumer: Any, tp: Any, rng: KafkaRange, records: list[Any], expected: int, out: _ArrowColumns
) -> int:
    """Append the records of one poll that fall in [expected, rng.end) to `out`; returns the next
    expected offset (the consumer's position when offsets have gaps)."""
    for rec in records:
        if rec.offset < expected:
            continue  # a batch may start before the seek position (compressed batches)
        if rec.offset >= rng.end:
            break
        if rec.offset > expected and rng.fail_on_data_loss and expected == rng.start:
            _check_data_loss(consumer, tp, rng, expected, rec.offset)
        out.append(rec)
        expected = rec.offset + 1
    # Offsets can have gaps (transaction markers, compaction): the consumer's position still advances.
    position = consumer.position(tp)
    if position is not None and position > expected:
        expected = min(position, rng.end)
    return expected


def read_range(rng: KafkaRange) -> Iterator[pa.RecordBatch]:
    """Records of `rng` as Arrow batches in the KAFKA_SCHEMA layout (Arrow skips per-value conversion)."""
    from kafka import TopicPartition

    tp = TopicPartition(rng.topic, rng.partition)
    consumer = _consumer(
        rng.bootstrap,
        auto_offset_reset="earliest",
        max_poll_records=_ARROW_BATCH_ROWS,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    out = _ArrowColumns(rng)
    try:
        consumer.assign([tp])
        consumer.seek(tp, rng.start)
        expected = rng.start
        last_progress = time.monotonic()
        while expected < rng.end:
            records = consumer.poll(timeout_ms=500).get(tp, [])
            expected = _take_records(consumer, tp, rng, records, expected, out)
            if records:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > rng.poll_timeout_ms / 1000:
                raise TimeoutError(
                    f"kafka_py: no records from {rng.topic}-{rng.partition} at offset {expected} for "
                    f"{rng.poll_timeout_ms} ms (range {rng.start}-{rng.end}, broker {rng.bootstrap})"
                )
            if len(out) >= _ARROW_BATCH_ROWS:
                yield out.flush()
        if len(out):
            yield out.flush()
    finally:
        consumer.close()


def _check_data_loss(consumer: Any, tp: Any, rng: KafkaRange, expected: int, got: int) -> None:
    """First record after the seek is past the start: fail if the skipped offsets are below the log start
    (deleted), the way the native source does with failOnDataLoss=true."""
    log_start = consumer.beginning_offsets([tp])[tp]
    if log_start > expected:
        raise RuntimeError(
            f"kafka_py: offsets {expected}-{log_start - 1} of {rng.topic}-{rng.partition} are gone "
            f"(log starts at {log_start}); set failOnDataLoss=false to skip them"
        )


class KafkaPyStreamReader(DataSourceStreamReader):
    """Driver-side planning (offsets, limits, input partitions); runs in Spark's Python planner process."""

    def __init__(self, options: Mapping[str, str]) -> None:
        bootstrap = _opt(options, "kafka.bootstrap.servers")
        subscribe = _opt(options, "subscribe")
        for unsupported in ("subscribePattern", "assign"):
            if _opt(options, unsupported):
                raise ValueError(f"kafka_py supports only the 'subscribe' option, not {unsupported!r}")
        if not bootstrap:
            raise ValueError("kafka_py needs option kafka.bootstrap.servers")
        if not subscribe:
            raise ValueError("kafka_py needs option subscribe (a topic or a comma-separated list)")
        self.bootstrap = bootstrap
        self.topics = sorted({t.strip() for t in subscribe.split(",") if t.strip()})
        self.starting = (_opt(options, "startingOffsets", "latest") or "latest").strip()
        max_per_trigger = _opt(options, "maxOffsetsPerTrigger")
        self.max_per_trigger = int(max_per_trigger) if max_per_trigger else None
        if self.max_per_trigger is not None and self.max_per_trigger <= 0:
            raise ValueError(f"maxOffsetsPerTrigger must be positive, got {self.max_per_trigger}")
        self.fail_on_data_loss = (_opt(options, "failOnDataLoss", "true") or "true").lower() != "false"
        self.poll_timeout_ms = int(_opt(options, "kafkaConsumer.pollTimeoutMs", "120000") or 120000)
        self._latest: Offsets | None = None
        self._initial: Offsets | None = None
        self._idle_since: float | None = None

    # -- offsets ---------------------------------------------------------------------------------------
    def _true_ends(self) -> dict[tuple[str, int], int]:
        return {(t, p): off for t in self.topics for p, off in true_end_offsets(self.bootstrap, t).items()}

    def _earliest(self, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for topic in sorted({t for t, _ in wanted}):
            parts = [p for t, p in wanted if t == topic]
            out.update({(topic, p): off for p, off in _beginning_offsets(self.bootstrap, topic, parts).items()})
        return out

    def initialOffset(self) -> Offsets:
        """Where a NEW query starts (a restarted one resumes from its checkpoint instead).

        Resolved once per reader: Spark asks again on every trigger until the first batch runs, and
        re-resolving `latest` each time would skip whatever arrived in between.
        """
        if self._initial is None:
            self._initial = self._resolve_start()
        return self._initial

    def _resolve_start(self) -> Offsets:
        ends = self._true_ends()
        mode = self.starting.lower()
        if mode == "latest":
            return _to_json_offsets(ends)
        if mode == "earliest":
            return _to_json_offsets(self._earliest(list(ends)))
        try:
            spec = _as_offsets(json.loads(self.starting))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"startingOffsets must be 'earliest', 'latest' or JSON like {{\"topic\":{{\"0\":5}}}}: {exc}"
            ) from exc
        missing = sorted(set(ends) - set(spec))
        if missing:
            raise ValueError(
                "startingOffsets JSON must name every partition of the subscribed topics (as Spark's kafka "
                f"source requires); missing: {', '.join(f'{t}-{p}' for t, p in missing)}"
            )
        unknown = sorted(set(spec) - set(ends))
        if unknown:
            raise ValueError(f"startingOffsets names partitions that do not exist: {unknown}")
        earliest = self._earliest([tp for tp, off in spec.items() if off == EARLIEST])
        start = {tp: ends[tp] if off == LATEST else earliest.get(tp, off) for tp, off in spec.items()}
        return _to_json_offsets(start)

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self.max_per_trigger) if self.max_per_trigger else ReadAllAvailable()

    def latestOffset(self, start: Offsets, limit: ReadLimit) -> Offsets:
        """End of the next micro-batch: the true ends, capped by `limit` (maxOffsetsPerTrigger).

        Each call asks the broker with a fresh consumer (~30 ms). Without a processing-time trigger Spark
        calls this back to back while the topic is idle, so after a call that found nothing new the next
        one waits until IDLE_PROBE_INTERVAL_S has passed: at most that much extra latency, a few probes a
        second instead of dozens on a shared 2-core machine.
        """
        if self._idle_since is not None:
            time.sleep(max(0.0, self._idle_since + IDLE_PROBE_INTERVAL_S - time.monotonic()))
        result = self._next_end(start, limit)
        self._idle_since = time.monotonic() if result == start else None
        return result

    def _next_end(self, start: Offsets, limit: ReadLimit) -> Offsets:
        begin = _as_offsets(start)
        ends = self._true_ends()
        self._latest = _to_json_offsets(ends)
        new = [tp for tp in ends if tp not in begin]
        if new:
            log.info("kafka_py: new partitions %s start at earliest", new)
            begin.update(self._earliest(new))
        shrunk = sorted(tp for tp, off in begin.items() if tp in ends and ends[tp] < off)
        if shrunk:
            # The log is shorter than our position: the topic was recreated or an in-memory broker restarted.
            detail = ", ".join(f"{t}-{p}: {begin[(t, p)]} -> {ends[(t, p)]}" for t, p in shrunk)
            if self.fail_on_data_loss:
                raise RuntimeError(
                    f"kafka_py: log end went backwards ({detail}); the topic was recreated or the broker lost its "
                    "data. Delete the query checkpoint, or set failOnDataLoss=false to restart those partitions "
                    "from their earliest offset"
                )
            log.warning("kafka_py: log end went backwards (%s); rereading those partitions from earliest", detail)
            begin.update(self._earliest(shrunk))
        backlog = {tp: max(ends[tp] - off, 0) for tp, off in begin.items() if tp in ends}
        if isinstance(limit, ReadMaxRows):
            backlog = _split_limit(backlog, int(limit.max_rows))
        # Partitions that vanished from metadata keep their position rather than disappearing from the offset.
        end = {tp: off + backlog.get(tp, 0) for tp, off in begin.items()}
        return _to_json_offsets(end)

    def reportLatestOffset(self) -> Offsets | None:
        return self._latest

    def partitions(self, start: Offsets, end: Offsets) -> list[KafkaRange]:
        begin = _as_offsets(start)
        stop = _as_offsets(end)
        # New partitions, and (failOnDataLoss=false) partitions whose log went backwards, start at earliest.
        restart = [tp for tp in stop if tp not in begin or stop[tp] < begin[tp]]
        if restart:
            begin.update(self._earliest(restart))
        return [
            KafkaRange(
                bootstrap=self.bootstrap,
                topic=topic,
                partition=part,
                start=begin[(topic, part)],
                end=stop[(topic, part)],
                poll_timeout_ms=self.poll_timeout_ms,
                fail_on_data_loss=self.fail_on_data_loss,
            )
            for topic, part in sorted(stop)
            if stop[(topic, part)] > begin[(topic, part)]
        ]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, KafkaRange)
        return read_range(partition)

    def commit(self, end: Offsets) -> None:
        """Nothing to do: progress lives in Spark's checkpoint, not in a consumer group."""


class KafkaPyDataSource(DataSource):
    """`spark.readStream.format("kafka_py")`: see the module docstring for options and semantics."""

    @classmethod
    def name(cls) -> str:
        return SHORT_NAME

    def schema(self) -> StructType:
        return KAFKA_SCHEMA

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return KafkaPyStreamReader(self.options)


def register_kafka_py(spark: SparkSession) -> None:
    """Register `kafka_py` in this session. The class is pickled now, by reference: the Python workers
    (planner and executors) import this module, so they must run an interpreter that has it."""
    with local_worker_python(spark):
        spark.dataSource.register(KafkaPyDataSource)
