"""Fixed, literal job specs: what the DAGs and the CI command line submit for given settings, written out
in full, and every argument parsed back with the job's own argparse parser. A setting wired to the wrong
flag (say the batch interval into --reload-interval-seconds) changes a literal here."""

from __future__ import annotations

import dataclasses
import io
from contextlib import redirect_stdout
from typing import Any

import pytest
from google.cloud import dataproc_v1

from sentiment_mlops import jobs
from sentiment_mlops.jobs import cli as jobs_cli
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.tasks.serving import build_serving_job
from sentiment_mlops.orchestration.tasks.training import build_training_jobs
from sentiment_mlops.serving import job as serving_job
from sentiment_mlops.training import job as training_job

# Every setting differs from its default and from every other setting of the same type, so a setting
# that reaches the wrong flag cannot go unnoticed.
CFG = AirflowConfig(
    backend="dataproc",
    gcp_project_id="my-proj-123",
    gcp_region="europe-west1",
    dataproc_cluster_name="sentiment-cluster",
    gcs_bucket="acme",
    mlflow_tracking_uri="http://mlflow.internal:5000",
    serving_model_name="twitter-sentiment-model",
    serving_model_stage="champion",
    serving_batch_interval=45,
    serving_reload_interval=600,
    kafka_bootstrap_servers="k1:9092,k2:9092",
    kafka_input_topic="tweets-in",
    kafka_output_topic="tweets-out",
)

TRAINING_PROPERTIES = {
    "spark.sentiment.backend": "dataproc",
    "spark.driver.memory": "4g",
    "spark.executor.memory": "4g",
    "spark.driver.maxResultSize": "2g",
    "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    "spark.kryoserializer.buffer.max": "512m",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.driver.extraJavaOptions": "-Xss16m",
    "spark.executor.extraJavaOptions": "-Xss16m",
}
STREAMING_PROPERTIES = {
    "spark.sentiment.backend": "dataproc",
    "spark.streaming.stopGracefullyOnShutdown": "true",
    "spark.dynamicAllocation.enabled": "false",
    "spark.executor.instances": "2",
    "spark.driver.memory": "4g",
    "spark.executor.memory": "4g",
    "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.streaming.metricsEnabled": "true",
    "spark.driver.extraJavaOptions": "-Xss16m",
    "spark.executor.extraJavaOptions": "-Xss16m",
}


def _training_expected(variant: str, args: list[str]) -> dict[str, Any]:
    return {
        "reference": {"project_id": "my-proj-123", "job_id": f"sentiment-training-{variant}-20261130t1200"},
        "placement": {"cluster_name": "sentiment-cluster"},
        "labels": {
            "variant": variant,
            "run": "20261130t1200",
            "airflow-dag": "sentiment_ml_training_pipeline",
            "app": "sentiment-training",
        },
        "pyspark_job": {
            "main_python_file_uri": "gs://acme-code/jobs/sentiment_multimodel.py",
            "python_file_uris": ["gs://acme-code/jobs/sentiment_mlops.zip"],
            "args": args,
            "properties": TRAINING_PROPERTIES,
        },
    }


EXPECTED_TRAINING = {
    "full": _training_expected(
        "full",
        [
            "--input=gs://acme-raw/raw/train.csv",
            "--output=gs://acme-models/training/20261130t1200/full",
            "--mlflow-uri=http://mlflow.internal:5000",
            "--mlflow-experiment=sentiment-analysis-pipeline",
            "--registered-model-name=twitter-sentiment-model",
            "--num-features=32768",
            "--sample-fraction=1.0",
            "--cv-folds=2",
            "--max-rows=5000",
            "--models=lr,svc",
            "--seed=42",
            "--enable-caching",
        ],
    ),
    "cv": _training_expected(
        "cv",
        [
            "--input=gs://acme-raw/raw/train.csv",
            "--output=gs://acme-models/training/20261130t1200/cv",
            "--mlflow-uri=http://mlflow.internal:5000",
            "--mlflow-experiment=sentiment-analysis-pipeline-cv",
            "--registered-model-name=twitter-sentiment-model",
            "--num-features=16384",
            "--sample-fraction=0.3",
            "--cv-folds=2",
            "--max-rows=5000",
            "--models=lr,svc",
            "--seed=42",
            "--enable-cv",
            "--enable-caching",
        ],
    ),
}

