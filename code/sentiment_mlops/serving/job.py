"""Streaming serving job: CSV files dropped into a bucket or JSON messages from Kafka, scored with
the model the MLflow registry names, hot-swapped without stopping, written to date-partitioned
Parquet exactly once (and optionally to a Kafka topic, at least once).

Shadow challenger: while the registry's `@challenger` alias (`--challenger-alias`) names a version of the
served model, every row is also scored with it, in the same pass, and its label, probability and version
go into the `challenger_*` columns beside the served prediction (NULL while there is no challenger). The
challenger never replaces the served prediction, and a missing, unloadable or failing challenger only
empties those columns: the stream goes on.

Entry script: `code/streaming_serving_mlflow_hdfs_kafka_optimize.py` (Dataproc's, `SERVING_ENTRY`);
`code/streaming_serving_mlflow_hdfs_kafka.py` is an alias of it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from sentiment_mlops.core.cli_flags import add_bool_flag
from sentiment_mlops.core.job_logging import configure_logging
from sentiment_mlops.core.settings import (
    CHALLENGER_ALIAS,
    DEFAULT_KAFKA_INPUT_TOPIC,
    DEFAULT_KAFKA_OUTPUT_TOPIC,
    DEFAULT_SERVING_MODEL,
)
from sentiment_mlops.core.spark_session import get_spark, job_settings
from sentiment_mlops.core.storage import join_uri, resolve_uri
from sentiment_mlops.registry import lookups as registry
from sentiment_mlops.registry import mlflow_credentials, spark_versions
from sentiment_mlops.registry.model_watcher import LoadedModel, ModelWatcher
from sentiment_mlops.registry.smoke_check import spark_smoke_check
from sentiment_mlops.serving import crash_point, prometheus_metrics
from sentiment_mlops.serving import sinks as serving_sinks
from sentiment_mlops.serving.file_source import ONE_FILE_PER_PARTITION

log = logging.getLogger("sentiment_mlops.serving")

DESCRIPTION = (
    "Streaming serving job: score CSV files dropped into a folder or JSON messages from Kafka with the model "
    "the MLflow registry names, hot-swap it without stopping, and write the predictions to date-partitioned "
    "Parquet (and optionally to a Kafka topic)."
)

# The same columns, types and order every batch, whatever model serves (see mlflow-spark notes:
# a schema change between batches breaks readers of the Parquet folder).
OUTPUT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "string"),
    ("text", "string"),
    ("label", "int"),
    ("event_timestamp", "timestamp"),
    ("source", "string"),
    ("source_row", "bigint"),
    ("prediction", "int"),
    ("probability", "double"),  # P(positive); null for models without probabilities (LinearSVC)
    ("raw_score", "double"),  # rawPrediction[1]: the margin for LinearSVC, the raw score otherwise
    ("model_name", "string"),
    ("model_version", "string"),
    # the shadow challenger's view of the same row: NULL when no challenger scored it
    ("challenger_prediction", "int"),
    ("challenger_probability", "double"),
    ("challenger_model_version", "string"),
    ("prediction_timestamp", "timestamp"),
    ("batch_id", "bigint"),
)
CHALLENGER_COLUMNS = ("challenger_prediction", "challenger_probability", "challenger_model_version")
_SERVED = "_served_row"  # the served row, packed while the challenger scores it (no name clashes)
QUARANTINE_COLUMNS = ("source", "source_row", "raw", "error", "quarantined_at")  # + stream, batch_id, date


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument("--source-type", choices=("file", "kafka"), default="file")
    p.add_argument(
        "--input-path", help="folder (or bucket root) watched for new CSV files, subfolders included (file source)"
    )
    p.add_argument("--kafka-bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--kafka-topic", default=DEFAULT_KAFKA_INPUT_TOPIC)
    p.add_argument("--starting-offsets", default="earliest", help="Kafka: earliest | latest | JSON offsets")
    p.add_argument("--output-path", required=True, help="predictions go to {output-path}/predictions/date=YYYY-MM-DD/")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    p.add_argument(
        "--mlflow-credentials-secret",
        default="",
        help="Secret Manager name of the MLflow credentials (registry.mlflow_credentials); else MLFLOW_TRACKING_* env",
    )
    p.add_argument("--model-name", default=DEFAULT_SERVING_MODEL)
    p.add_argument("--model-stage", default="Production", help="stage word (-> alias), alias, or version number")
    p.add_argument("--model-flavor", choices=("spark", "pyfunc"), default="spark")
    p.add_argument(
        "--challenger-alias",
        default=CHALLENGER_ALIAS,
        help="registry alias of a shadow challenger scored beside the served model while the alias exists "
        f"(challenger_* columns); '' or none: off (default {CHALLENGER_ALIAS})",
    )
    p.add_argument("--batch-interval-seconds", type=int, default=30)
    p.add_argument("--reload-interval-seconds", type=int, default=300)
    add_bool_flag(p, "--write-kafka", "also write the predictions to --kafka-output-topic")
    p.add_argument("--kafka-output-bootstrap", default=None, help="default: --kafka-bootstrap")
    p.add_argument("--kafka-output-topic", default=DEFAULT_KAFKA_OUTPUT_TOPIC)
    p.add_argument("--dead-letter-topic", default=None, help="Kafka topic for quarantined messages")
    p.add_argument("--quarantine-path", default=None, help="default: {output-path}/quarantine")
    p.add_argument("--metrics-path", default=None, help="default: {output-path}/_metrics/batches")
    p.add_argument("--max-files-per-trigger", type=int, default=None)
    p.add_argument("--max-offsets-per-trigger", type=int, default=None)
    add_bool_flag(p, "--include-features", "also write the TF-IDF feature vectors")
    p.add_argument("--run-seconds", type=float, default=0, help="stop after this long (0 = run until stopped)")
    add_bool_flag(p, "--available-now", "process what is there, then stop")
    prometheus_metrics.add_arguments(p)
    return p


def validate_args(args: argparse.Namespace) -> None:
    if args.source_type == "file" and not args.input_path:
        raise ValueError("--input-path is required with --source-type file")
    if args.source_type == "kafka" and not (args.kafka_bootstrap and args.kafka_topic):
        raise ValueError("--kafka-bootstrap and --kafka-topic are required with --source-type kafka")
    for name in ("batch_interval_seconds", "reload_interval_seconds"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    args.quarantine_path = args.quarantine_path or join_uri(args.output_path, "quarantine")
    args.metrics_path = args.metrics_path or join_uri(args.output_path, serving_sinks.METRICS_DIR)
    args.kafka_output_bootstrap = args.kafka_output_bootstrap or args.kafka_bootstrap
    args.challenger_alias = registry.challenger_alias(args.challenger_alias, args.model_stage)


# --- the model -------------------------------------------------------------------------------


def spark_model_loader(spark: SparkSession, flavor: str):
    """uri -> a function DataFrame(text, ...) -> DataFrame with prediction/probability/raw_score."""
    import mlflow

    def load(uri: str):
        if flavor == "pyfunc":
            udf = mlflow.pyfunc.spark_udf(spark, model_uri=uri, result_type="double", env_manager="local")

            def score_pyfunc(df: DataFrame) -> DataFrame:
                return (
                    df.withColumn("prediction", udf(F.struct(F.col("text"))))
                    .withColumn("probability", F.lit(None).cast("double"))
                    .withColumn("raw_score", F.lit(None).cast("double"))
                )

            return score_pyfunc
        flavors = mlflow.models.get_model_info(uri).flavors
        saved_by = (flavors.get("spark") or {}).get("pyspark_version")
        spark_versions.check_servable(uri, saved_by, spark.version)
        transform = jvm_transform(mlflow.spark.load_model(uri))

        def score_spark(df: DataFrame) -> DataFrame:
            out = transform(df)
            columns = set(out.columns)  # each .columns asks the JVM for the schema again
            probability = (
                vector_to_array(F.col("probability")).getItem(1)
                if "probability" in columns
                else F.lit(None).cast("double")
            )
            raw = vector_to_array(F.col("rawPrediction")).getItem(1) if "rawPrediction" in columns else None
            return out.withColumn("probability", probability).withColumn(
                "raw_score", raw if raw is not None else F.lit(None).cast("double")
            )

        return score_spark

    return load


def jvm_transform(model: Any) -> Any:
    """`model.transform` through the JVM pipeline, built once. PySpark's own transform copies every
    parameter of every stage to the JVM again on each call: a quarter of the per-batch cost of scoring
    a small batch (2026-12-01). Models without a JVM twin keep their own transform."""
    try:
        java_model = model._to_java()
    except Exception:  # noqa: BLE001 - a Python-only stage: no JVM pipeline, same results
        return model.transform

    def transform(df: DataFrame) -> DataFrame:
        return DataFrame(java_model.transform(df._jdf), df.sparkSession)

    return transform


# --- one micro-batch ------------------------------------------------------------------------


@dataclass
class BatchStats:
    batch_id: int
    rows_in: int = 0
    predicted: int = 0
    quarantined: int = 0
    model_version: str | None = None
    challenger_version: str | None = None  # the shadow challenger that scored the batch, if any
    latency_s_avg: float | None = None  # arrival (file modification / message time) -> batch commit
    latency_s_max: float | None = None
    seconds: float = 0.0
    started_at: str = ""
    empty_files: int = 0  # zero-byte, blank-only or header-only files: no record, but a trace
    arrival_avg: float | None = None  # epoch seconds, for the latency at commit
    arrival_min: float | None = None


@dataclass
class ServingState:
    args: argparse.Namespace
    watcher: ModelWatcher[Any]
    output_base: str
    quarantine_base: str
    metrics_base: str
    checkpoint: str
    stream_id: str | None = None
    totals: dict[str, int] = field(default_factory=lambda: {"predicted": 0, "quarantined": 0, "batches": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)
    exporter: prometheus_metrics.StreamExporter | None = None  # --metrics-port / --pushgateway-url
    challenger: ModelWatcher[Any] | None = None  # --challenger-alias (None: off)


def utc_timestamp(moment: datetime) -> Column:
    """A timestamp literal for `moment`, naive meaning UTC. PySpark turns a naive datetime into an
    instant with the driver's local time zone, so a naive UTC clock reading would land hours off on
    a laptop outside UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return F.lit(aware).cast("timestamp")


