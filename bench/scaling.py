"""Benchmark (not a test): training and serving against rows and Spark workers, for the Dataproc sizing.

    .venv/bin/python bench/scaling.py [--sizes 25000,50000,100000] [--modes local,cluster]
        [--serving-workers 1,2] [--serving-files 5 --rows-per-file 10000] [--out bench/results/scaling.json]

Every job is the one a user's DAG submits (the `sentiment_mlops.jobs` specs), started by the local job
runner with `spark-submit` against a temporary MLflow server (SQLite) and SENTIMENT_HOME:

1. training: the training job with its defaults (all three models, the promotion gate) and `--max-rows N`,
   on `--local-master` (default local[2]: one JVM, two cores) and on a local Spark standalone cluster of
   two workers (1 core and `--worker-memory` each; driver and executors in separate JVMs, the code from
   the zip, as on Dataproc); wall time from submit to DONE, and the job's own stage seconds from its
   training_summary.json;
2. serving: the streaming job (file source, 1 s trigger) pinned to the logistic-regression version of the
   last training run, on a cluster of each `--serving-workers` size: a 200-row warm-up file per worker,
   then `--serving-files` files of `--rows-per-file` tweets dropped at once (bench/serving.py's file burst);
   rows/s from the job's per-batch metrics.

Prints one table per part and writes the JSON. A failed job is recorded with its log tail and the rest go
on. Every cluster, job and server it starts is stopped on the way out, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from serving_common import (  # noqa: E402
    DEFAULT_INPUT,
    ROOT,
    TRIGGER_S,
    Scenario,
    TweetFeed,
    batch_window,
    drop_csv,
    finish,
    load_tweets,
    mlflow_server,
    read_metrics,
    rnd,
    summarize_batches,
    wait_metric_rows,
)
from train import stage_table  # noqa: E402

if TYPE_CHECKING:
    from sentiment_mlops.backends.local.jobs import LocalJobController
    from sentiment_mlops.backends.local.spark_cluster import SparkCluster
    from sentiment_mlops.jobs import DataprocTarget

BUCKET = "bench-scaling"
LR = "logisticregression"
WARMUP_ROWS = 200  # per worker: one file each, so every executor has started its Python worker


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--input",
        default=os.environ.get("SENTIMENT140_SAMPLE", str(DEFAULT_INPUT)),
        help="two-column Sentiment140 CSV (default: SENTIMENT140_SAMPLE, else the shared sample)",
    )
    parser.add_argument("--sizes", type=ints, default=[25_000, 50_000, 100_000], help="training --max-rows values")
    parser.add_argument("--modes", default="local,cluster", help="where to train: local (--local-master), cluster")
    parser.add_argument("--serving-workers", type=ints, default=[1, 2], help="cluster sizes for the stream")
    parser.add_argument("--serving-files", type=int, default=5)
    parser.add_argument("--rows-per-file", type=int, default=10_000)
    parser.add_argument("--serving-train-rows", type=int, default=20_000,
                        help="rows of the LR model trained for serving when no training run made one")  # fmt: skip
    parser.add_argument("--local-master", default="local[2]")
    parser.add_argument("--worker-memory", default="1g", help="each worker's and executor's memory")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds for each job or wait")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary SENTIMENT_HOME")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scaling.json"))
    opts = parser.parse_args(argv)
    opts.modes = [m.strip() for m in opts.modes.split(",") if m.strip()]
    if set(opts.modes) - {"local", "cluster"}:
        parser.error(f"--modes: local and/or cluster, got {opts.modes}")
    return opts


def machine_facts() -> dict[str, Any]:
    from pyspark import __version__ as pyspark_version

    from sentiment_mlops.backends.local.spark_cluster import java_binary

    kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    java = subprocess.run([java_binary(), "-version"], capture_output=True, text=True, check=False).stderr
    return {"cpus": os.cpu_count(), "ram_gib": round(kib / 2**20, 1), "java": java.splitlines()[0] if java else "",
            "pyspark": pyspark_version, "python": sys.version.split()[0], "platform": platform.platform(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def upload_code(target: DataprocTarget) -> None:
    """Entry scripts and a fresh package zip into the local code bucket, as the DAG's first task does."""
    from sentiment_mlops import jobs
    from sentiment_mlops.core.storage import local_path
    from sentiment_mlops.jobs.packaging import build_package_zip

    code = local_path(target.code_uri)
    code.mkdir(parents=True, exist_ok=True)
    for entry in (jobs.TRAINING_ENTRY, jobs.SERVING_ENTRY):
        shutil.copy(ROOT / "code" / entry, code / entry)
    build_package_zip(code / jobs.PACKAGE_ZIP)


