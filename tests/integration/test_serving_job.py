"""The streaming serving job on the file source: drops mid-run, hot-swap, quarantine, and
exactly-once output across `kill -9` of the driver. Real Spark, real MLflow server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sentiment_mlops import jobs
from sentiment_mlops.core.storage import local_path
from sentiment_mlops.serving import job as serving_job
from tests.fixtures_serving import SERVING_MODEL as MODEL
from tests.fixtures_serving import (
    served_version_fixture,  # noqa: F401
    train_serving_model,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _drop(folder: Path, name: str, rows: list[tuple[str, str]], header: str = "id,text") -> None:
    """Write then rename, as a finished `gsutil cp` appears: the stream never sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    body = header + "\n" + "\n".join(f'{i},"{t}"' for i, t in rows) + "\n"
    tmp.write_text(body)
    tmp.rename(folder / name)


def _args(tag: str, mlflow_server: str, *extra: str):  # type: ignore[no-untyped-def]
    """The job's default buckets for base name `tag` (the bucket roots), a checkpoint of its own."""
    paths = jobs.serving_paths(tag)
    args = serving_job.build_arg_parser().parse_args(
        [
            "--input-path", paths["input"], "--output-path", paths["output"],
            "--checkpoint", f"gs://{tag}-ckpt/serving", "--mlflow-uri", mlflow_server, "--model-name", MODEL,
            "--batch-interval-seconds", "1", "--reload-interval-seconds", "1", *extra,
        ]
    )  # fmt: skip
    serving_job.validate_args(args)
    return args


def _out(tag: str) -> Path:
    """The local folder of the predictions bucket `gs://{tag}-predictions`."""
    return local_path(f"gs://{tag}-predictions")


def _predictions(tag: str) -> pd.DataFrame:
    folder = _out(tag) / "predictions"
    return pd.read_parquet(folder) if folder.exists() else pd.DataFrame()


