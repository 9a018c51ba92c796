"""The shadow challenger of the streaming serving job: scored beside the served model while its alias
exists, let go when the alias is removed or names a broken version, dropped from a batch it breaks; the
served prediction is never replaced and the stream never stops. Real Spark, real MLflow server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sentiment_mlops import jobs
from sentiment_mlops.core.storage import local_path
from sentiment_mlops.registry.model_watcher import LoadedModel, ModelWatcher
from sentiment_mlops.serving import job as serving_job
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _drop(folder: Path, name: str, rows: list[tuple[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    tmp.write_text("id,text\n" + "\n".join(f'{i},"{t}"' for i, t in rows) + "\n")
    tmp.rename(folder / name)


def _log_pipeline(spark: Any, sample_csv: Path, reg_param: float) -> str:
    """A small Spark text pipeline (tokens, hashed term counts, logistic regression) fitted on 20,000
    tweets and logged as an MLflow Spark model; returns the run's model URI. Smaller and quicker than
    the training job, the same flavour of model to the serving job."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import HashingTF, RegexTokenizer

    rows = pd.read_csv(sample_csv, header=None, names=["label", "text"], encoding="latin-1")
    rows = rows.sample(n=20000, random_state=3).assign(label=lambda d: (d["label"] > 0).astype(float))
    train = spark.createDataFrame(rows[["text", "label"]])
    pipeline = Pipeline(
        stages=[
            RegexTokenizer(inputCol="text", outputCol="words", pattern="[^a-z']+", toLowercase=True),
            HashingTF(inputCol="words", outputCol="features", numFeatures=1 << 14),
            LogisticRegression(maxIter=30, regParam=reg_param),
        ]
    )
    with mlflow.start_run(run_name=f"challenger-itest-{reg_param}") as run:
        mlflow.spark.log_model(pipeline.fit(train), "model", pip_requirements=[])
    return f"runs:/{run.info.run_id}/model"


