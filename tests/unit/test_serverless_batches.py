"""Dataproc Serverless: the training and serving jobs as `dataproc_v1.Batch`, built from the same job
dicts, and the `gcloud dataproc batches submit pyspark` command that submits the same Batch (checked by
running the real gcloud against a local endpoint that reads the request strictly as a Batch)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.cloud import dataproc_v1

from sentiment_mlops import jobs
from sentiment_mlops.jobs.serverless import (
    ServerlessTarget,
    batch_from_job,
    batch_id_for,
    batch_to_gcloud_command,
    kafka_package_for_runtime,
    validate_batch,
)

CLUSTER = jobs.DataprocTarget("sentiment-proj-1", "us-central1", "unused", "gs://acme-code/jobs")
TARGET = ServerlessTarget(
    project_id="sentiment-proj-1",
    region="us-central1",
    runtime_version="2.2",
    service_account="spark-jobs@sentiment-proj-1.iam.gserviceaccount.com",
    subnetwork_uri="projects/sentiment-proj-1/regions/us-central1/subnetworks/default",
)


def _training_job() -> dict[str, Any]:
    args = jobs.training_args(input="gs://acme-raw/raw/t.csv", output="gs://acme-models/r1", mlflow_uri="http://m:5000")
    return jobs.training_job(CLUSTER, args, job_id="sentiment-training-20261130")


def _serving_job(kafka: bool = False) -> dict[str, Any]:
    args = jobs.serving_args(
        source_type="kafka" if kafka else "file", input_path=None if kafka else "gs://acme-streaming-input",
        kafka_bootstrap="10.0.0.2:9092" if kafka else None, kafka_topic="tweets" if kafka else None,
        output_path="gs://acme-predictions", checkpoint="gs://acme-checkpoint/streaming/x", mlflow_uri="http://m:5000",
        model_name="twitter-sentiment-model-best",
    )  # fmt: skip
    return jobs.serving_job(CLUSTER, args, kafka=kafka, job_id="sentiment-serving-1")


def test_a_training_batch_runs_the_training_job_on_the_runtime() -> None:
    job = _training_job()
    batch = batch_from_job(job, TARGET)
    proto = validate_batch(batch)
    assert isinstance(proto, dataproc_v1.Batch)
    assert proto.pyspark_batch.main_python_file_uri == job["pyspark_job"]["main_python_file_uri"]
    assert list(proto.pyspark_batch.args) == job["pyspark_job"]["args"]
    assert list(proto.pyspark_batch.python_file_uris) == ["gs://acme-code/jobs/sentiment_mlops.zip"]
    assert proto.runtime_config.version == "2.2"
    assert proto.runtime_config.properties["spark.sentiment.backend"] == "dataproc"
    assert proto.environment_config.execution_config.service_account == TARGET.service_account
    assert proto.environment_config.execution_config.subnetwork_uri == TARGET.subnetwork_uri
    assert dict(proto.labels) == job["labels"]


def test_the_stream_batch_has_a_ttl_and_the_runtimes_kafka_connector() -> None:
    batch = batch_from_job(_serving_job(kafka=True), TARGET, ttl_seconds=7 * 24 * 3600)
    proto = validate_batch(batch)
    assert proto.environment_config.execution_config.ttl.total_seconds() == 7 * 24 * 3600
    properties = dict(proto.runtime_config.properties)
    # Runtime 2.2 is Spark 3.5 / Scala 2.12: the builder's Spark 4 connector would not load there.
    assert properties["spark.jars.packages"] == "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.3"
    assert "spark.executor.instances" not in properties and "spark.dynamicAllocation.enabled" not in properties
    on_30 = batch_from_job(_serving_job(kafka=True), ServerlessTarget("sentiment-proj-1", "us-central1", "3.0"))
    assert on_30["runtime_config"]["properties"]["spark.jars.packages"] == kafka_package_for_runtime("3.0")
    assert kafka_package_for_runtime("3.0").endswith("_2.13:4.0.1")


@pytest.mark.parametrize(
    ("target", "ttl", "message"),
    [
        (ServerlessTarget("p-roj-1", "us-central1", "1.1"), None, "not one the jobs are tested on"),
        (ServerlessTarget("p-roj-1", "us-central1", service_account="me@example.com"), None, "service-account e-mail"),
        (ServerlessTarget("p-roj-1", "us-central1", subnetwork_uri="Bad Net"), None, "not a subnetwork"),
        (ServerlessTarget("p-roj-1", "us-central1"), 60, "between 10 minutes and 14 days"),
        (ServerlessTarget("p-roj-1", "US_CENTRAL"), None, "Dataproc region"),
    ],
)
def test_bad_batch_settings_are_refused_with_the_reason(
    target: ServerlessTarget, ttl: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        batch_from_job(_training_job(), target, ttl_seconds=ttl)


def test_batch_ids_follow_the_batch_naming_rule() -> None:
    assert batch_id_for("Sentiment_Training-1") == "sentiment-training-1"
    with pytest.raises(ValueError, match="cannot be a batch id"):
        batch_id_for("ab")


class FakeBatches:
    """A Dataproc batches REST endpoint on localhost that reads each create request strictly as a Batch."""

    def __init__(self) -> None:
        self.created: list[tuple[str, dataproc_v1.Batch]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - batches.create
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    batch = dataproc_v1.Batch.from_json(body.decode())  # unknown fields raise, as Dataproc refuses
                except Exception as exc:
                    self.send_error(400, str(exc))
                    return
                fake.created.append((self.path, batch))
                name = self.path.split("?")[0].removesuffix("/batches").lstrip("/").removeprefix("v1/")
                payload = {"name": f"{name}/operations/op-1", "done": False}
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def fake_batches() -> Iterator[FakeBatches]:
    fake = FakeBatches()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud CLI not installed")
@pytest.mark.parametrize("kind", ["training", "serving"])
def test_gcloud_batches_submit_sends_the_same_batch(kind: str, fake_batches: FakeBatches, tmp_path: Path) -> None:
    job = _training_job() if kind == "training" else _serving_job(kafka=True)
    batch = batch_from_job(job, TARGET, ttl_seconds=None if kind == "training" else 14 * 24 * 3600)
    argv = batch_to_gcloud_command(batch, TARGET, batch_id=job["reference"]["job_id"])
    assert argv[:6] == [
        "gcloud",
        "dataproc",
        "batches",
        "submit",
        "pyspark",
        batch["pyspark_batch"]["main_python_file_uri"],
    ]
    token = tmp_path / "token"
    token.write_text("fake-token")
    env = {
        **os.environ,
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"),
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_DATAPROC": fake_batches.url,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
    }
    before = len(fake_batches.created)
    proc = subprocess.run(
        [argv[0], f"--access-token-file={token}", *argv[1:]], env=env, capture_output=True, text=True, timeout=120
    )
    assert len(fake_batches.created) == before + 1, proc.stderr
    path, sent = fake_batches.created[-1]
    assert path.startswith("/v1/projects/sentiment-proj-1/locations/us-central1/batches")
    assert f"batchId={job['reference']['job_id']}" in path
    assert sent == dataproc_v1.Batch(**batch)


# ---------------------------------------------------------------------------------------------------
# The CI scripts with SENTIMENT_BACKEND=dataproc-serverless


def _script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    from tests.unit.test_ci_cd_scripts import SETTINGS, _clean_env

    settings = {k: v for k, v in SETTINGS.items() if k != "DATAPROC_CLUSTER_NAME"}  # a batch needs none
    return _clean_env(**settings, SENTIMENT_BACKEND="dataproc-serverless", BUILD_DIR=str(tmp_path), **extra)


def _batch_line(stdout: str) -> list[str]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("gcloud dataproc batches submit pyspark ")]
    assert len(lines) == 1, stdout
    return shlex.split(lines[0])


def test_train_dry_run_submits_the_training_batch(tmp_path: Path) -> None:
    from tests.unit.test_ci_cd_scripts import TRAIN, _run

    env = _script_env(
        tmp_path, TRAINING_JOB_ID="train-ci-1", DATAPROC_SERVICE_ACCOUNT=TARGET.service_account or "",
        DATAPROC_SUBNETWORK="default", DATAPROC_RUNTIME_VERSION="3.0",
    )  # fmt: skip
    proc = _run(TRAIN, "--dry-run", env=env)
    assert proc.returncode == 0, proc.stderr
    paths = jobs.training_paths("acme", "train-ci-1")
    job = jobs.training_job(
        jobs.DataprocTarget("sentiment-proj-1", "europe-west1", "serverless", "gs://acme-code/jobs"),
        jobs.training_args(
            input=paths["input"], output=paths["output"], mlflow_uri="http://mlflow.example.internal:5000"
        ),
        labels={"trigger": "manual"},
        job_id="train-ci-1",
    )
    target = ServerlessTarget("sentiment-proj-1", "europe-west1", "3.0", TARGET.service_account, "default")
    assert _batch_line(proc.stdout) == batch_to_gcloud_command(batch_from_job(job, target), target, "train-ci-1", False)


def test_deploy_dry_run_submits_a_stream_batch_with_a_ttl_and_cancels_running_ones(tmp_path: Path) -> None:
    from tests.unit.test_ci_cd_scripts import DEPLOY, _run

    proc = _run(
        DEPLOY,
        "--dry-run",
        "--source-type",
        "kafka",
        env=_script_env(tmp_path, KAFKA_BOOTSTRAP_SERVERS="10.0.0.2:9092"),
    )
    assert proc.returncode == 0, proc.stderr
    submit = _batch_line(proc.stdout)
    assert "--ttl=1209600s" in submit and "--version=2.2" in submit and "--async" in submit
    properties = next(w for w in submit if w.startswith("--properties="))
    assert "spark-sql-kafka-0-10_2.12:3.5.3" in properties  # the runtime's connector, not Spark 4's
    assert "gcloud dataproc batches list --project=sentiment-proj-1 --region=europe-west1" in proc.stdout
    assert "gcloud dataproc batches cancel JOB_ID" in proc.stdout
    assert "--cluster" not in proc.stdout


def test_a_cluster_job_still_needs_a_cluster(tmp_path: Path) -> None:
    from tests.unit.test_ci_cd_scripts import TRAIN, _run

    env = _script_env(tmp_path)
    env["SENTIMENT_BACKEND"] = "dataproc"
    proc = _run(TRAIN, "--dry-run", env=env)
    assert proc.returncode == 2 and "DATAPROC_CLUSTER_NAME (--cluster)" in proc.stderr
