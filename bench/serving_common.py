"""Shared pieces of the serving benchmarks (bench/serving.py, bench/serving_swap.py, bench/scaling.py):
tweets, file drops, the job's metrics, a scenario's query."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def mlflow_server(home: Path, keep_home: bool) -> Iterator[str]:
    """A temporary MLflow server (SQLite under `home`); yields its URL, then stops it and, unless
    `keep_home`, removes `home`."""
    from sentiment_mlops.backends.local.mlflow_server import MlflowServer, free_port

    server = MlflowServer(data_dir=home / "mlflow", port=free_port()).start()
    try:
        yield server.url
    finally:
        server.stop()
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)


def finish(
    result: dict[str, Any], started: float, out: str, report: Callable[[dict[str, Any]], None], kept_home: Path | None
) -> None:
    """Total seconds (since perf_counter `started`) and the end load average into `result`; the report
    printed and the JSON written to `out`."""
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report(result)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {out}" + (f" (home kept: {kept_home})" if kept_home else ""))


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


def wait_metric_rows(
    metrics_dir: Path, rows: int, timeout: float, what: str, check: Callable[[], None], poll: float = 0.05
) -> float:
    """Poll the metrics files until `rows` input rows are committed; returns the epoch it was seen. `check`
    raises when the stream writing them has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(r["rows_in"] for r in read_metrics(metrics_dir)) >= rows:
            return time.time()
        check()
        time.sleep(poll)
    raise TimeoutError(f"{what}: fewer than {rows} rows committed after {timeout:.0f}s")


def wait_rows(query: StreamingQuery, metrics_dir: Path, rows: int, timeout: float, what: str) -> float:
    """wait_metric_rows for a query of this process."""

    def check() -> None:
        if not query.isActive:
            raise RuntimeError(f"{what}: the streaming query ended: {query.exception()}")

    return wait_metric_rows(metrics_dir, rows, timeout, what, check)


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