@pytest.mark.timeout(600)
def test_file_drops_hot_swap_and_quarantine(spark, sample_csv, mlflow_server, served_version) -> None:
    tag = "filedrops"
    args = _args(tag, mlflow_server)
    state = serving_job.build_state(spark, args)
    assert state.watcher.load_initial().version == served_version
    query = serving_job.start_query(spark, args, state)
    state.watcher.start()
    inbox = local_path(f"gs://{tag}-streaming-input")  # the bucket root: `gsutil cp x.csv gs://B-streaming-input/`
    try:
        # 1. a file dropped at the input bucket's root while the stream runs is scored in a later
        # micro-batch; hidden and temporary names are not read
        _drop(inbox, "first.csv", [("a1", "I love this, best day ever"), ("a2", "I hate this, awful and sad")])
        for hidden in (".copying.csv", "_tmp.csv", "upload.csv.tmp", "_tmp/inside.csv", ".gsutil/inside.csv"):
            (inbox / hidden).parent.mkdir(parents=True, exist_ok=True)
            (inbox / hidden).write_text("id,text\nx1,never read\n")
        query.processAllAvailable()
        first = _predictions(tag)
        assert sorted(first["id"]) == ["a1", "a2"]
        today = time.strftime("%Y-%m-%d", time.gmtime())
        # `gsutil cp gs://B-predictions/predictions/date=YYYY-MM-DD/part-*.parquet .` gets the day's rows
        day_files = sorted((_out(tag) / "predictions" / f"date={today}").glob("part-*.parquet"))
        assert day_files and sorted(pd.concat(pd.read_parquet(f) for f in day_files)["id"]) == ["a1", "a2"]
        assert not [p for p in (_out(tag) / "predictions").rglob("*") if p.is_file() and p not in day_files
                    and not p.name.startswith(".")]  # fmt: skip
        expected_columns = {name for name, _ in serving_job.OUTPUT_COLUMNS} | {"date", "stream"}
        assert set(first.columns) == expected_columns
        assert first.set_index("id")["prediction"].to_dict() == {"a1": 1, "a2": 0}
        assert first["probability"].between(0, 1).all() and (first["model_version"] == served_version).all()
        assert (first["source"] == "first.csv").all() and first["prediction_timestamp"].notna().all()
        assert list(first["date"].astype(str).unique()) == [today]

        # 2. bad rows and a bad file are quarantined with reasons; the stream keeps going
        # (in a subfolder: drops below the watched folder are read too)
        _drop(inbox / "team-a", "mixed.csv", [("b1", "fine tweet"), ("b2", "")])
        bad = inbox / "latin1.csv"
        bad.write_bytes("text\ncaf\xe9 au lait\n".encode("latin-1") + b"fine after it\n")
        query.processAllAvailable()
        # beside the predictions, in the same bucket
        quarantine = pd.read_parquet(_out(tag) / "quarantine")
        reasons = dict(
            zip(
                quarantine["source"].str.rsplit("/", n=1).str[-1] + ":" + quarantine["source_row"].astype(str),
                quarantine["error"],
                strict=True,
            )
        )
        assert reasons["mixed.csv:3"] == "empty text"
        assert reasons["latin1.csv:2"].startswith("not UTF-8")  # only the row with the bad byte
        assert "b1" in set(_predictions(tag)["id"]) and query.isActive
        assert "fine after it" in set(_predictions(tag)["text"])

        # a batch whose every row is quarantined, and a batch of one empty file, add no prediction file
        files_before = sorted((_out(tag) / "predictions").rglob("part-*.parquet"))
        _drop(inbox, "all-bad.csv", [("q1", ""), ("q2", " ")])
        query.processAllAvailable()
        (inbox / "zero.csv").write_bytes(b"")
        query.processAllAvailable()
        assert sorted((_out(tag) / "predictions").rglob("part-*.parquet")) == files_before
        batches = [json.loads(f.read_text()) for f in sorted((_out(tag) / "_metrics" / "batches").glob("*.json"))]
        assert [(b["rows_in"], b["predicted"], b["quarantined"], b["empty_files"]) for b in batches[-2:]] == [
            (2, 0, 2, 0),
            (0, 0, 0, 1),
        ]

        # 3. a new version takes the alias: later rows carry it, no batch fails
        new_version = train_serving_model(spark, sample_csv, mlflow_server, "svc")
        wait_for(lambda: state.watcher.current.version == new_version, what="hot-swap to the new version")
        _drop(inbox, "after-swap.csv", [("c1", "what a lovely morning")])
        query.processAllAvailable()
        out = _predictions(tag).set_index("id")
        assert out.loc["c1", "model_version"] == new_version
        assert pd.isna(out.loc["c1", "probability"])  # LinearSVC: no probability, raw margin instead
        assert not pd.isna(out.loc["c1", "raw_score"])
        assert out.loc["a1", "model_version"] == served_version  # old rows untouched

        # 4. a broken version is rejected; the current one keeps serving
        client = MlflowClient(mlflow_server)
        mlflow.set_tracking_uri(mlflow_server)
        with mlflow.start_run(run_name="broken-artifact") as run:
            mlflow.log_text("this is not a Spark model", "junk/README.txt")
        broken = client.create_model_version(MODEL, source=f"{run.info.artifact_uri}/junk", run_id=run.info.run_id)
        client.set_registered_model_alias(MODEL, "production", broken.version)
        wait_for(lambda: broken.version in state.watcher.stats.rejected_versions, what="rejection of broken version")
        _drop(inbox, "after-broken.csv", [("d1", "still serving?")])
        query.processAllAvailable()
        assert _predictions(tag).set_index("id").loc["d1", "model_version"] == new_version
        assert query.isActive and query.exception() is None

        # 5. one metrics record per batch with the fields the management DAG reads
        metrics_dir = _out(tag) / "_metrics" / "batches"
        records = [json.loads(p.read_text()) for p in sorted(metrics_dir.glob("batch-*.json"))]
        assert sum(r["predicted"] for r in records) == len(_predictions(tag))
        assert sum(r["quarantined"] for r in records) == len(pd.read_parquet(_out(tag) / "quarantine")) == 4
        assert {"rows_in", "batch_duration_s", "latency_s", "rows_per_s", "model_version"} <= set(records[0])
    finally:
        state.watcher.stop()
        query.stop()


def _serving_cmd(tag: str, mlflow_server: str, version: str, *extra: str) -> list[str]:
    """The job as Dataproc would run it, pinned to a version number (the alias may be broken by now)."""
    paths = jobs.serving_paths(tag)
    return [
        sys.executable, str(ROOT / "code" / "streaming_serving_mlflow_hdfs_kafka_optimize.py"),
        "--input-path", paths["input"], "--output-path", paths["output"], "--checkpoint", f"gs://{tag}-ckpt/s",
        "--mlflow-uri", mlflow_server, "--model-name", MODEL, "--model-stage", version,
        "--batch-interval-seconds", "1", "--max-files-per-trigger", "2", *extra,
    ]  # fmt: skip