EXPECTED_FILE_SERVING = {
    "reference": {"project_id": "my-proj-123", "job_id": "sentiment-serving-file-20261130t1200"},
    "placement": {"cluster_name": "sentiment-cluster"},
    "labels": {
        "source": "file",
        "model": "twitter-sentiment-model",
        "run": "20261130t1200",
        "app": "sentiment-serving",
        # at most one serving job per checkpoint: found by this label (a hash of the checkpoint URI)
        "checkpoint": "ckpt-0ce08f814db3ac6c",
    },
    "pyspark_job": {
        "main_python_file_uri": "gs://acme-code/jobs/streaming_serving_mlflow_hdfs_kafka_optimize.py",
        "python_file_uris": ["gs://acme-code/jobs/sentiment_mlops.zip"],
        "args": [
            "--source-type=file",
            "--output-path=gs://acme-predictions",
            "--checkpoint=gs://acme-checkpoint/streaming/file",
            "--mlflow-uri=http://mlflow.internal:5000",
            "--model-name=twitter-sentiment-model",
            "--model-stage=champion",
            "--model-flavor=spark",
            "--batch-interval-seconds=45",
            "--reload-interval-seconds=600",
            "--input-path=gs://acme-streaming-input",
            "--max-files-per-trigger=4",
            "--metrics-path=gs://acme-predictions/_metrics/batches",
            "--challenger-alias=challenger",
        ],
        "properties": STREAMING_PROPERTIES,
    },
}

EXPECTED_KAFKA_SERVING_ARGS = [
    "--source-type=kafka",
    "--output-path=gs://acme-predictions",
    "--checkpoint=gs://acme-checkpoint/streaming/kafka",
    "--mlflow-uri=http://mlflow.internal:5000",
    "--model-name=twitter-sentiment-model",
    "--model-stage=champion",
    "--model-flavor=spark",
    "--batch-interval-seconds=45",
    "--reload-interval-seconds=600",
    "--write-kafka",
    "--kafka-bootstrap=k1:9092,k2:9092",
    "--kafka-topic=tweets-in",
    "--max-offsets-per-trigger=1000",
    "--metrics-path=gs://acme-predictions/_metrics/batches",
    "--challenger-alias=challenger",
    "--kafka-output-bootstrap=k1:9092,k2:9092",
    "--kafka-output-topic=tweets-out",
    "--starting-offsets=latest",
    "--dead-letter-topic=tweets-dlq",
]


def _training_jobs() -> dict[str, dict[str, Any]]:
    return build_training_jobs(
        CFG,
        input_uri="gs://acme-raw/raw/train.csv",
        run_tag="20261130t1200",
        variants=("full", "cv"),
        max_rows=5000,
        models="lr,svc",
        dag_id="sentiment_ml_training_pipeline",
    )


def test_training_jobs_of_the_pipeline_are_exactly_these() -> None:
    assert _training_jobs() == EXPECTED_TRAINING


def test_training_job_arguments_parse_back_to_the_settings() -> None:
    full = training_job.build_arg_parser().parse_args(EXPECTED_TRAINING["full"]["pyspark_job"]["args"])
    training_job.validate_args(full)
    cv = training_job.build_arg_parser().parse_args(EXPECTED_TRAINING["cv"]["pyspark_job"]["args"])
    training_job.validate_args(cv)
    assert (full.input, full.output, full.mlflow_uri) == (
        "gs://acme-raw/raw/train.csv",
        "gs://acme-models/training/20261130t1200/full",
        "http://mlflow.internal:5000",
    )
    assert (full.max_rows, full.models, full.seed, full.registered_model_name) == (
        5000,
        "lr,svc",
        42,
        "twitter-sentiment-model",
    )
    assert (full.enable_cv, full.sample_fraction, full.num_features) == (False, 1.0, 32768)
    assert (cv.enable_cv, cv.sample_fraction, cv.num_features, cv.cv_folds) == (True, 0.3, 16384, 2)
    assert cv.mlflow_experiment == "sentiment-analysis-pipeline-cv" and full.enable_caching and cv.enable_caching
    assert not full.force_promote