def score_batch(
    parsed: DataFrame,
    current: LoadedModel[Any],
    batch_id: int,
    now: datetime,
    include_features: bool,
    challenger: LoadedModel[Any] | None = None,
):
    """Good rows of a parsed batch -> the fixed output columns (serving_sinks adds `stream`; `date`
    is the folder name), with the shadow `challenger`'s prediction beside the served one when given."""
    good = parsed.filter(F.col("error").isNull()).select(
        "id", "text", "label", "event_timestamp", "source", "source_row"
    )
    scored = current.model(good)
    fixed = {
        "model_name": F.lit(current.name),
        "model_version": F.lit(current.version),
        "prediction_timestamp": utc_timestamp(now),
        "batch_id": F.lit(batch_id),
    }

    available = set(scored.columns)  # each .columns asks the JVM for the schema again

    def column(name: str, kind: str) -> Column:
        if name in fixed:
            return fixed[name].cast(kind).alias(name)
        if name in available and name not in CHALLENGER_COLUMNS:
            return F.col(name).cast(kind).alias(name)
        return F.lit(None).cast(kind).alias(name)

    out = scored.select(
        *(column(name, kind) for name, kind in OUTPUT_COLUMNS),
        *([F.col("features")] if include_features and "features" in available else []),
    )
    if challenger is not None:
        out = with_challenger(out, challenger)
    # Rows without an id get a stable one, so a replay produces the same keys.
    return out.withColumn(
        "id", F.coalesce(F.col("id"), F.concat_ws(":", F.col("source"), F.col("source_row").cast("string")))
    )