@pytest.mark.timeout(900)
def test_crash_after_write_before_commit_is_replaced_exactly_once_even_on_another_date(
    mlflow_server, served_version, tmp_path
) -> None:
    """The driver dies at a fixed point (crash_point: batch 1 written, not committed). The restart
    replays batch 1 on another day than the crashed attempt (the crash before midnight, the replay
    after) and must replace that attempt's files: every row predicted, or quarantined, exactly once."""
    from sentiment_mlops.serving.crash_point import CRASH_AFTER_WRITE_ENV, CRASH_EXIT_CODE

    tag = "crashpoint"
    inbox = local_path(jobs.serving_paths(tag)["input"])
    expected = set()
    for f in range(4):  # two files per trigger: batches 0 and 1
        rows = [(f"f{f}-r{r}", f"tweet {r} of file {f} is lovely" if r % 2 else f"sad tweet {r}") for r in range(50)]
        rows += [(f"f{f}-empty", "")] if f == 3 else []  # one row of batch 1 is quarantined
        _drop(inbox, f"drop-{f:02d}.csv", rows)
        expected |= {i for i, t in rows if t}
    env = {**os.environ, "SPARK_MASTER": "local[2]"}
    first = subprocess.run(
        _serving_cmd(tag, mlflow_server, served_version, "--available-now"),
        capture_output=True, text=True, env={**env, CRASH_AFTER_WRITE_ENV: "1"}, timeout=400,
    )  # fmt: skip
    assert first.returncode == CRASH_EXIT_CODE, first.stderr[-3000:]
    predictions, quarantine = _out(tag) / "predictions", _out(tag) / "quarantine"
    batch1 = sorted(predictions.glob("date=*/part-*-0000000001-*.parquet"))
    assert batch1 and sorted(predictions.glob("date=*/part-*-0000000000-*.parquet")), "both batches were written"
    assert len(sorted(quarantine.glob("date=*/part-*-0000000001-*.parquet"))) == 1
    assert len(_predictions(tag)) == len(expected)  # every row is on disk, batch 1 uncommitted

    # The earlier attempt ran "yesterday": its files sit in another day folder than the replay's.
    yesterday = {base: base / "date=2000-01-01" for base in (predictions, quarantine)}
    for base, day in yesterday.items():
        day.mkdir()
        for part in base.glob("date=*/part-*-0000000001-*.parquet"):
            part.rename(day / part.name)

    second = subprocess.run(
        _serving_cmd(tag, mlflow_server, served_version, "--available-now"),
        capture_output=True, text=True, env=env, timeout=400,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert all(not list(day.iterdir()) for day in yesterday.values()), "the earlier attempt was left beside"
    out = _predictions(tag)
    assert set(out["id"]) == expected and not out["id"].duplicated().any() and len(out) == len(expected)
    assert sorted(out["batch_id"].unique()) == [0, 1] and out["stream"].nunique() == 1
    bad = pd.read_parquet(quarantine)
    assert list(bad["source"] + ":" + bad["source_row"].astype(str)) == ["drop-03.csv:52"]
    assert not list(predictions.glob("_staging/*")) and not list(quarantine.glob("_staging/*"))
    # every file sits directly in its day folder under a name of its stream and batch
    files = [p for p in predictions.rglob("*.parquet") if not p.name.startswith(".")]
    assert files and all(
        p.parent.name.startswith("date=") and p.parent.parent == predictions
        and p.name.startswith(f"part-{out['stream'].iloc[0]}-")
        for p in files
    )  # fmt: skip

    # A new checkpoint is a new stream: it scores the files again under names of its own and never
    # takes the first stream's batch N files for earlier attempts of its own batches.
    third = subprocess.run(
        [*_serving_cmd(tag, mlflow_server, served_version, "--available-now"), "--checkpoint", f"gs://{tag}-ckpt/new"],
        capture_output=True, text=True, env=env, timeout=400,
    )  # fmt: skip
    assert third.returncode == 0, third.stderr[-3000:]
    both = _predictions(tag)
    assert both["stream"].nunique() == 2 and len(both) == 2 * len(expected)
    for _, rows in both.groupby("stream", observed=True):
        assert set(rows["id"]) == expected and not rows["id"].duplicated().any()


@pytest.mark.timeout(300)
def test_pyfunc_flavor_predicts_like_the_spark_flavor(spark, mlflow_server, served_version) -> None:
    """`--model-flavor pyfunc` scores through mlflow.pyfunc.spark_udf: same labels, no probability."""
    import mlflow as _mlflow

    _mlflow.set_tracking_uri(mlflow_server)
    uri = f"models:/{MODEL}/{served_version}"
    texts = ["what a wonderful day, love it", "worst service ever, I hate this", "ok", "so happy for you"]
    df = spark.createDataFrame([(t,) for t in texts], "text string")
    expected = [r.prediction for r in serving_job.spark_model_loader(spark, "spark")(uri)(df).collect()]
    rows = serving_job.spark_model_loader(spark, "pyfunc")(uri)(df).collect()
    assert [r.prediction for r in rows] == expected
    assert all(r.probability is None for r in rows)