def controller(home: Path, master_url: str | None) -> LocalJobController:
    from sentiment_mlops.backends.local.jobs import LocalJobController
    from sentiment_mlops.core.settings import Settings

    return LocalJobController(Settings(backend="local", home=home, spark_master=master_url))


@contextmanager
def spark_cluster(home: Path, workers: int, memory: str) -> Iterator[tuple[SparkCluster, float]]:
    """A standalone master and `workers` workers on free ports; yields it and its start-up seconds."""
    from sentiment_mlops.backends.local.mlflow_server import free_port
    from sentiment_mlops.backends.local.spark_cluster import SparkCluster
    from sentiment_mlops.core.settings import Settings

    cluster = SparkCluster(Settings(home=home).spark_cluster_dir, port=free_port(), ui_port=free_port(),
                           workers=workers, worker_memory=memory)  # fmt: skip
    t0 = time.perf_counter()
    try:
        cluster.start(timeout=600)
        yield cluster, time.perf_counter() - t0
    finally:
        cluster.stop()


def failure(ctl: LocalJobController, job_id: str, what: str) -> str:
    record = ctl.get(job_id)
    tail = "\n".join(ctl.log_tail(job_id, 25))
    return f"{what}: job {job_id} {record.state}: {record.details}\n{tail}"


# --------------------------------------------------------------------------------------------
# Training.