def with_challenger(served: DataFrame, challenger: LoadedModel[Any]) -> DataFrame:
    """`served` with the challenger's label, P(positive) and version in the challenger_* columns. The
    served row rides along packed in one struct column while the challenger's pipeline adds its own
    columns (its `prediction`, `features`, ...), then comes back unchanged: one pass, no join."""
    packed = served.select(F.struct(*[F.col(c) for c in served.columns]).alias(_SERVED), F.col("text"))
    scored = challenger.model(packed)
    has_probability = "probability" in scored.columns
    mine = {
        "challenger_prediction": F.col("prediction").cast("int"),
        "challenger_probability": F.col("probability").cast("double") if has_probability else F.lit(None),
        "challenger_model_version": F.lit(challenger.version),
    }
    kinds = dict(OUTPUT_COLUMNS)
    return scored.select(
        *(mine[c].cast(kinds[c]).alias(c) if c in mine else F.col(f"{_SERVED}.{c}").alias(c) for c in served.columns)
    )


def count_columns() -> list[Column]:
    """The batch's counts over parsed rows: rows in, quarantined, and arrival times (epoch seconds)."""
    arrival = F.col("arrival_timestamp").cast("double")
    return [
        F.count(F.lit(1)).alias("rows_in"),
        F.count("error").alias("quarantined"),
        F.avg(arrival).alias("arrival_avg"),
        F.min(arrival).alias("arrival_min"),
    ]