def test_force_promote_reaches_the_training_job() -> None:
    jobs_ = build_training_jobs(CFG, input_uri="gs://acme-raw/x.csv", run_tag="t", force_promote=True)
    for job in jobs_.values():
        assert training_job.build_arg_parser().parse_args(job["pyspark_job"]["args"]).force_promote


def test_file_serving_job_of_the_dag_is_exactly_this() -> None:
    assert build_serving_job(CFG, "20261130t1200", max_files_per_trigger=4) == EXPECTED_FILE_SERVING


def test_kafka_serving_job_arguments_are_exactly_these() -> None:
    cfg = dataclasses.replace(CFG, serving_source_type="kafka")
    job = build_serving_job(
        cfg, "r2", max_offsets_per_trigger=1000, starting_offsets="latest", dead_letter_topic="tweets-dlq"
    )
    assert job["pyspark_job"]["args"] == EXPECTED_KAFKA_SERVING_ARGS
    assert job["pyspark_job"]["properties"] == {**STREAMING_PROPERTIES, "spark.jars.packages": jobs.kafka_package()}
    assert job["reference"]["job_id"] == "sentiment-serving-kafka-r2" and job["labels"]["source"] == "kafka"


@pytest.mark.parametrize("args", [EXPECTED_FILE_SERVING["pyspark_job"]["args"], EXPECTED_KAFKA_SERVING_ARGS])
def test_serving_job_arguments_parse_back_to_the_settings(args: list[str]) -> None:
    ns = serving_job.build_arg_parser().parse_args(args)
    serving_job.validate_args(ns)
    assert ns.batch_interval_seconds == CFG.serving_batch_interval == 45
    assert ns.reload_interval_seconds == CFG.serving_reload_interval == 600
    assert (ns.mlflow_uri, ns.model_name, ns.model_stage, ns.model_flavor) == (
        "http://mlflow.internal:5000",
        "twitter-sentiment-model",
        "champion",
        "spark",
    )
    assert ns.output_path == "gs://acme-predictions"
    assert ns.metrics_path == "gs://acme-predictions/_metrics/batches"
    if ns.source_type == "kafka":
        assert (ns.kafka_bootstrap, ns.kafka_topic, ns.kafka_output_topic) == (
            "k1:9092,k2:9092",
            "tweets-in",
            "tweets-out",
        )
        assert ns.write_kafka and ns.kafka_output_bootstrap == "k1:9092,k2:9092"
        assert (ns.max_offsets_per_trigger, ns.starting_offsets, ns.dead_letter_topic) == (1000, "latest", "tweets-dlq")
        assert ns.checkpoint == "gs://acme-checkpoint/streaming/kafka" and ns.input_path is None
    else:
        assert (ns.input_path, ns.max_files_per_trigger) == ("gs://acme-streaming-input", 4)
        assert ns.checkpoint == "gs://acme-checkpoint/streaming/file" and not ns.write_kafka


def _cli_job(*argv: str) -> dict[str, Any]:
    import json

    out = io.StringIO()
    with redirect_stdout(out):
        assert jobs_cli.main(["job-json", *argv]) == 0
    return json.loads(out.getvalue())


