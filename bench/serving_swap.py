"""The hot-swap scenario of bench/serving.py: files dropped every second while the alias moves from
flavour to flavour; the swap's cost and the batches that overlapped it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from sentiment_mlops.serving.job import ServingState

from serving_common import (  # noqa: E402 - bench scripts run with bench/ on sys.path
    SWAP_ALIAS,
    SWAP_MODEL,
    Scenario,
    TweetFeed,
    batch_window,
    drop_csv,
    parquet_rows,
    pct,
    read_metrics,
    rnd,
    serving_query,
    summarize_batches,
    wait_rows,
    warm_up,
)

log = logging.getLogger("bench.serving")


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
    from sentiment_mlops.registry.smoke_check import spark_smoke_check
    from sentiment_mlops.serving import job as serving_job

    def prepare(state: ServingState) -> None:
        state.watcher = ModelWatcher(
            tracking_uri=mlflow_uri, name=SWAP_MODEL, stage_or_alias=SWAP_ALIAS,
            loader=timings.wrap("load", serving_job.spark_model_loader(spark, "spark")),
            smoke_check=timings.wrap("smoke", spark_smoke_check(spark, passthrough=("id", "source"))),
            poll_seconds=3600,
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