def take_counts(values: dict[str, Any], stats: BatchStats) -> None:
    stats.rows_in, stats.quarantined = int(values["rows_in"]), int(values["quarantined"])
    stats.predicted = stats.rows_in - stats.quarantined
    stats.arrival_avg, stats.arrival_min = values["arrival_avg"], values["arrival_min"]


def count_batch(parsed: DataFrame, stats: BatchStats) -> None:
    """The counts in a pass of their own (when the write's observation has none to give)."""
    row = parsed.agg(*count_columns()).first()
    assert row is not None
    take_counts(row.asDict(), stats)


def commit_latency(stats: BatchStats) -> None:
    """Seconds from arrival to now (the batch is about to commit): the serving latency, not data age."""
    now = time.time()
    if stats.arrival_avg is not None and stats.arrival_min is not None:
        stats.latency_s_avg = round(now - stats.arrival_avg, 3)
        stats.latency_s_max = round(now - stats.arrival_min, 3)


def write_predictions(state: ServingState, predictions: DataFrame, date: str, stream: str, batch_id: int) -> None:
    """Parquet for the batch (and the Kafka topic with --write-kafka, from the same cached scores)."""
    if state.args.write_kafka:
        predictions = predictions.cache()
    try:
        # the sink writes batch_id (after stream) itself, so every output has the same trailing columns
        serving_sinks.write_batch_parquet(predictions.drop("batch_id"), state.output_base, date, stream, batch_id)
        if state.args.write_kafka:
            from sentiment_mlops.serving.kafka.sink import write_json_messages

            write_json_messages(
                predictions.drop("features"), state.args.kafka_output_bootstrap, state.args.kafka_output_topic
            )
    finally:
        if state.args.write_kafka:
            predictions.unpersist()


def score_and_write(
    state: ServingState, parsed: DataFrame, current: LoadedModel[Any], stats: BatchStats, now: datetime, stream: str
) -> None:
    """Score the good rows and write them in one pass. A batch that fails
    with the shadow challenger is written again without it; when that succeeds the challenger was the
    cause and is rejected (the served model's failures still fail the batch)."""
    challenger = state.challenger.current if state.challenger is not None else None
    if challenger is not None and challenger.version == current.version:
        challenger = None  # the alias names the served version: nothing to compare
    date = now.strftime("%Y-%m-%d")
    predictions = score_batch(parsed, current, stats.batch_id, now, state.args.include_features, challenger)
    try:
        write_predictions(state, predictions, date, stream, stats.batch_id)
    except Exception as exc:  # retried without the challenger below, else re-raised
        if challenger is None:
            raise
        log.warning("batch %d failed with challenger v%s; writing it without", stats.batch_id, challenger.version)
        serving_sinks.delete_earlier_attempts(parsed.sparkSession, state.output_base, stream, stats.batch_id)
        predictions = score_batch(parsed, current, stats.batch_id, now, state.args.include_features)
        write_predictions(state, predictions, date, stream, stats.batch_id)
        assert state.challenger is not None
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        state.challenger.reject(challenger.version, f"failed a batch: {type(exc).__name__}: {text}")
        challenger = None
    stats.challenger_version = challenger.version if challenger else None