def train(
    ctl: LocalJobController, target: DataprocTarget, opts: argparse.Namespace, mlflow_uri: str, mode: str, rows: int,
    models: str = "all",
) -> dict[str, Any]:  # fmt: skip
    """One training job of `rows` rows, waited for; its wall time, stage seconds and registered models."""
    from sentiment_mlops import jobs
    from sentiment_mlops.backends.local.jobs import DONE, JobError
    from sentiment_mlops.core.storage import local_path
    from sentiment_mlops.training.report import SUMMARY_FILE

    output = f"gs://{BUCKET}-models/training/{mode}-{rows}"
    args = jobs.training_args(input=opts.input, output=output, mlflow_uri=mlflow_uri, registered_model_name=BUCKET,
                              max_rows=rows, models=models)  # fmt: skip
    job_id = f"scale-train-{mode}-{rows}-{secrets.token_hex(3)}"
    print(f"training {rows:,} rows, {mode}: job {job_id}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        record = ctl.submit(jobs.training_job(target, args, job_id=job_id), wait=True, timeout=opts.timeout)
    except JobError as exc:  # refused before it started, or timed out (then cancelled)
        return {"mode": mode, "max_rows": rows, "job_id": job_id, "error": str(exc)}
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {"mode": mode, "max_rows": rows, "wall_s": rnd(wall, 1), "job_id": job_id,
                              "master": record.command[record.command.index("--master") + 1]}  # fmt: skip
    if record.state != DONE:
        return {**result, "error": failure(ctl, job_id, f"training {mode} {rows}")}
    summary = json.loads((local_path(output) / SUMMARY_FILE).read_text())
    stages = summary["stage_seconds"]
    return {
        **result, "rows": sum(summary["split_counts"].values()), "split": summary["split_counts"],
        "rows_usable_in_input": summary["load_report"]["rows_usable"],
        "stage_seconds": {k: round(v, 2) for k, v in stages.items()},
        "stages": [{"stage": n, "seconds": round(s, 2), "rows_per_s": round(r / s) if r and s else None}
                   for n, s, r in stage_table(SimpleNamespace(**summary))],
        "models": {k: {"display_name": v["display_name"], "registered_model": v["registered_model"],
                       "version": v["version"], "fit_seconds": v["fit_seconds"],
                       "test_accuracy": round(v["test"]["accuracy"], 4)} for k, v in summary["models"].items()},
    }  # fmt: skip


def serving_model(
    ctl: LocalJobController, target: DataprocTarget, opts: argparse.Namespace, mlflow_uri: str, result: dict[str, Any]
) -> tuple[str, str]:
    """(registered model, version) of the last training run's logistic regression; without one, a small
    LR-only training job makes it (recorded as result["serving_model_training"])."""
    runs = [r for r in result["training"] if LR in r.get("models", {})]
    if not runs:
        run = train(ctl, target, opts, mlflow_uri, "serving-model", opts.serving_train_rows, models="lr")
        result["serving_model_training"] = run
        if "error" in run:
            raise RuntimeError(run["error"])
        runs = [run]
    model = runs[-1]["models"][LR]
    return model["registered_model"], str(model["version"])


# --------------------------------------------------------------------------------------------
# Serving.


def job_alive(ctl: LocalJobController, job_id: str, what: str) -> Callable[[], None]:
    def check() -> None:
        if not ctl.get(job_id).active:
            raise RuntimeError(failure(ctl, job_id, what))

    return check


def serve(
    ctl: LocalJobController, target: DataprocTarget, opts: argparse.Namespace, mlflow_uri: str,
    model: tuple[str, str], feed: TweetFeed, workers: int,
) -> dict[str, Any]:  # fmt: skip
    """The streaming job on the cluster: warm-up files, then the burst; rows/s from its batch metrics."""
    from sentiment_mlops import jobs
    from sentiment_mlops.backends.local.jobs import JobError

    sc = Scenario(f"scale-w{workers}")
    args = jobs.serving_args(
        source_type="file", input_path=sc.input_uri, output_path=sc.output_uri, checkpoint=sc.checkpoint_uri,
        mlflow_uri=mlflow_uri, model_name=model[0], model_stage=model[1], batch_interval_seconds=TRIGGER_S,
        reload_interval_seconds=3600,
    )  # fmt: skip
    total = opts.serving_files * opts.rows_per_file
    burst = [feed.take(opts.rows_per_file) for _ in range(opts.serving_files)]  # built before the clock starts
    job_id = f"scale-serve-w{workers}-{secrets.token_hex(3)}"
    print(f"serving on {workers} worker(s): job {job_id}", file=sys.stderr, flush=True)
    what = f"serving on {workers} worker(s)"
    t_submit = time.perf_counter()
    try:
        ctl.submit(jobs.serving_job(target, args, job_id=job_id))
    except JobError as exc:
        return {"workers": workers, "job_id": job_id, "error": str(exc)}
    try:
        warm_rows = WARMUP_ROWS * workers
        for i in range(workers):
            drop_csv(sc.inbox, f"warmup-{i}.csv", feed.take(WARMUP_ROWS))
        check = job_alive(ctl, job_id, what)
        wait_metric_rows(sc.metrics, warm_rows, opts.timeout, f"{what}, warm-up", check, poll=0.5)
        to_warm = time.perf_counter() - t_submit
        warm = {int(r["batch_id"]) for r in read_metrics(sc.metrics)}
        t0 = time.time()
        for i, rows in enumerate(burst):
            drop_csv(sc.inbox, f"burst-{i:03d}.csv", rows)
        wait_metric_rows(sc.metrics, warm_rows + total, opts.timeout, what, check, poll=0.5)
    except (RuntimeError, TimeoutError) as exc:
        return {"workers": workers, "job_id": job_id, "error": str(exc)}
    finally:
        ctl.cancel(job_id)
    records = [r for r in read_metrics(sc.metrics) if int(r["batch_id"]) not in warm]
    wall = max(batch_window(r)[1] for r in records) - t0
    return {"workers": workers, "job_id": job_id, "model": f"{model[0]} v{model[1]}", "rows": total,
            "submit_to_warm_s": rnd(to_warm, 1), "wall_s": rnd(wall), "rows_per_s_end_to_end": rnd(total / wall, 0),
            **summarize_batches(records)}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Report.


def stage_sum(stages: dict[str, float], keep: Callable[[str], bool]) -> float:
    return sum(v for k, v in stages.items() if keep(k))


def print_report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"\nScaling benchmark: {m['cpus']} cores, {m['ram_gib']} GiB, {m['java']}, pyspark {m['pyspark']}; "
          f"workers of 1 core / {result['options']['worker_memory']}; total {result['total_seconds']:.0f}s, "
          f"load average {m['load_average_start']} -> {result['load_average_end']} (shared machine)")  # fmt: skip
    print(
        "\nTraining (all models; wall = submit to DONE; stage seconds from the job's training_summary.json;"
        " read = the whole input file: --max-rows applies after it)"
    )
    print(f"{'max rows':>9} {'mode':8} {'rows':>8} {'wall s':>7} {'rows/s':>7} {'read s':>7} {'features s':>10} "
          f"{'fit s':>7} {'eval s':>7} {'mlflow s':>8} {'local/this':>10}")  # fmt: skip
    local_wall = {r["max_rows"]: r["wall_s"] for r in result["training"] if r["mode"] == "local" and "error" not in r}
    for r in result["training"]:
        if "error" in r:
            print(f"{r['max_rows']:9,} {r['mode']:8} failed: {r['error'].splitlines()[0]}")
            continue
        s = r["stage_seconds"]
        fit = stage_sum(s, lambda k: k.endswith("_fit") and not k.startswith("features"))
        ratio = local_wall.get(r["max_rows"]) if r["mode"] != "local" else None
        print(f"{r['max_rows']:9,} {r['mode']:8} {r['rows']:8,} {r['wall_s']:7.1f} "
              f"{r['rows'] / r['wall_s']:7,.0f} {s.get('read', 0):7.1f} "
              f"{stage_sum(s, lambda k: k.startswith('features')):10.1f} {fit:7.1f} "
              f"{stage_sum(s, lambda k: k.endswith('_evaluate')):7.1f} {s.get('mlflow_log_and_register', 0):8.1f} "
              f"{'' if ratio is None else format(ratio / r['wall_s'], '.2f'):>10}")  # fmt: skip
    print(f"\nServing (file burst, {TRIGGER_S}s trigger; rows/s from the job's batch metrics)")
    print(f"{'workers':>7} {'rows':>8} {'wall s':>7} {'rows/s':>8} {'batches':>7} {'batch s p50':>11} "
          f"{'rows/s inside batches':>21} {'submit->warm s':>14}")  # fmt: skip
    for r in result["serving"]:
        if "error" in r:
            print(f"{r['workers']:7} failed: {r['error'].splitlines()[0]}")
            continue
        print(f"{r['workers']:7} {r['rows']:8,} {r['wall_s']:7.1f} {r['rows_per_s_end_to_end']:8,.0f} "
              f"{r['batches']:7} {r['batch_s']['p50']:11.2f} {r['rows_per_s_inside_batches'] or 0:21,.0f} "
              f"{r['submit_to_warm_s']:14.1f}")  # fmt: skip