@pytest.mark.timeout(900)
def test_challenger_beside_the_served_model_then_removed_then_broken(
    spark: Any, mlflow_server: str, sample_csv: Path
) -> None:
    client = MlflowClient(mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    name = "challenger-itest-stream"
    client.create_registered_model(name)
    for reg_param in (0.01, 0.3):  # v1 served, v2 the challenger: another model with opinions of its own
        uri = _log_pipeline(spark, sample_csv, reg_param)
        client.create_model_version(name, uri, run_id=uri.split("/")[1])
    client.set_registered_model_alias(name, "production", "1")
    challenger = "2"
    client.set_registered_model_alias(name, "challenger", challenger)

    tag = "challengerstream"
    paths = jobs.serving_paths(tag)
    args = serving_job.build_arg_parser().parse_args(
        [
            "--input-path", paths["input"], "--output-path", paths["output"], "--checkpoint", f"gs://{tag}-ckpt/s",
            "--mlflow-uri", mlflow_server, "--model-name", name, "--batch-interval-seconds", "1",
            "--reload-interval-seconds", "1",
        ]
    )  # fmt: skip
    serving_job.validate_args(args)
    assert args.challenger_alias == "challenger"  # on by default
    state = serving_job.build_state(spark, args)
    assert state.watcher.load_initial().version == "1"
    serving_job.start_challenger(state)
    assert state.challenger is not None and state.challenger.current is not None
    query = serving_job.start_query(spark, args, state)
    state.watcher.start()
    inbox, out = local_path(paths["input"]), local_path(f"gs://{tag}-predictions") / "predictions"
    try:
        # 1. both models score every row; the served columns are the served model's
        _drop(inbox, "one.csv", [("a1", "I love this, best day ever"), ("a2", "I hate this, awful and sad")])
        query.processAllAvailable()
        first = pd.read_parquet(out).set_index("id").sort_index()
        assert first["prediction"].to_dict() == {"a1": 1, "a2": 0}
        assert (first["model_version"] == "1").all() and (first["challenger_model_version"] == challenger).all()
        # each column is its own model's answer: the two models scored alone give the same numbers
        texts = spark.createDataFrame([(t,) for t in first["text"]], "text string")
        for version, column in (("1", "probability"), (challenger, "challenger_probability")):
            alone = serving_job.spark_model_loader(spark, "spark")(f"models:/{name}/{version}")(texts).toPandas()
            assert first[column].tolist() == pytest.approx(alone["probability"].tolist())
        assert first["challenger_prediction"].tolist() == (first["challenger_probability"] > 0.5).astype(int).tolist()
        assert first["challenger_probability"].tolist() != pytest.approx(first["probability"].tolist())

        # 2. the alias is removed while the stream runs: the challenger is let go, the rows go on
        client.delete_registered_model_alias(name, "challenger")
        wait_for(lambda: state.challenger.current is None, "the challenger to be let go", timeout=60, poll=0.3)
        _drop(inbox, "two.csv", [("b1", "what a lovely morning")])
        query.processAllAvailable()
        rows = pd.read_parquet(out).set_index("id")
        assert rows.loc["b1", "prediction"] == 1 and rows.loc["b1", "model_version"] == "1"
        assert (
            rows.loc["b1", ["challenger_prediction", "challenger_probability", "challenger_model_version"]].isna().all()
        )

        # 3. the alias names a version that cannot load: rejected, the stream goes on without a challenger
        mlflow.set_tracking_uri(mlflow_server)
        with mlflow.start_run(run_name="broken-challenger") as run:
            mlflow.log_text("this is not a Spark model", "junk/README.txt")
        broken = client.create_model_version(name, f"{run.info.artifact_uri}/junk", run_id=run.info.run_id).version
        client.set_registered_model_alias(name, "challenger", broken)
        wait_for(
            lambda: broken in state.challenger.stats.rejected_versions,
            "the broken challenger's rejection",
            timeout=60,
            poll=0.3,
        )
        _drop(inbox, "three.csv", [("c1", "still serving?")])
        query.processAllAvailable()
        assert pd.isna(pd.read_parquet(out).set_index("id").loc["c1", "challenger_model_version"])
        assert query.isActive and query.exception() is None
        assert state.watcher.current.version == "1" and state.watcher.stats.registry_errors == 0

        # 4. one Parquet schema for every batch, challenger or not; the batch metrics name the challenger
        # (names, types and order; a literal column is written as required, a NULL one as optional)
        schemas = [pq.read_schema(p) for p in sorted(out.rglob("part-*.parquet"))]
        columns = [[(f.name, f.type) for f in schema] for schema in schemas]
        assert len(columns) == 3 and all(c == columns[0] for c in columns), columns
        expected = [n for n, _ in serving_job.OUTPUT_COLUMNS if n != "batch_id"] + ["stream", "batch_id"]
        assert schemas[0].names == expected
        metrics_dir = local_path(f"gs://{tag}-predictions") / "_metrics" / "batches"
        records = [json.loads(p.read_text()) for p in sorted(metrics_dir.glob("batch-*.json"))]
        assert [r["challenger_model_version"] for r in records if r["predicted"]] == [challenger, None, None]
    finally:
        state.watcher.stop()
        state.challenger.stop()
        query.stop()


def _parsed(spark: Any, texts: list[str]) -> DataFrame:
    rows = [(f"r{i}", t, None, None, "drop.csv", i + 2, None, None, None) for i, t in enumerate(texts)]
    schema = (
        "id string, text string, label int, event_timestamp timestamp, source string, source_row bigint, "
        "raw string, error string, arrival_timestamp timestamp"
    )
    return spark.createDataFrame(rows, schema)


def _scorer(word: str, probabilities: tuple[float, float], features: str, raw_score: bool = False):  # type: ignore[no-untyped-def]
    """A scorer: negative when the text contains `word`, with P(positive) `probabilities` (negative,
    positive); it also leaves a `features` column, as a Spark pipeline does."""

    def score(df: DataFrame) -> DataFrame:
        negative = F.col("text").contains(word)
        out = (
            df.withColumn("features", F.lit(features))
            .withColumn("prediction", F.when(negative, 0.0).otherwise(1.0))
            .withColumn("probability", F.when(negative, probabilities[0]).otherwise(probabilities[1]))
        )
        return out.withColumn("raw_score", F.lit(None).cast("double")) if raw_score else out

    return score


_served = _scorer("hate", (0.1, 0.9), "served-features", raw_score=True)
# other opinions, and column names that clash with the served model's (`features`, `prediction`)
_challenger = _scorer("sad", (0.3, 0.7), "challenger-features")


def _refuse(text: str) -> float:
    raise ValueError(f"challenger cannot score {text!r}")


def _failing(df: DataFrame) -> DataFrame:
    """A challenger that loads but fails on live rows (in the executors, when the batch is written)."""
    explode = F.udf(lambda text: _refuse(text), "double")
    return df.withColumn("prediction", explode(F.col("text"))).withColumn("probability", F.lit(0.5))


def test_challenger_columns_beside_served_ones_and_a_failing_challenger_is_dropped_from_the_batch(
    spark: Any, mlflow_server: str, tmp_path: Path
) -> None:
    texts = ["i hate mondays", "so sad today", "love it"]
    now = datetime.now(UTC).replace(tzinfo=None)
    served = LoadedModel(_served, "m", "3", "production", None, "models:/m/3")
    both = serving_job.score_batch(
        _parsed(spark, texts), served, 7, now, True, LoadedModel(_challenger, "m", "5", "challenger", None, "u")
    ).toPandas()
    assert list(both.columns) == [n for n, _ in serving_job.OUTPUT_COLUMNS] + ["features"]
    assert both["prediction"].tolist() == [0, 1, 1] and both["probability"].tolist() == [0.1, 0.9, 0.9]
    assert both["challenger_prediction"].tolist() == [1, 0, 1]
    assert both["challenger_probability"].tolist() == [0.7, 0.3, 0.7]
    assert set(both["challenger_model_version"]) == {"5"} and set(both["model_version"]) == {"3"}
    assert set(both["features"]) == {"served-features"} and both["id"].tolist() == ["r0", "r1", "r2"]
    alone = serving_job.score_batch(_parsed(spark, texts), served, 7, now, False).toPandas()
    assert list(alone.columns) == [n for n, _ in serving_job.OUTPUT_COLUMNS]
    assert alone[list(serving_job.CHALLENGER_COLUMNS)].isna().all().all()

    # A challenger that passes the registry look-up but fails on live rows: the batch is written with the
    # served predictions only, and that version is not used again.
    client = MlflowClient(mlflow_server)
    name = "challenger-itest-failing"
    client.create_registered_model(name)
    run = client.create_run(client.create_experiment(name))  # the loader below ignores the artifacts
    for _ in range(2):
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "production", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    watcher: ModelWatcher[Any] = ModelWatcher(mlflow_server, name, "challenger", lambda _uri: _failing, optional=True)
    assert watcher.check_once() == (None, "2", True)
    args = serving_job.build_arg_parser().parse_args(
        ["--input-path", "x", "--output-path", str(tmp_path), "--checkpoint", str(tmp_path / "ckpt")]
    )
    state = serving_job.ServingState(
        args=args,
        watcher=watcher,  # unused here: the served model is passed in
        output_base=str(tmp_path / "predictions"),
        quarantine_base=str(tmp_path / "quarantine"),
        metrics_base=str(tmp_path / "metrics"),
        checkpoint=str(tmp_path / "ckpt"),
        challenger=watcher,
    )
    stats = serving_job.BatchStats(batch_id=0, predicted=3)
    serving_job.score_and_write(state, _parsed(spark, texts), served, stats, now, "s1")
    written = pd.read_parquet(tmp_path / "predictions")
    assert written["prediction"].tolist() == [0, 1, 1] and written["challenger_prediction"].isna().all()
    assert stats.challenger_version is None and watcher.current is None
    assert watcher.stats.rejected_versions["2"].startswith("failed a batch: ")
    assert watcher.check_once() == (None, None, False)  # not loaded again