def quarantine_bad_rows(state: ServingState, parsed: DataFrame, stats: BatchStats, now: datetime, stream: str) -> None:
    """Write the rows that failed parsing (`stats.quarantined` of them) to the quarantine folder, and to
    the dead-letter topic when reading Kafka with --dead-letter-topic."""
    if not stats.quarantined:
        return
    quarantine = parsed.filter(F.col("error").isNotNull()).select(
        "source", "source_row", "raw", "error",
        utc_timestamp(now).alias("quarantined_at"),
    )  # fmt: skip
    date = now.strftime("%Y-%m-%d")
    serving_sinks.write_batch_parquet(quarantine, state.quarantine_base, date, stream, stats.batch_id)
    log.warning("batch %d: %d rows quarantined under %s", stats.batch_id, stats.quarantined, state.quarantine_base)
    if state.args.dead_letter_topic and state.args.source_type == "kafka":
        from sentiment_mlops.serving.kafka.sink import send_dead_letters

        send_dead_letters(
            [r.asDict() for r in quarantine.collect()],
            state.args.kafka_output_bootstrap,
            state.args.dead_letter_topic,
        )


def record_batch(state: ServingState, spark: SparkSession, stats: BatchStats, model_name: str, stream: str) -> None:
    """The batch's metrics file, the running totals and the log line."""
    # Written inside the batch, so it is committed (or replayed and overwritten) with it.
    serving_sinks.write_batch_metrics(
        spark, state.metrics_base, stream, stats.batch_id, metrics_record(stats, model_name, stream)
    )
    with state.lock:
        state.totals["predicted"] += stats.predicted
        state.totals["quarantined"] += stats.quarantined
        state.totals["batches"] += 1
    if state.exporter is not None:
        state.exporter.observe_batch(state, stats, stream)
    log.info(
        "batch %d: %d rows in, %d predicted, %d quarantined, %d empty files, model v%s, %.2fs",
        stats.batch_id, stats.rows_in, stats.predicted, stats.quarantined, stats.empty_files, stats.model_version,
        stats.seconds,
    )  # fmt: skip


def parse_batch(
    state: ServingState, spark: SparkSession, raw_batch: DataFrame, stats: BatchStats
) -> tuple[DataFrame, DataFrame]:
    """The source's rows -> (parsed rows, the cached frame to unpersist after the batch)."""
    if state.args.source_type == "kafka":
        from sentiment_mlops.serving.parsing import parse_kafka_batch

        parsed = parse_kafka_batch(raw_batch).cache()  # kafka_py would read the broker again
        return parsed, parsed
    from sentiment_mlops.serving.file_source import parse_file_batch, planned_files

    batch = parse_file_batch(raw_batch, planned_files(spark, state.checkpoint, stats.batch_id))
    stats.empty_files = len(batch.empty_files)
    return batch.parsed, batch.cached


def _run_batch(state: ServingState, spark: SparkSession, df: DataFrame, batch_id: int) -> None:
    """foreachBatch's callback: process the batch (its stats go to the batch metrics, not to Spark)."""
    process_batch(state, spark, df, batch_id)


