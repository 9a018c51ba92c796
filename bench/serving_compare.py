"""Benchmark part (not a test): the serving job's file source against two reference pipelines, in the same
run, on the same files and the same model, each warm (one small run first):

* native: the 40-line pipeline, `spark.readStream.csv` (header, schema) -> `model.transform` -> Parquet;
* spark_udf: the same, scored through `mlflow.pyfunc.spark_udf` (what MLflow's docs suggest);
* job: the serving job (`build_state` -> `start_query`, `--available-now`).

Each reads its own copy of the files with an availableNow trigger; rows/s = rows / wall time of the query.
Used by bench/serving.py (scenario `compare`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def native_scorer(spark: SparkSession, uri: str) -> Callable[[DataFrame], DataFrame]:
    import mlflow
    from pyspark.ml.functions import vector_to_array

    model = mlflow.spark.load_model(uri)

    def score(df: DataFrame) -> DataFrame:
        out = model.transform(df)
        return out.select("id", "text", "label", "prediction", vector_to_array("probability")[1].alias("probability"))

    return score


def udf_scorer(spark: SparkSession, uri: str) -> Callable[[DataFrame], DataFrame]:
    import mlflow
    from pyspark.sql import functions as F

    udf = mlflow.pyfunc.spark_udf(spark, model_uri=uri, result_type="double", env_manager="local")
    return lambda df: df.select("id", "text", "label", udf(F.struct("text")).alias("prediction"))


def run_plain(spark: SparkSession, score: Callable[[DataFrame], DataFrame], inbox: Path, out: Path) -> float:
    """The reference pipeline over `inbox` until all is written; returns wall seconds."""
    t0 = time.perf_counter()
    stream = spark.readStream.schema("id string, text string, label int").option("header", "true").csv(str(inbox))
    query = (
        score(stream)
        .writeStream.format("parquet")
        .option("path", str(out / "data"))
        .option("checkpointLocation", str(out / "ckpt"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    return time.perf_counter() - t0


def run_job(spark: SparkSession, argv: list[str]) -> float:
    from sentiment_mlops.serving import job as serving_job

    args = serving_job.build_arg_parser().parse_args([*argv, "--available-now"])
    serving_job.validate_args(args)
    state = serving_job.build_state(spark, args)
    state.watcher.load_initial()
    t0 = time.perf_counter()
    query = serving_job.start_query(spark, args, state)
    query.awaitTermination()
    seconds = time.perf_counter() - t0
    if query.exception():
        raise RuntimeError(f"job failed: {query.exception()}")
    return seconds


def copy_files(src: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in src:
        shutil.copy(f, dest / f.name)
    return dest


def compare_pipelines(
    spark: SparkSession,
    home: Path,
    mlflow_uri: str,
    model: str,
    version: str,
    files: list[Path],
    warm_file: Path,
    rows: int,
) -> dict[str, Any]:
    """rows/s of native, spark_udf and the job on copies of `files` (after one warm run of `warm_file`)."""
    from sentiment_mlops.core.storage import local_path

    uri = f"models:/{model}/{version}"
    result: dict[str, Any] = {"rows": rows, "files": len(files)}
    for name, make in (("native", native_scorer), ("spark_udf", udf_scorer)):
        score = make(spark, uri)
        run_plain(spark, score, copy_files([warm_file], home / f"cmp-{name}-warm"), home / f"cmp-{name}-warm-out")
        seconds = run_plain(spark, score, copy_files(files, home / f"cmp-{name}-in"), home / f"cmp-{name}-out")
        result[name] = {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}
    for tag, chosen in (("cmpjob-warm", [warm_file]), ("cmpjob", files)):
        copy_files(chosen, local_path(f"gs://bench-{tag}-in"))
        argv = ["--input-path", f"gs://bench-{tag}-in", "--output-path", f"gs://bench-{tag}-out",
                "--checkpoint", f"gs://bench-{tag}-ckpt/q", "--mlflow-uri", mlflow_uri, "--model-name", model,
                "--model-stage", version, "--batch-interval-seconds", "1"]  # fmt: skip
        seconds = run_job(spark, argv)
    result["job"] = {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}
    result["job_vs_native"] = round(result["job"]["rows_per_s"] / result["native"]["rows_per_s"], 2)
    result["job_vs_spark_udf"] = round(result["job"]["rows_per_s"] / result["spark_udf"]["rows_per_s"], 2)
    return result


def print_comparison(c: dict[str, Any]) -> None:
    print(f"\nsame {c['files']} files ({c['rows']:,} rows), same model, warm, availableNow:")
    for name in ("native", "spark_udf", "job"):
        print(f"  {name:10} {c[name]['seconds']:7.2f} s {c[name]['rows_per_s']:>9,} rows/s")
    print(f"  job / native {c['job_vs_native']:.2f}x, job / spark_udf {c['job_vs_spark_udf']:.2f}x")
