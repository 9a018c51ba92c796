"""Poison files, ten `kill -9`s of the driver at random points and a hot-swap, through the real serving
job (its entry script in a subprocess, local Spark, a real MLflow server), then a restart.

One stream (one checkpoint) lives through ten driver runs, each ended by SIGKILL of the driver's whole
process group (Python and its JVM, as when the node dies), then a last `--available-now` run. Good files
and poison files (each kind of bad input that once failed a whole batch or file) keep arriving between
runs. The kill points are drawn with a seeded RNG (`POISON_KILL_SEED`, random when unset; a failure
names the seed to replay it): five during start-up (a random fraction of how long a launch took to
commit its first batch: JVM launch, model load and smoke check, query start, the first batch), five a
random delay after the run's first newly committed batch (inside the next batch, or between two); the
first run is of the second kind, to measure the launch. During one of those five runs (the 4th to 7th
run) the @production alias of the stream's model moves: first to a version that fails the swap smoke
check (the running driver must reject it and keep serving), then to a new good version; the driver then
swaps live and scores a file dropped after that, or (one seed in four) is killed while it loads the new
version.

Asserted after the restart:

* every good row is predicted exactly once: nothing missing, no duplicate;
* every bad row is quarantined exactly once, with its reason; empty files leave a trace;
* rows carry the version that scored them: no row scored before the alias moved carries the new version,
  every row scored by a later run does, the rejected version none; one version per batch, and the batches
  switch from the first version to the new one exactly once;
* the batch metrics count each row once (a replayed batch overwrites its own record);
* the final `--available-now` run exits 0 and serves the new version.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sentiment_mlops import jobs
from sentiment_mlops.core.storage import local_path
from sentiment_mlops.registry.smoke_check import SMOKE_SET
from tests.fixtures_serving import (
    SERVING_MODEL,
    served_version_fixture,  # noqa: F401
)
from tests.integration.test_serving_job import _drop, _out, _predictions, _serving_cmd
from tests.integration.test_serving_smoke_check import _labels_sql, _register

pytestmark = pytest.mark.integration

# (file name, bytes, good ids, quarantined (source_row, reason prefix)); every bad row is a poison pill
# that once failed the whole batch (inf labels, year-1 timestamps) or its file (a latin-1 byte).
POISON = [
    ("p-labels.csv", b"id,text,label\nL1,infinite,inf\nL2,huge,1e400\nL3,negative,-inf\n", {"L1", "L2", "L3"}, []),
    ("p-time.csv", b"id,text,timestamp\nT1,year one,0001-01-01T00:00:00+05:00\nT2,far,1e300\n", {"T1", "T2"}, []),
    ("p-bytes.csv", b"id,text\nB1,caf\xe9\nB2,fine\n", {"B2"}, [(2, "not UTF-8")]),
    # the original project's test file: a missing optional trailing field is no error (ids: file:row)
    (
        "p-short.csv",
        b"text,label\nI love this product!,\nThis is terrible,\nNot bad\n",
        {"p-short.csv:2", "p-short.csv:3", "p-short.csv:4"},
        [],
    ),
    ("p-zero.csv", b"", set(), []),
    ("p-header.csv", b"id,text,label\n", set(), []),
    ("p-wide.csv", b"id,text\nW1,ok\nW2,too,many\n", {"W1"}, [(3, "3 fields")]),
    ("p-headerless.csv", b"I love this!,1\n", {"p-headerless.csv:1"}, []),  # the reference's text[,label]
    (
        "p-s140.csv",
        b'"4","1467810369","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","user","so happy today"\n',
        {"1467810369"},
        [],
    ),
]


MODEL = "poisonkill-model"  # a registered model of its own: moving its alias disturbs no other test
TAG = "poisonkill"
KILLS, STARTUP_KILLS = 10, 5
SEED_ENV = "POISON_KILL_SEED"
WAIT_S = 600.0  # the most one wait may take: a bound for a hung driver, far above a run on a busy machine


def _good_file(inbox: Path, name: str) -> set[str]:
    """A small file of good tweets; returns its ids."""
    stem = name.removesuffix(".csv")
    rows = [(f"{stem}-{r}", f"tweet {r} of {stem} is {'lovely' if r % 2 else 'sad'}") for r in range(60)]
    _drop(inbox, name, rows)
    return {i for i, _ in rows}


def _commits(checkpoint: Path) -> int:
    """Micro-batches Spark has marked committed in the checkpoint."""
    folder = checkpoint / "commits"
    return sum(1 for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else 0


def _last_batch_seconds(metrics_dir: Path) -> float:
    """How long the newest micro-batch took (its metrics record), at least 1 s."""
    newest = max(metrics_dir.glob("batch-*.json"), key=lambda p: p.stat().st_mtime, default=None)
    return max(1.0, float(json.loads(newest.read_text())["batch_duration_s"])) if newest else 2.0


def _group_alive(pgid: int) -> bool:
    """True while a process of group `pgid` still runs (zombies do not count: they hold nothing)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class Driver:
    """One life of the serving job's driver: the entry script in a process group of its own (Python and
    the JVM it launches), ended by SIGKILL of the whole group."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, kind: str, checkpoint: Path) -> None:
        self.kind = kind  # "start-up": killed a random time after launch; "batch": after its first new commit
        self.log, self.checkpoint = log, checkpoint
        self.commits_at_launch = _commits(checkpoint)
        self.kill_delay = 0.0  # seconds after launch ("start-up") or after the first new commit ("batch")
        self.started = time.time()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (at most WAIT_S) for `condition` while the driver runs; fail with its log if it ends."""
        deadline = time.monotonic() + WAIT_S
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the driver exited ({self.proc.returncode}) before {what}:\n{self.text()[-3000:]}"
                )
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.text()[-3000:]}"
            time.sleep(0.1)

    def wait_for_commit(self, after: int | None = None) -> None:
        n = self.commits_at_launch if after is None else after
        self.wait_for(lambda: _commits(self.checkpoint) > n, "a newly committed batch")

    def sleep(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        self.wait_for(lambda: time.monotonic() >= until, "the kill point")

    def kill(self) -> str:
        """SIGKILL the group, wait until all of it is gone (the next run must not share the checkpoint
        with a dying JVM); returns a line for the test's output."""
        alive_s = time.time() - self.started
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 30
        while _group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(self.proc.pid), "the driver's JVM outlived kill -9 of its group"
        return (
            f"{self.kind:8} killed {self.kill_delay:5.1f}s after {'launch' if self.kind == 'start-up' else 'a commit'}"
            f", {alive_s:5.1f}s alive, commits {self.commits_at_launch} -> {_commits(self.checkpoint)}"
        )


def _command(mlflow_server: str, *extra: str) -> list[str]:
    """The job as Dataproc runs it, on MODEL@production, polling the registry every second."""
    return _serving_cmd(
        TAG, mlflow_server, "production", "--model-name", MODEL, "--reload-interval-seconds", "1", *extra
    )


def _register_versions(spark, mlflow_server: str, served_version: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """MODEL's versions: the first (on @production), one that loads but fails the swap smoke check (it
    predicts every smoke tweet wrong), and a new good one (a copy of the same trained model: a distinct
    version number is what the swap is about)."""
    client = MlflowClient(mlflow_server)
    source = f"models:/{SERVING_MODEL}/{served_version}"
    first = str(client.copy_model_version(source, MODEL).version)
    rejected = _register(spark, client, _labels_sql(right=len(SMOKE_SET), invert=True), MODEL)
    new = str(client.copy_model_version(source, MODEL).version)
    client.set_registered_model_alias(MODEL, "production", first)
    return {"first": first, "rejected": rejected, "new": new}


def _hot_swap(driver: Driver, client: MlflowClient, inbox: Path, versions: dict[str, str], rng: random.Random):  # type: ignore[no-untyped-def]
    """Move @production while `driver` runs: to the version that fails the smoke check (the driver must
    reject it and keep serving), then to the new one. Mostly the driver then swaps live and scores a
    file dropped after that; sometimes (one seed in four) the kill comes while it loads the new version.
    Returns when the alias moved and the ids of that file (none when the kill comes during the load)."""
    client.set_registered_model_alias(MODEL, "production", versions["rejected"])
    rejection = f"rejected {MODEL} v{versions['rejected']} ("
    driver.wait_for(lambda: rejection in driver.text(), "the rejection of the broken version")
    assert driver.text().split(rejection, 1)[1].startswith("ValueError: smoke check")
    swapped_at = time.time()
    client.set_registered_model_alias(MODEL, "production", versions["new"])
    if rng.random() < 0.25:
        driver.sleep(rng.uniform(0.0, 3.0))
        return swapped_at, set()
    live = f"serving {MODEL} v{versions['new']} (@production), was v{versions['first']}"
    driver.wait_for(lambda: live in driver.text(), "the live swap to the new version")
    committed = _commits(driver.checkpoint)
    ids = _good_file(inbox, "after-live-swap.csv")
    driver.wait_for_commit(after=committed)
    return swapped_at, ids


@pytest.mark.timeout(1800)  # the bound for a hung run (the served model's training included), not its time
def test_poison_files_sigkill_at_ten_random_points_and_a_hot_swap(
    spark, mlflow_server, served_version, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    seed = int(os.environ.get(SEED_ENV) or secrets.randbelow(1_000_000))
    print(f"{SEED_ENV}={seed}")
    try:
        _kill_ten_times_then_restart(spark, mlflow_server, served_version, tmp_path, random.Random(seed))
    except BaseException as exc:
        exc.add_note(f"replay this run with {SEED_ENV}={seed}")
        raise


def _kill_ten_times_then_restart(
    spark, mlflow_server: str, served_version: str, tmp_path: Path, rng: random.Random
) -> None:  # type: ignore[no-untyped-def]
    versions = _register_versions(spark, mlflow_server, served_version)
    first, rejected, new = versions["first"], versions["rejected"], versions["new"]
    client = MlflowClient(mlflow_server)
    inbox = local_path(jobs.serving_paths(TAG)["input"])
    checkpoint = local_path(f"gs://{TAG}-ckpt/s")
    metrics_dir = _out(TAG) / "_metrics" / "batches"
    # C1 only: each driver lives a minute or two, and C2 compiling in the background took half of the two
    # cores (the drivers ran twice as fast without it)
    jit = f"{os.environ.get('JAVA_TOOL_OPTIONS', '')} -XX:TieredStopAtLevel=1".strip()
    env = {**os.environ, "SPARK_MASTER": "local[2]", "SPARK_LOCAL_DIRS": str(tmp_path / "spark-local")}
    env["JAVA_TOOL_OPTIONS"] = jit

    # run 0 is a "batch" run: it measures how long a launch takes to commit, the span start-up kills draw from
    swap_run = rng.randint(3, 6)  # a "batch" run: the alias moves once the run has committed a batch
    startup = set(rng.sample([i for i in range(1, KILLS) if i != swap_run], STARTUP_KILLS))
    poison_before = {name: rng.randrange(KILLS) for name, *_ in POISON}  # the run before which each arrives
    expected = _good_file(inbox, "good-a.csv") | _good_file(inbox, "good-b.csv")
    after_swap: set[str] = set()  # ids scored after the swap whoever scores them
    launch_to_commit, swapped_at, runs = 0.0, 0.0, []
    for i in range(KILLS):
        ids = _good_file(inbox, f"good-{i:02d}.csv")
        expected |= ids
        after_swap |= ids if i > swap_run else set()
        for name, content, *_ in POISON:
            if poison_before[name] == i:
                (inbox / name).write_bytes(content)
        driver = Driver(
            _command(mlflow_server), env, tmp_path / f"run-{i}.log", "start-up" if i in startup else "batch", checkpoint
        )
        try:
            if driver.kind == "start-up":  # JVM launch, model load and smoke check, query start, first batch
                driver.kill_delay = rng.uniform(0.05, 1.0) * launch_to_commit
                driver.sleep(driver.kill_delay)
            else:
                driver.wait_for_commit()
                launch_to_commit = time.time() - driver.started
                if i == swap_run:
                    swapped_at, live_ids = _hot_swap(driver, client, inbox, versions, rng)
                    expected |= live_ids
                    after_swap |= live_ids
                driver.kill_delay = rng.uniform(0.0, 1.1) * _last_batch_seconds(metrics_dir)
                driver.sleep(driver.kill_delay)  # inside the next batch, or between two
        finally:
            runs.append(driver)
            print(f"run {i}: {driver.kill()}")

    final = subprocess.run(
        _command(mlflow_server, "--available-now"), capture_output=True, text=True, env=env, timeout=WAIT_S * 2
    )
    assert final.returncode == 0, final.stderr[-3000:]
    assert f"serving {MODEL} v{new} from" in final.stderr

    # every good row predicted exactly once, every bad row quarantined exactly once with its reason
    out = _predictions(TAG)
    good = expected | set().union(*(ids for _, _, ids, _ in POISON))
    missing, extra = sorted(good - set(out["id"])), sorted(set(out["id"]) - good)
    twice = sorted(set(out.loc[out["id"].duplicated(), "id"]))
    assert not (missing or extra or twice), f"missing {missing[:10]}, unexpected {extra[:10]}, twice {twice[:10]}"
    assert len(out) == len(good) and out["stream"].nunique() == 1
    assert sorted(out.loc[out["source"] == "p-short.csv", "text"]) == ["I love this product!", "Not bad",
                                                                      "This is terrible"]  # fmt: skip
    assert out.loc[out["id"].isin(["L1", "L2", "L3"]), "label"].isna().all()
    by_id = out.set_index("id")
    assert (by_id.loc["p-headerless.csv:1", "text"], by_id.loc["p-headerless.csv:1", "label"]) == ("I love this!", 1)
    assert (by_id.loc["1467810369", "text"], by_id.loc["1467810369", "label"]) == ("so happy today", 1)
    quarantine = pd.read_parquet(_out(TAG) / "quarantine")
    keys = list(zip(quarantine["source"], quarantine["source_row"], strict=True))
    assert len(keys) == len(set(keys)) == sum(len(bad) for *_, bad in POISON)
    for name, _, _, bad in POISON:
        for row, reason in bad:
            got = quarantine[(quarantine["source"] == name) & (quarantine["source_row"] == row)]["error"]
            assert len(got) == 1 and got.iloc[0].startswith(reason)
    for base in ("predictions", "quarantine"):
        assert not list((_out(TAG) / base).glob("_staging/*")), f"a killed attempt's staging is left in {base}"

    # the hot-swap: one version per batch, switching once; none before the alias moved, all after; the
    # batch metrics: one record per committed batch, each row counted once
    records = sorted((json.loads(p.read_text()) for p in metrics_dir.glob("batch-*.json")), key=lambda r: r["batch_id"])
    assert [r["batch_id"] for r in records] == list(range(_commits(checkpoint)))
    timeline = [r["model_version"] for r in records]
    assert new in timeline, f"the new version scored nothing: {timeline}"
    switch = timeline.index(new)
    assert timeline == [first] * switch + [new] * (len(timeline) - switch), f"v{rejected} refused: {timeline}"
    per_batch = out.groupby("batch_id")["model_version"].agg(set)
    assert all(per_batch[batch] == {timeline[batch]} for batch in per_batch.index), "a row not of its batch's version"
    assert (out["model_name"] == MODEL).all()
    scored_at = pd.to_datetime(out["prediction_timestamp"], utc=True)
    assert (scored_at[out["model_version"] == new] > pd.Timestamp(swapped_at, unit="s", tz="UTC")).all()
    next_run = pd.Timestamp(runs[swap_run + 1].started, unit="s", tz="UTC")
    assert (out.loc[scored_at >= next_run, "model_version"] == new).all()
    assert set(out.loc[out["id"].isin(after_swap), "model_version"]) == {new}
    assert sum(r["predicted"] for r in records) == len(out)
    assert sum(r["quarantined"] for r in records) == len(quarantine)
    assert sum(r.get("empty_files", 0) for r in records) >= 2  # p-zero.csv and p-header.csv left a trace
