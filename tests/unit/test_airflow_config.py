"""airflow_config: Variables -> AirflowConfig, defaults, and errors that name the Variable."""

from __future__ import annotations

import dataclasses

import pytest

from sentiment_mlops.orchestration.config import (
    GCP_CONN_ID,
    LOCAL_DEFAULT_VARIABLES,
    AirflowConfig,
    ConfigError,
    load_airflow_config,
    mlflow_uri_from,
)

DATAPROC_VARS = {"SENTIMENT_BACKEND": "dataproc", "GCP_PROJECT_ID": "my-proj-123", "DATAPROC_CLUSTER_NAME": "c1"}


def test_defaults_from_no_variables() -> None:
    cfg = load_airflow_config({})
    assert cfg == AirflowConfig()
    assert cfg.backend == "local" and cfg.is_local
    assert cfg.gcp_region == "us-central1"
    assert cfg.gcs_bucket == "sentiment-mlops"
    assert cfg.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert cfg.serving_deploy_mode == "test"
    assert cfg.serving_model_name == "twitter-sentiment-model-best"
    assert cfg.serving_model_stage == "Production"
    assert cfg.serving_source_type == "file"
    assert (cfg.serving_batch_interval, cfg.serving_reload_interval) == (30, 300)
    assert cfg.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert cfg.gcp_conn_id == GCP_CONN_ID == "google_cloud_default"
    assert cfg.training_input_path.startswith("gs://sentiment-mlops-raw/")


def test_getter_callable_like_variable_get() -> None:
    store = {"GCS_BUCKET": "acme-ml", "serving_batch_interval": "10"}
    calls = []

    def get(key: str, default: str | None = None) -> str | None:
        calls.append((key, default))
        return store.get(key, default)

    cfg = load_airflow_config(get)
    assert cfg.gcs_bucket == "acme-ml"
    assert cfg.serving_batch_interval == 10
    assert cfg.training_input_path.startswith("gs://acme-ml-raw/")
    assert all(default is None for _, default in calls)  # Variable.get(key, None) never raises


def test_values_are_normalised_and_blank_means_default() -> None:
    cfg = load_airflow_config(
        {"serving_deploy_mode": " Production ", "SENTIMENT_BACKEND": "LOCAL", "serving_source_type": "Kafka"}
    )
    assert (cfg.serving_deploy_mode, cfg.backend, cfg.serving_source_type) == ("production", "local", "kafka")
    assert load_airflow_config({"GCS_BUCKET": "   "}).gcs_bucket == "sentiment-mlops"


def test_mlflow_uri_precedence() -> None:
    assert load_airflow_config({"MLFLOW_VM_IP": "192.0.2.10"}).mlflow_tracking_uri == "http://192.0.2.10:5000"
    assert load_airflow_config({"MLFLOW_VM_IP": "192.0.2.10:8081"}).mlflow_tracking_uri == "http://192.0.2.10:8081"
    both = {"MLFLOW_VM_IP": "192.0.2.10", "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000/"}
    assert load_airflow_config(both).mlflow_tracking_uri == "http://mlflow.internal:5000"
    assert mlflow_uri_from(None, None) == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"serving_deploy_mode": "prod"}, ["serving_deploy_mode='prod'", "test, production"]),
        ({"SENTIMENT_BACKEND": "cloud"}, ["SENTIMENT_BACKEND='cloud'", "local, dataproc"]),
        ({"serving_source_type": "socket"}, ["serving_source_type='socket'", "file, kafka"]),
        ({"serving_batch_interval": "30s"}, ["serving_batch_interval='30s'", "whole number of seconds"]),
        ({"serving_reload_interval": "0"}, ["serving_reload_interval='0'", "whole number of seconds"]),
        ({"GCS_BUCKET": "gs://Bad_Bucket"}, ["GCS_BUCKET='gs://Bad_Bucket'", "without gs://"]),
        ({"kafka_input_topic": "bad topic"}, ["kafka_input_topic='bad topic'", "Kafka topic"]),
        ({"MLFLOW_TRACKING_URI": "mlflow:5000"}, ["MLFLOW_TRACKING_URI='mlflow:5000'", "http(s)://"]),
        ({"SENTIMENT_BACKEND": "dataproc"}, ["GCP_PROJECT_ID is not set", "DATAPROC_CLUSTER_NAME is not set"]),
        ({**DATAPROC_VARS, "GCP_PROJECT_ID": ""}, ["GCP_PROJECT_ID is not set", "SENTIMENT_BACKEND=dataproc"]),
    ],
)
def test_bad_variables_name_the_variable_and_allowed_values(variables: dict, expected: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        load_airflow_config(variables)
    assert isinstance(err.value, ConfigError)
    for text in expected:
        assert text in str(err.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        load_airflow_config({"serving_deploy_mode": "x", "serving_source_type": "y", "serving_batch_interval": "z"})
    message = str(err.value)
    assert "serving_deploy_mode" in message and "serving_source_type" in message and "serving_batch_interval" in message


def test_dataproc_backend_with_required_variables() -> None:
    cfg = load_airflow_config({**DATAPROC_VARS, "GCP_REGION": "europe-west1"})
    assert not cfg.is_local
    assert (cfg.gcp_project_id, cfg.dataproc_cluster_name, cfg.gcp_region) == ("my-proj-123", "c1", "europe-west1")


def test_backend_override_skips_dataproc_requirements() -> None:
    cfg = load_airflow_config({"SENTIMENT_BACKEND": "dataproc"}, backend_override="local")
    assert cfg.backend == "local"


def test_overrides_from_params_are_validated_and_named() -> None:
    cfg = load_airflow_config({})
    assert cfg.with_overrides(serving_deploy_mode=None, serving_model_name="") is cfg
    changed = cfg.with_overrides(serving_deploy_mode="production", serving_batch_interval="5")
    assert (changed.serving_deploy_mode, changed.serving_batch_interval) == ("production", 5)
    with pytest.raises(ConfigError, match="param serving_source_type='socket'.*file, kafka"):
        cfg.with_overrides(serving_source_type="socket")


def test_round_trip_through_xcom_dict_and_frozen() -> None:
    cfg = load_airflow_config({**DATAPROC_VARS, "serving_reload_interval": "60"})
    data = cfg.as_dict()
    assert AirflowConfig.from_dict({**data, "unknown_future_field": 1}) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.backend = "local"  # type: ignore[misc]


def test_setup_defaults_form_a_valid_local_config() -> None:
    cfg = load_airflow_config(LOCAL_DEFAULT_VARIABLES)
    assert cfg.is_local and cfg.serving_deploy_mode == "test"