def test_ci_cd_serving_command_line_maps_every_flag_to_its_own_setting() -> None:
    """What ci-cd/*.sh call: each builder option of `jobs.cli` lands on the flag of the same name."""
    job = _cli_job(
        "--kind=serving",
        "--project-id=my-proj-123",
        "--region=europe-west1",
        "--cluster=sentiment-cluster",
        "--gcs-bucket=acme",
        "--job-id=serve-7",
        "--source-type=file",
        "--input-path=gs://acme-streaming-input/incoming",
        "--output-path=gs://acme-predictions/streaming",
        "--checkpoint=gs://acme-checkpoint/streaming/file",
        "--mlflow-uri=http://mlflow.internal:5000",
        "--model-name=twitter-sentiment-model",
        "--model-stage=champion",
        "--model-flavor=pyfunc",
        "--batch-interval-seconds=45",
        "--reload-interval-seconds=600",
        "--quarantine-path=gs://acme-predictions/bad",
        "--max-files-per-trigger=4",
        "--metrics-path=gs://acme-predictions/m",
        "--max-failures-per-hour=3",
    )
    assert job["pyspark_job"]["args"] == [
        "--source-type=file",
        "--output-path=gs://acme-predictions/streaming",
        "--checkpoint=gs://acme-checkpoint/streaming/file",
        "--mlflow-uri=http://mlflow.internal:5000",
        "--model-name=twitter-sentiment-model",
        "--model-stage=champion",
        "--model-flavor=pyfunc",
        "--batch-interval-seconds=45",
        "--reload-interval-seconds=600",
        "--input-path=gs://acme-streaming-input/incoming",
        "--quarantine-path=gs://acme-predictions/bad",
        "--max-files-per-trigger=4",
        "--metrics-path=gs://acme-predictions/m",
    ]
    assert job["scheduling"] == {"max_failures_per_hour": 3}
    assert job["reference"] == {"project_id": "my-proj-123", "job_id": "serve-7"}
    ns = serving_job.build_arg_parser().parse_args(job["pyspark_job"]["args"])
    assert (ns.batch_interval_seconds, ns.reload_interval_seconds, ns.model_flavor) == (45, 600, "pyfunc")


def test_ci_cd_training_command_line_maps_every_flag_to_its_own_setting() -> None:
    job = _cli_job(
        "--kind=training",
        "--project-id=my-proj-123",
        "--region=europe-west1",
        "--cluster=sentiment-cluster",
        "--code-uri=gs://elsewhere/code",
        "--input=gs://acme-raw/in.csv",
        "--output=gs://acme-models/out",
        "--mlflow-uri=http://mlflow.internal:5000",
        "--mlflow-experiment=exp-2",
        "--registered-model-name=reg-3",
        "--num-features=1024",
        "--sample-fraction=0.25",
        "--enable-cv",
        "--cv-folds=4",
        "--no-enable-caching",
        "--max-rows=77",
        "--models=nb",
        "--seed=9",
        "--property=spark.executor.memory=8g",
        "--label=team=ml",
    )
    assert job["pyspark_job"]["main_python_file_uri"] == "gs://elsewhere/code/sentiment_multimodel.py"
    assert job["pyspark_job"]["python_file_uris"] == ["gs://elsewhere/code/sentiment_mlops.zip"]
    assert job["pyspark_job"]["properties"] == {**TRAINING_PROPERTIES, "spark.executor.memory": "8g"}
    assert job["labels"] == {"team": "ml", "app": "sentiment-training"}
    ns = training_job.build_arg_parser().parse_args(job["pyspark_job"]["args"])
    assert (ns.input, ns.output, ns.mlflow_uri, ns.mlflow_experiment, ns.registered_model_name) == (
        "gs://acme-raw/in.csv",
        "gs://acme-models/out",
        "http://mlflow.internal:5000",
        "exp-2",
        "reg-3",
    )
    assert (ns.num_features, ns.sample_fraction, ns.enable_cv, ns.cv_folds, ns.enable_caching) == (
        1024,
        0.25,
        True,
        4,
        False,
    )
    assert (ns.max_rows, ns.models, ns.seed) == (77, "nb", 9)


def test_fixed_specs_are_valid_dataproc_jobs() -> None:
    for job in [*EXPECTED_TRAINING.values(), EXPECTED_FILE_SERVING]:
        jobs.validate_job(job)
        assert dataproc_v1.Job(**job).pyspark_job.args == job["pyspark_job"]["args"]
