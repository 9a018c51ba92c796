"""The job arguments (jobs.arguments) and job dicts (jobs.builders) as a user meets them: the defaults
written into every spec, and the error that names the setting that is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from sentiment_mlops import jobs

REQUIRED_TRAINING = {"input": "gs://r/x.csv", "output": "gs://m/o", "mlflow_uri": "http://m:5000"}
REQUIRED_SERVING = {
    "source_type": "file",
    "input_path": "gs://i/in",
    "output_path": "gs://p/out",
    "checkpoint": "gs://c/ck",
    "mlflow_uri": "http://m:5000",
    "model_name": "m",
}


def test_training_defaults_are_written_out() -> None:
    assert jobs.training_args(**REQUIRED_TRAINING) == [
        "--input=gs://r/x.csv",
        "--output=gs://m/o",
        "--mlflow-uri=http://m:5000",
        "--mlflow-experiment=sentiment-analysis-pipeline",
        "--registered-model-name=twitter-sentiment-model",
        "--num-features=32768",
        "--sample-fraction=1.0",
        "--cv-folds=2",
        "--max-rows=0",
        "--models=all",
        "--seed=42",
        "--enable-caching",
    ]


def test_serving_defaults_are_written_out_and_unset_options_left_out() -> None:
    assert jobs.serving_args(**REQUIRED_SERVING, quarantine_path="", metrics_path=None) == [
        "--source-type=file",
        "--output-path=gs://p/out",
        "--checkpoint=gs://c/ck",
        "--mlflow-uri=http://m:5000",
        "--model-name=m",
        "--model-stage=Production",
        "--model-flavor=spark",
        "--batch-interval-seconds=30",
        "--reload-interval-seconds=300",
        "--input-path=gs://i/in",
    ]


@pytest.mark.parametrize("name", list(REQUIRED_TRAINING) + ["mlflow_experiment", "registered_model_name", "models"])
@pytest.mark.parametrize("empty", ["", "   "])
def test_each_missing_training_setting_is_named(name: str, empty: str) -> None:
    with pytest.raises(ValueError) as info:
        jobs.training_args(**{**REQUIRED_TRAINING, name: empty})
    assert str(info.value) == f"{name} is required"


@pytest.mark.parametrize("name", ["output_path", "checkpoint", "mlflow_uri", "model_name", "model_stage"])
def test_each_missing_serving_setting_is_named(name: str) -> None:
    with pytest.raises(ValueError) as info:
        jobs.serving_args(**{**REQUIRED_SERVING, name: ""})
    assert str(info.value) == f"{name} is required"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_features": 0}, "num_features must be positive, got 0"),
        ({"sample_fraction": 0.0}, "sample_fraction must be in (0, 1], got 0.0"),
        ({"sample_fraction": 1.01}, "sample_fraction must be in (0, 1], got 1.01"),
        ({"cv_folds": 1}, "cv_folds must be at least 2, got 1"),
        ({"max_rows": -1}, "max_rows must be 0 (all) or positive, got -1"),
    ],
)
def test_training_range_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        jobs.training_args(**REQUIRED_TRAINING, **overrides)
    assert str(info.value) == message


def test_training_range_boundaries_are_accepted() -> None:
    args = jobs.training_args(**REQUIRED_TRAINING, num_features=1, sample_fraction=1.0, cv_folds=2, max_rows=0)
    assert "--num-features=1" in args and "--sample-fraction=1.0" in args
    assert "--sample-fraction=1e-06" in jobs.training_args(**REQUIRED_TRAINING, sample_fraction=0.000001)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_path": None}, "input_path is required when source_type is 'file'"),
        (
            {"source_type": "kafka", "input_path": None, "kafka_bootstrap": "k:9092"},
            "kafka_bootstrap and kafka_topic are required when source_type is 'kafka'",
        ),
        (
            {"source_type": "kafka", "input_path": None, "kafka_topic": "t"},
            "kafka_bootstrap and kafka_topic are required when source_type is 'kafka'",
        ),
        ({"model_flavor": "onnx"}, "model_flavor must be one of spark, pyfunc, got 'onnx'"),
        ({"batch_interval_seconds": 0}, "batch_interval_seconds must be positive, got 0"),
        ({"reload_interval_seconds": 0}, "reload_interval_seconds must be positive, got 0"),
        ({"max_files_per_trigger": 0}, "max_files_per_trigger must be positive when given, got 0"),
        ({"max_offsets_per_trigger": -5}, "max_offsets_per_trigger must be positive when given, got -5"),
        (
            {"write_kafka": True, "kafka_output_bootstrap": "k:9092"},
            "write_kafka needs kafka_output_topic and kafka_output_bootstrap (or kafka_bootstrap)",
        ),
        (
            {"write_kafka": True, "kafka_output_topic": "out"},
            "write_kafka needs kafka_output_topic and kafka_output_bootstrap (or kafka_bootstrap)",
        ),
    ],
)
def test_serving_setting_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        jobs.serving_args(**{**REQUIRED_SERVING, **overrides})
    assert str(info.value) == message


def test_serving_limits_of_one_are_accepted() -> None:
    args = jobs.serving_args(
        **REQUIRED_SERVING,
        batch_interval_seconds=1,
        reload_interval_seconds=1,
        max_files_per_trigger=1,
        max_offsets_per_trigger=1,
    )
    assert {
        "--batch-interval-seconds=1",
        "--reload-interval-seconds=1",
        "--max-files-per-trigger=1",
        "--max-offsets-per-trigger=1",
    } <= set(args)


def test_write_kafka_with_explicit_output_brokers() -> None:
    args = jobs.serving_args(
        **{**REQUIRED_SERVING, "source_type": "kafka", "input_path": None},
        kafka_bootstrap="in:9092",
        kafka_topic="t",
        write_kafka=True,
        kafka_output_bootstrap="out:9092",
        kafka_output_topic="o",
    )
    assert args[-2:] == ["--kafka-output-bootstrap=out:9092", "--kafka-output-topic=o"]


TARGET_WITH_SLASH = jobs.DataprocTarget("proj-1", "us-central1", "c1", "gs://acme-code/jobs/")


def test_code_uri_with_a_trailing_slash_gives_clean_uris() -> None:
    training = jobs.training_job(TARGET_WITH_SLASH, jobs.training_args(**REQUIRED_TRAINING))
    serving = jobs.serving_job(TARGET_WITH_SLASH, jobs.serving_args(**REQUIRED_SERVING))
    assert training["pyspark_job"]["main_python_file_uri"] == "gs://acme-code/jobs/sentiment_multimodel.py"
    assert serving["pyspark_job"]["main_python_file_uri"] == (
        "gs://acme-code/jobs/streaming_serving_mlflow_hdfs_kafka_optimize.py"
    )
    for job in (training, serving):
        assert job["pyspark_job"]["python_file_uris"] == ["gs://acme-code/jobs/sentiment_mlops.zip"]


def test_kafka_package_is_added_once_to_the_callers_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jobs.KAFKA_PACKAGE_ENV, "k:kafka:1")
    job = jobs.serving_job(
        TARGET_WITH_SLASH,
        jobs.serving_args(**REQUIRED_SERVING),
        kafka=True,
        properties={"spark.jars.packages": " a:b:1 , k:kafka:1,, c:d:2 "},
    )
    assert job["pyspark_job"]["properties"]["spark.jars.packages"] == "a:b:1,k:kafka:1,c:d:2"


def test_a_string_instead_of_an_argument_list_is_refused() -> None:
    with pytest.raises(ValueError) as info:
        jobs.serving_job(TARGET_WITH_SLASH, "--source-type=file")  # type: ignore[arg-type]
    assert str(info.value) == "args must be a list of strings, not a string"


def test_stream_metrics_flags_reach_the_serving_jobs_own_parser() -> None:
    """--metrics-port/--metrics-host/--pushgateway-url as the job spec writes them are what the serving
    job parses; the host is only written with a port, and unset options are left out."""
    from sentiment_mlops.serving.job import build_arg_parser

    args = jobs.serving_args(
        **REQUIRED_SERVING, metrics_port=9108, metrics_host="0.0.0.0", pushgateway_url="http://pgw:9091"
    )
    assert {"--metrics-port=9108", "--metrics-host=0.0.0.0", "--pushgateway-url=http://pgw:9091"} <= set(args)
    parsed = build_arg_parser().parse_args(args)
    assert (parsed.metrics_port, parsed.metrics_host, parsed.pushgateway_url) == (9108, "0.0.0.0", "http://pgw:9091")

    host_only = jobs.serving_args(**REQUIRED_SERVING, metrics_host="0.0.0.0")
    assert not [a for a in host_only if a.startswith(("--metrics", "--pushgateway"))]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metrics_port": 0}, "metrics_port must be a TCP port (1-65535) when given, got 0"),
        ({"metrics_port": 65536}, "metrics_port must be a TCP port (1-65535) when given, got 65536"),
        ({"pushgateway_url": "pgw:9091"}, "pushgateway_url must be an http(s):// URL when given, got 'pgw:9091'"),
    ],
)
def test_stream_metrics_setting_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        jobs.serving_args(**{**REQUIRED_SERVING, **overrides})
    assert str(err.value) == message
