"""MLflow credentials on Dataproc: the jobs get a Secret Manager name, never a credential, and read the
secret at start. Secret Manager itself is Google's control plane: a fake client answers, and both the
request and the answer are the secretmanager_v1 proto types."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import dataproc_v1, secretmanager_v1

from sentiment_mlops import jobs
from sentiment_mlops.core.errors import ConfigError
from sentiment_mlops.orchestration.config import AirflowConfig, load_airflow_config
from sentiment_mlops.orchestration.tasks.serving import build_serving_job
from sentiment_mlops.orchestration.tasks.training import build_training_jobs
from sentiment_mlops.registry import mlflow_credentials
from sentiment_mlops.registry.lookups import MlflowAuthError
from sentiment_mlops.serving import job as serving_job
from sentiment_mlops.training import job as training_job

SECRET = "projects/my-proj-123/secrets/mlflow-client"
CFG = AirflowConfig(
    backend="dataproc",
    gcp_project_id="my-proj-123",
    dataproc_cluster_name="sentiment-cluster",
    gcs_bucket="acme",
    mlflow_tracking_uri="https://mlflow.example.internal",
    mlflow_credentials_secret=SECRET,
)


class FakeSecretManager:
    def __init__(self, payload: bytes | None) -> None:
        self.payload = payload
        self.requests: list[secretmanager_v1.AccessSecretVersionRequest] = []

    def access_secret_version(self, request: dict[str, Any]) -> secretmanager_v1.AccessSecretVersionResponse:
        self.requests.append(secretmanager_v1.AccessSecretVersionRequest(**request))  # a bad field raises
        if self.payload is None:
            raise gexc.NotFound(f"Secret [{request['name']}] not found or has no versions.")
        return secretmanager_v1.AccessSecretVersionResponse(
            name=request["name"], payload=secretmanager_v1.SecretPayload(data=self.payload)
        )


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MLflow credentials before each test, and none of those apply_secret sets after it. A bare
    delenv of an unset variable records nothing to undo, so the variables apply_secret then set leaked
    into later tests (a stale MLFLOW_TRACKING_TOKEN made the production-profile DAG test fail 401):
    setenv first records the variable's state, set or not, for monkeypatch to restore."""
    for key in mlflow_credentials.CREDENTIAL_VARIABLES:
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)


def test_jobs_carry_the_secret_name_only_and_are_valid_dataproc_jobs() -> None:
    training = build_training_jobs(CFG, input_uri="gs://acme-raw/x.csv", run_tag="t1", variants=["full"])["full"]
    serving = build_serving_job(CFG, "t1")
    for job, parser in ((training, training_job.build_arg_parser()), (serving, serving_job.build_arg_parser())):
        jobs.validate_job(job)
        args = dataproc_v1.Job(**job).pyspark_job.args
        assert f"--mlflow-credentials-secret={SECRET}" in args
        assert parser.parse_known_args(list(args))[0].mlflow_credentials_secret == SECRET
        text = json.dumps(job)
        assert "PASSWORD" not in text.upper() and "TOKEN" not in text.upper()
    without = build_serving_job(dataclasses.replace(CFG, mlflow_credentials_secret=""), "t1")
    assert not any(a.startswith("--mlflow-credentials-secret") for a in without["pyspark_job"]["args"])


def test_a_bad_secret_variable_fails_the_first_task() -> None:
    values = {"SENTIMENT_BACKEND": "dataproc", "GCP_PROJECT_ID": "p", "DATAPROC_CLUSTER_NAME": "c"}
    cfg = load_airflow_config({**values, "MLFLOW_CREDENTIALS_SECRET": SECRET + "/versions/3"})
    assert cfg.mlflow_credentials_secret.endswith("/versions/3")
    with pytest.raises(ConfigError, match=r"MLFLOW_CREDENTIALS_SECRET='admin:hunter2' is invalid"):
        load_airflow_config({**values, "MLFLOW_CREDENTIALS_SECRET": "admin:hunter2"})


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            b'{"username": "jobs", "password": "s3"}',
            {"MLFLOW_TRACKING_USERNAME": "jobs", "MLFLOW_TRACKING_PASSWORD": "s3"},
        ),
        (b'{"token": "tok"}', {"MLFLOW_TRACKING_TOKEN": "tok"}),
    ],
)
def test_the_secret_becomes_mlflows_own_variables(
    payload: bytes, expected: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    # Stale variables of both kinds: MLflow would send a leftover username and password instead of the
    # secret's token, so the secret's kind replaces the other one.
    for key in mlflow_credentials.CREDENTIAL_VARIABLES:
        monkeypatch.setenv(key, "stale")
    client = FakeSecretManager(payload)
    assert mlflow_credentials.apply_secret(SECRET, client) == sorted(expected)
    assert client.requests[0].name == SECRET + "/versions/latest"
    assert {k: os.environ[k] for k in mlflow_credentials.CREDENTIAL_VARIABLES if k in os.environ} == expected


def test_bad_secrets_are_named() -> None:
    with pytest.raises(MlflowAuthError, match=r"does not hold MLflow credentials"):
        mlflow_credentials.apply_secret(SECRET, FakeSecretManager(b"admin:hunter2"))
    with pytest.raises(MlflowAuthError, match=r"cannot read .*secretmanager.secretAccessor"):
        mlflow_credentials.apply_secret(SECRET, FakeSecretManager(None))
    with pytest.raises(ValueError, match="not a Secret Manager name"):
        mlflow_credentials.check_secret_name("mlflow-client")


def test_the_training_job_stops_with_one_line_on_a_bad_secret_name(capsys: pytest.CaptureFixture[str]) -> None:
    code = training_job.main(
        ["--input=/x.csv", "--output=/tmp/o", "--mlflow-uri=http://127.0.0.1:9", "--mlflow-credentials-secret=nope"]
    )
    assert code == 2
    assert "not a Secret Manager name" in capsys.readouterr().err