# --------------------------------------------------------------------------------------------


def prepare_environment(opts: argparse.Namespace) -> Path:
    """A fresh SENTIMENT_HOME on the local backend, read by the job runner and the jobs; returns it."""
    home = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    for name in ("SENTIMENT_BUCKET_ROOT", "SENTIMENT_SPARK_MASTER"):
        os.environ.pop(name, None)
    os.environ.update({"SENTIMENT_HOME": str(home), "SENTIMENT_BACKEND": "local", "SPARK_LOCAL_IP": "127.0.0.1",
                       "SENTIMENT_LOCAL_MASTER": opts.local_master,
                       "SENTIMENT_SPARK_EXECUTOR_MEMORY": opts.worker_memory})  # fmt: skip
    return home


def run_parts(opts: argparse.Namespace, home: Path, mlflow_uri: str, result: dict[str, Any]) -> None:
    """Training on local, then one cluster per size (two workers first: cluster training happens there)."""
    from sentiment_mlops import jobs

    target = jobs.DataprocTarget("", "local", "local", jobs.default_code_uri(BUCKET))
    upload_code(target)
    local = controller(home, None)
    if "local" in opts.modes:
        result["training"] += [train(local, target, opts, mlflow_uri, "local", n) for n in opts.sizes]
    train_on_cluster = "cluster" in opts.modes and bool(opts.sizes)
    feed = TweetFeed(load_tweets(Path(opts.input)))
    for workers in sorted(set(opts.serving_workers) | ({2} if train_on_cluster else set()), reverse=True):
        with spark_cluster(home, workers, opts.worker_memory) as (cluster, start_s):
            result["cluster_start_s"][str(workers)] = rnd(start_s, 1)
            ctl = controller(home, cluster.master_url)
            if workers == 2 and train_on_cluster:
                result["training"] += [train(ctl, target, opts, mlflow_uri, "cluster", n) for n in opts.sizes]
            if workers in opts.serving_workers:
                try:
                    model = serving_model(local, target, opts, mlflow_uri, result)
                except RuntimeError as exc:
                    result["serving"].append({"workers": workers, "error": str(exc)})
                    continue
                result["serving"].append(serve(ctl, target, opts, mlflow_uri, model, feed, workers))


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    # SIGTERM as an exception too, so the finally blocks stop the jobs, the clusters and the server.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    home = prepare_environment(opts)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "machine": machine_facts(), "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": vars(opts), "trigger_seconds": TRIGGER_S, "cluster_start_s": {}, "training": [], "serving": [],
    }  # fmt: skip
    with mlflow_server(home, opts.keep_home) as mlflow_uri:
        run_parts(opts, home, mlflow_uri, result)
    finish(result, started, opts.out, print_report, home if opts.keep_home else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
