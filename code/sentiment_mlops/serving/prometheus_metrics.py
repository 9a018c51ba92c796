"""Prometheus metrics of the streaming serving job: a scrape endpoint on the driver and/or pushes to a
Pushgateway, both off unless asked for (`--metrics-port`, `--pushgateway-url`).

Every name starts with `sentiment_stream_` (the online server's are `sentiment_online_*` and the reference
model server's `model_*`). Counts come from the same per-batch numbers as the batch metrics JSON files;
predictions by class and quarantined rows by reason are read back from the batch's committed Parquet, so
they count what was written. Model state is read from the registry watcher at scrape/push time. A
Pushgateway that cannot be reached is logged once, counted, and tried again after the next batch (and on
the idle heartbeat): it never stops the stream.

`prometheus_client` is imported only when one of the two is set, so a cluster without it still serves.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from sentiment_mlops.core.storage import join_uri
from sentiment_mlops.registry.model_watcher import ModelWatcher
from sentiment_mlops.registry.watcher_metrics import WatcherCollector
from sentiment_mlops.serving import sinks as serving_sinks
from sentiment_mlops.serving import stream_backlog

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

ENV_PORT = "SENTIMENT_STREAM_METRICS_PORT"
ENV_HOST = "SENTIMENT_STREAM_METRICS_HOST"
ENV_PUSHGATEWAY = "SENTIMENT_PUSHGATEWAY_URL"
PUSH_JOB = "sentiment-stream"  # the `job` label of pushed series: the scrape job's name in prometheus.yml
HEARTBEAT_PUSH_S = 60.0  # an idle stream still pushes this often, so "no push for 10 min" means down
BACKLOG_CACHE_S = 5.0
MAX_REASONS = 20  # distinct quarantine reasons kept as label values; later ones count as "other"
REASON_CHARS = 60
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 15, 30, 45, 60, 90, 120, 180, 300, 600, 1800, 3600)
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's Prometheus flags; defaults from the environment, unset = off."""
    env_port = os.environ.get(ENV_PORT, "").strip()
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env_port) if env_port else None,
        help=f"serve Prometheus metrics on this driver port (env {ENV_PORT}; default: off)",
    )
    parser.add_argument(
        "--metrics-host",
        default=os.environ.get(ENV_HOST, "127.0.0.1"),
        help=f"address the metrics endpoint binds to (env {ENV_HOST}; default 127.0.0.1)",
    )
    parser.add_argument(
        "--pushgateway-url",
        default=os.environ.get(ENV_PUSHGATEWAY) or None,
        help=f"also push the metrics to this Pushgateway after each batch (env {ENV_PUSHGATEWAY}; default: off)",
    )


def reason_label(error: str | None) -> str:
    """A bounded label value for a quarantine reason: its text before any ':' detail, shortened."""
    text = (error or "unknown").split(":", 1)[0].strip().lower()
    return text[:REASON_CHARS] or "unknown"


class _BacklogCollector:
    """Input not read yet, measured when collected and cached for BACKLOG_CACHE_S."""

    def __init__(self, unit: str, measure: Callable[[], int]) -> None:
        self.unit = unit
        self._measure = measure
        self._cached: tuple[float, int | None] = (0.0, None)
        self._failed = False
        self.errors = 0

    def describe(self) -> Iterable[Any]:
        return []

    def value(self) -> int | None:
        at, value = self._cached
        if time.monotonic() - at < BACKLOG_CACHE_S:
            return value
        try:
            value = self._measure()
            self._failed = False
        except Exception as exc:  # noqa: BLE001 - a gauge left out, never a failed scrape
            self.errors += 1
            if not self._failed:
                log.warning("could not measure the stream's backlog (%s); retrying at the next scrape", exc)
            self._failed = True
            value = None
        self._cached = (time.monotonic(), value)
        return value

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        value = self.value()
        if value is not None:
            gauge = GaugeMetricFamily(
                "sentiment_stream_backlog", "Input not read yet (files or Kafka messages)", labels=["unit"]
            )
            gauge.add_metric([self.unit], float(value))
            yield gauge
        yield CounterMetricFamily(
            "sentiment_stream_backlog_errors", "Backlog measurements that failed", value=self.errors
        )