def process_batch(state: ServingState, spark: SparkSession, raw_batch: DataFrame, batch_id: int) -> BatchStats:
    """One micro-batch (foreachBatch): parse, score the good rows with the current model, quarantine
    the rest, record metrics. Earlier attempts of the same batch id are deleted first, so a replay
    overwrites instead of duplicating. Returns the batch's counts and timings."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    current = state.watcher.current  # read once: the whole batch uses this version
    if current is None:
        raise RuntimeError("no model loaded")
    if state.stream_id is None:
        state.stream_id = serving_sinks.stream_id(spark, state.checkpoint)
    stream = state.stream_id
    stats = BatchStats(batch_id=batch_id, model_version=current.version, started_at=now.isoformat())
    parsed, cached = parse_batch(state, spark, raw_batch, stats)
    try:
        for base in (state.output_base, state.quarantine_base):
            serving_sinks.delete_earlier_attempts(spark, base, stream, batch_id)
        # The counts ride along the predictions' write (no pass of their own), so it runs even when
        # every row is quarantined; the empty file that leaves is removed.
        observation = Observation(f"serving-batch-{batch_id}")
        score_and_write(state, parsed.observe(observation, *count_columns()), current, stats, now, stream)
        try:
            take_counts(observation.get, stats)
        except Exception as exc:  # noqa: BLE001 - e.g. a challenger retry; the counts then take a pass
            log.warning("batch %d: no counts from the write (%s); counting apart", batch_id, exc)
            count_batch(parsed, stats)
        if not stats.predicted:  # the write's schema-only file, removed as an earlier attempt would be
            serving_sinks.delete_earlier_attempts(spark, state.output_base, stream, batch_id)
        quarantine_bad_rows(state, parsed, stats, now, stream)
    finally:
        cached.unpersist()
    stats.seconds = round(time.perf_counter() - started, 3)
    commit_latency(stats)
    record_batch(state, spark, stats, current.name, stream)
    # tests only (see crash_point): a no-op unless its variable names this batch on a local master
    crash_point.after_write(batch_id, spark.sparkContext.master or "")
    return stats


def metrics_record(stats: BatchStats, model_name: str, stream: str) -> dict[str, Any]:
    return {
        "batch_id": stats.batch_id,
        "stream": stream,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows_in": stats.rows_in,
        "predicted": stats.predicted,
        "quarantined": stats.quarantined,
        "batch_duration_s": stats.seconds,
        "rows_per_s": round(stats.rows_in / stats.seconds, 1) if stats.seconds else None,
        "latency_s": stats.latency_s_avg,
        "latency_s_max": stats.latency_s_max,
        "empty_files": stats.empty_files,
        "model_name": model_name,
        "model_version": stats.model_version,
        "challenger_model_version": stats.challenger_version,
    }


class ProgressLogListener(StreamingQueryListener):
    """One log line per trigger with Spark's own rates, for operators reading the driver log."""

    last_batch_id: int = -1

    def onQueryStarted(self, event) -> None:
        log.info("streaming query started: id=%s run=%s", event.id, event.runId)

    def onQueryProgress(self, event) -> None:
        p = event.progress
        self.last_batch_id = p.batchId
        if p.numInputRows:
            log.info(
                "progress batch %d: %d source records, %.1f/s in, %.1f/s processed, trigger %s ms",
                p.batchId, p.numInputRows, p.inputRowsPerSecond or 0.0, p.processedRowsPerSecond or 0.0,
                (p.durationMs or {}).get("triggerExecution"),
            )  # fmt: skip

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        log.info("streaming query terminated: %s", event.exception or "stopped")


# --- the query ------------------------------------------------------------------------------


def source_stream(spark: SparkSession, args: argparse.Namespace, input_uri: str | None) -> DataFrame:
    if args.source_type == "kafka":
        from sentiment_mlops.serving.kafka.source_choice import read_kafka_stream

        return read_kafka_stream(
            spark, args.kafka_bootstrap, args.kafka_topic, args.starting_offsets, args.max_offsets_per_trigger
        )
    from sentiment_mlops.serving.file_source import csv_stream, with_file_columns

    return with_file_columns(csv_stream(spark.readStream, args.max_files_per_trigger).load(input_uri))


def start_query(spark: SparkSession, args: argparse.Namespace, state: ServingState) -> StreamingQuery:
    settings = job_settings(spark)
    input_uri = resolve_uri(args.input_path, settings) if args.input_path else None
    if input_uri and "://" not in input_uri:
        os.makedirs(input_uri, exist_ok=True)  # an empty local bucket folder is a valid start
    if args.source_type == "file":
        for key, value in ONE_FILE_PER_PARTITION.items():
            spark.conf.set(key, value)  # the query copies the session's settings when it starts
    stream = source_stream(spark, args, input_uri)
    writer = (
        stream.writeStream.queryName(f"sentiment-serving-{args.source_type}")
        .option("checkpointLocation", resolve_uri(args.checkpoint, settings))
        .foreachBatch(lambda df, batch_id: _run_batch(state, spark, df, batch_id))
    )
    writer = (
        writer.trigger(availableNow=True)
        if args.available_now
        else writer.trigger(processingTime=f"{args.batch_interval_seconds} seconds")
    )
    return writer.start()