class StreamMetrics:
    """The stream's registry and what updates it: batches (from the job), progress (Spark's listener)."""

    def __init__(
        self,
        watcher: ModelWatcher[Any],
        source_type: str,
        registry: CollectorRegistry | None = None,
        challenger: ModelWatcher[Any] | None = None,
    ):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = registry or CollectorRegistry()
        self.source_type = source_type
        self.rows_in = Counter("sentiment_stream_rows_in", "Records read by the stream", registry=r)
        self.predicted = Counter("sentiment_stream_rows_predicted", "Records scored and written", registry=r)
        self.quarantined = Counter(
            "sentiment_stream_rows_quarantined", "Records quarantined, by reason", ["reason"], registry=r
        )
        self.predictions = Counter(
            "sentiment_stream_predictions", "Predictions written, by class", ["sentiment"], registry=r
        )
        self.batches = Counter("sentiment_stream_batches", "Micro-batches committed", registry=r)
        self.batch_duration = Histogram(
            "sentiment_stream_batch_duration_seconds", "Seconds to process one micro-batch",
            buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "sentiment_stream_commit_latency_seconds",
            "Per micro-batch: seconds from the arrival of its oldest record (file modification or Kafka "
            "message time) to the batch's commit",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.last_latency = Gauge(
            "sentiment_stream_last_batch_latency_seconds", "Latency of the last batch", ["stat"], registry=r
        )
        self.last_batch = Gauge(
            "sentiment_stream_last_batch_timestamp_seconds", "When the last micro-batch was committed", registry=r
        )
        self.last_batch_id = Gauge("sentiment_stream_last_batch_id", "Id of the last micro-batch", registry=r)
        self.last_progress = Gauge(
            "sentiment_stream_last_progress_timestamp_seconds",
            "Last trigger of the streaming query, with or without data (a heartbeat)",
            registry=r,
        )
        self.input_rate = Gauge(
            "sentiment_stream_input_rows_per_second", "Spark's input rate over the last trigger", registry=r
        )
        self.processed_rate = Gauge(
            "sentiment_stream_processed_rows_per_second", "Spark's processing rate over the last trigger", registry=r
        )
        self.push_failures = Counter(
            "sentiment_stream_pushgateway_failures", "Pushes to the Pushgateway that failed", registry=r
        )
        self.breakdown_errors = Counter(
            "sentiment_stream_metrics_errors", "Batches whose class/reason breakdown could not be read", registry=r
        )
        Gauge("sentiment_stream_start_timestamp_seconds", "When the job started", registry=r).set_to_current_time()
        r.register(WatcherCollector(watcher, "sentiment_stream"))
        if challenger is not None:  # the shadow challenger: sentiment_stream_challenger_model_version, ...
            r.register(WatcherCollector(challenger, "sentiment_stream_challenger"))
        for sentiment in ("negative", "positive"):  # zeros from the start, so rates exist
            self.predictions.labels(sentiment)
        self._reasons: set[str] = set()
        self.end_offset: Any = None  # the last progress's source end offset (Kafka backlog)
        self.on_batch: Callable[[], None] = lambda: None

    def observe_batch(
        self, stats: Any, by_class: dict[int, int] | None = None, by_reason: dict[str, int] | None = None
    ) -> None:
        """Count one committed micro-batch (`stats`: serving.job.BatchStats)."""
        self.batches.inc()
        self.rows_in.inc(stats.rows_in)
        self.predicted.inc(stats.predicted)
        self.batch_duration.observe(stats.seconds)
        self.last_batch.set_to_current_time()
        self.last_batch_id.set(stats.batch_id)
        if stats.latency_s_max is not None:
            self.latency.observe(max(float(stats.latency_s_max), 0.0))
            self.last_latency.labels("max").set(stats.latency_s_max)
        if stats.latency_s_avg is not None:
            self.last_latency.labels("avg").set(stats.latency_s_avg)
        for label, count in (by_class or {}).items():
            self.predictions.labels("positive" if int(label) == 1 else "negative").inc(count)
        for reason, count in (by_reason or {}).items():
            self.quarantined.labels(self._bounded(reason)).inc(count)
        self.on_batch()

    def _bounded(self, reason: str) -> str:
        label = reason_label(reason)
        if label not in self._reasons and len(self._reasons) >= MAX_REASONS:
            return "other"
        self._reasons.add(label)
        return label

    def observe_progress(self, progress: Any) -> None:
        """A StreamingQueryProgress: rates, heartbeat and the source's end offset."""
        self.last_progress.set_to_current_time()
        self.input_rate.set(float(progress.inputRowsPerSecond or 0.0))
        self.processed_rate.set(float(progress.processedRowsPerSecond or 0.0))
        sources = list(progress.sources or [])
        if sources:
            self.end_offset = sources[0].endOffset

    def heartbeat(self) -> None:
        self.last_progress.set_to_current_time()


class MetricsListener(StreamingQueryListener):
    """Feeds Spark's progress and idle events to the metrics (after each trigger, on Spark's bus)."""

    def __init__(self, metrics: StreamMetrics) -> None:
        self.metrics = metrics

    def onQueryStarted(self, event) -> None:  # noqa: N802 - Spark's names
        self.metrics.heartbeat()

    def onQueryProgress(self, event) -> None:  # noqa: N802
        self.metrics.observe_progress(event.progress)

    def onQueryIdle(self, event) -> None:  # noqa: N802
        self.metrics.heartbeat()

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        pass


class Pusher:
    """Pushes the registry from a thread of its own: after each batch (`request`) and every
    HEARTBEAT_PUSH_S. A failure is logged once until a push succeeds again, and counted."""

    def __init__(self, url: str, registry: CollectorRegistry, failures: Any, grouping_key: dict[str, str]) -> None:
        self.url = url
        self.registry = registry
        self.failures = failures
        self.grouping_key = grouping_key
        self.pushes = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="pushgateway", daemon=True)

    def start(self) -> Pusher:
        self._thread.start()
        return self

    def request(self) -> None:
        self._wake.set()

    def push_once(self) -> bool:
        from prometheus_client import push_to_gateway

        try:
            push_to_gateway(self.url, job=PUSH_JOB, registry=self.registry, grouping_key=self.grouping_key, timeout=5)
        except Exception as exc:  # noqa: BLE001 - monitoring must never stop the stream
            self.failures.inc()
            if not self._failing:
                log.warning(
                    "cannot push metrics to the Pushgateway at %s (%s); retrying after each batch", self.url, exc
                )
            self._failing = True
            return False
        if self._failing:
            log.info("pushing metrics to the Pushgateway at %s again", self.url)
        self._failing = False
        self.pushes += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(HEARTBEAT_PUSH_S)
            self._wake.clear()
            if not self._stop.is_set():
                self.push_once()

    def stop(self) -> None:
        """Stop the thread after one last push (the final counts)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.push_once()


class StreamExporter:
    """What the job holds while it runs: the metrics, the HTTP endpoint, the pusher and the listener."""

    def __init__(
        self, spark: SparkSession, metrics: StreamMetrics, server: Any = None, pusher: Pusher | None = None
    ) -> None:
        self.spark = spark
        self.metrics = metrics
        self.server = server
        self.pusher = pusher
        self.listener = MetricsListener(metrics)
        if pusher is not None:
            metrics.on_batch = pusher.request

    @property
    def port(self) -> int | None:
        return int(self.server.server_port) if self.server is not None else None

    def observe_batch(self, state: Any, stats: Any, stream: str) -> None:
        """After a batch is written (`state`: serving.job.ServingState): count it, with its classes and
        reasons read back from its Parquet. Never raises: a metrics problem must not fail the batch."""
        by_class: dict[int, int] | None = None
        by_reason: dict[str, int] | None = None
        try:
            by_class, by_reason = batch_breakdown(self.spark, state.output_base, state.quarantine_base, stream, stats)
        except Exception as exc:  # noqa: BLE001
            self.metrics.breakdown_errors.inc()
            log.warning(
                "batch %d: could not read back its classes and reasons for the metrics: %s", stats.batch_id, exc
            )
        try:
            self.metrics.observe_batch(stats, by_class, by_reason)
        except Exception:  # noqa: BLE001
            log.exception("batch %d: could not update the Prometheus metrics", stats.batch_id)

    def stop(self) -> None:
        try:
            self.spark.streams.removeListener(self.listener)
        except Exception:  # noqa: BLE001 - the session may be stopping
            pass
        if self.pusher is not None:
            self.pusher.stop()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _batch_files(base: str, stream: str, batch_id: int) -> str:
    return join_uri(base, "date=*", f"{serving_sinks.batch_prefix(stream, batch_id)}*")


def batch_breakdown(
    spark: SparkSession, output_base: str, quarantine_base: str, stream: str, stats: Any
) -> tuple[dict[int, int], dict[str, int]]:
    """(predictions by class, quarantined rows by reason) of a written batch, from its Parquet files."""
    by_class: dict[int, int] = {}
    by_reason: dict[str, int] = {}
    if stats.predicted:
        rows = spark.read.parquet(_batch_files(output_base, stream, stats.batch_id)).groupBy("prediction").count()
        by_class = {int(r[0]): int(r[1]) for r in rows.collect() if r[0] is not None}
    if stats.quarantined:
        rows = spark.read.parquet(_batch_files(quarantine_base, stream, stats.batch_id)).groupBy("error").count()
        for r in rows.collect():
            by_reason[r[0] or "unknown"] = by_reason.get(r[0] or "unknown", 0) + int(r[1])
    return by_class, by_reason


def _backlog(
    spark: SparkSession, args: argparse.Namespace, input_uri: str | None, checkpoint: str, metrics: StreamMetrics
):
    if args.source_type == "kafka":
        return _BacklogCollector(
            "offsets", lambda: stream_backlog.kafka_backlog(args.kafka_bootstrap, args.kafka_topic, metrics.end_offset)
        )
    assert input_uri is not None
    return _BacklogCollector(
        "files",
        lambda: stream_backlog.file_backlog(spark, input_uri, checkpoint),
    )


def start(
    spark: SparkSession,
    args: argparse.Namespace,
    watcher: ModelWatcher[Any],
    input_uri: str | None,
    checkpoint: str,
    challenger: ModelWatcher[Any] | None = None,
) -> StreamExporter | None:
    """The exporter `args` ask for (None when neither --metrics-port nor --pushgateway-url is set):
    the endpoint is listening and the listener registered when this returns."""
    port = getattr(args, "metrics_port", None)
    push_url = getattr(args, "pushgateway_url", None)
    if port is None and not push_url:
        return None
    metrics = StreamMetrics(watcher, args.source_type, challenger=challenger)
    metrics.registry.register(_backlog(spark, args, input_uri, checkpoint, metrics))
    server = None
    if port is not None:
        from prometheus_client import start_http_server

        server, _ = start_http_server(port, addr=args.metrics_host, registry=metrics.registry)
        log.info("Prometheus metrics on http://%s:%d/metrics", args.metrics_host, server.server_port)
    pusher = None
    if push_url:
        instance = f"{socket.gethostname()}:{args.source_type}"
        pusher = Pusher(push_url, metrics.registry, metrics.push_failures, {"instance": instance}).start()
        log.info("pushing Prometheus metrics to %s (job %s, instance %s)", push_url, PUSH_JOB, instance)
    exporter = StreamExporter(spark, metrics, server, pusher)
    spark.streams.addListener(exporter.listener)
    return exporter