def build_state(spark: SparkSession, args: argparse.Namespace) -> ServingState:
    settings = job_settings(spark)
    loader = spark_model_loader(spark, args.model_flavor)

    def watcher_of(stage_or_alias: str, optional: bool = False) -> ModelWatcher[Any]:
        # The challenger gets the served model's loader and smoke check; the check's passthrough columns
        # also prove it keeps input columns, which is how the served row rides along in with_challenger.
        return ModelWatcher(
            tracking_uri=args.mlflow_uri,
            name=args.model_name,
            stage_or_alias=stage_or_alias,
            loader=loader,
            smoke_check=spark_smoke_check(spark, passthrough=("id", "source")),
            poll_seconds=args.reload_interval_seconds,
            optional=optional,
        )

    watcher = watcher_of(args.model_stage)
    challenger = watcher_of(args.challenger_alias, optional=True) if args.challenger_alias else None
    return ServingState(
        args=args,
        watcher=watcher,
        output_base=join_uri(resolve_uri(args.output_path, settings), serving_sinks.PREDICTIONS_DIR),
        quarantine_base=resolve_uri(args.quarantine_path, settings),
        metrics_base=resolve_uri(args.metrics_path, settings),
        checkpoint=resolve_uri(args.checkpoint, settings),
        challenger=challenger,
    )


def start_challenger(state: ServingState) -> None:
    """First look for the shadow challenger, then its poller. Nothing here stops the stream: no alias,
    a version failing its smoke check or an unreachable registry leave the challenger_* columns NULL."""
    if state.challenger is None:
        return
    try:
        state.challenger.check_once()
    except Exception as exc:  # registry unreachable: the poller tries again
        log.warning("challenger @%s not checked (%s); retried every poll", state.challenger.alias, exc)
    cur = state.challenger.current
    log.info(
        "shadow challenger: %s",
        f"{cur.name} v{cur.version} (@{cur.alias})" if cur else f"none (no usable @{state.challenger.alias})",
    )
    state.challenger.start()


def run(spark: SparkSession, args: argparse.Namespace) -> ServingState:
    """Load the model, start the query and the registry poller; block until stopped."""
    import mlflow

    mlflow.set_tracking_uri(args.mlflow_uri)
    state = build_state(spark, args)
    loaded = state.watcher.load_initial()
    log.info("serving %s v%s from %s", loaded.name, loaded.version, registry.model_uri(loaded.name, args.model_stage))
    listener = ProgressLogListener()
    spark.streams.addListener(listener)
    input_uri = resolve_uri(args.input_path, job_settings(spark)) if args.input_path else None
    state.exporter = prometheus_metrics.start(
        spark, args, state.watcher, input_uri, state.checkpoint, challenger=state.challenger
    )
    start_challenger(state)
    query = start_query(spark, args, state)
    state.watcher.start()
    try:
        if args.run_seconds:
            query.awaitTermination(args.run_seconds)
            if query.isActive:
                query.stop()
        else:
            query.awaitTermination()
    finally:
        state.watcher.stop()
        if state.challenger is not None:
            state.challenger.stop()
        # Progress events arrive asynchronously; let the last one land before the callback goes.
        progress: dict[str, Any] = query.lastProgress or {}
        last = int(progress.get("batchId", -1))
        deadline = time.monotonic() + 5
        while listener.last_batch_id < last and time.monotonic() < deadline:
            time.sleep(0.1)
        spark.streams.removeListener(listener)
        if state.exporter is not None:
            state.exporter.stop()
    if query.exception():
        raise RuntimeError(f"streaming query failed: {query.exception()}")
    log.info("stopped after %(batches)d batches: %(predicted)d predicted, %(quarantined)d quarantined", state.totals)
    return state


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_arg_parser().parse_args(argv)
    try:
        validate_args(args)
        if args.mlflow_credentials_secret:
            mlflow_credentials.apply_secret(args.mlflow_credentials_secret)
        registry.check_tracking_server(args.mlflow_uri)
    except (ValueError, registry.MlflowUnreachableError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    spark = get_spark(
        f"sentiment-serving-{args.source_type}",
        extra={
            "spark.sql.files.ignoreMissingFiles": "true",
            "spark.sql.streaming.metricsEnabled": "true",
            **ONE_FILE_PER_PARTITION,
        },
    )
    try:
        run(spark, args)
    except RuntimeError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
