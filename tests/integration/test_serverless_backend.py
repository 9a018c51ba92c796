"""SENTIMENT_BACKEND=dataproc-serverless: the DAG tasks' jobs run as Dataproc Serverless batches through
DataprocServerlessJobBackend, on the fake DataprocHook (tests/fake_dataproc.py: every request
validated against the dataproc_v1 proto types, real `dataproc_v1.Batch` objects back). Nothing here
talks to Google or starts Spark."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.cloud import dataproc_v1

from sentiment_mlops.backends.gcp.serverless_backend import TRAINING_TTL_SECONDS, DataprocServerlessJobBackend
from sentiment_mlops.backends.local.store import LocalStore
from sentiment_mlops.core.settings import Settings
from sentiment_mlops.orchestration import backends
from sentiment_mlops.orchestration.config import AirflowConfig, load_airflow_config
from sentiment_mlops.orchestration.job_attempts import TaskAttempt
from sentiment_mlops.orchestration.tasks import common, management
from sentiment_mlops.orchestration.tasks import serving as serving_tasks
from sentiment_mlops.orchestration.tasks import training as training_tasks
from sentiment_mlops.orchestration.tasks.common import TaskError
from tests.fake_dataproc import FakeDataprocApi, FakeDataprocHook

SERVERLESS_VARS = {
    "SENTIMENT_BACKEND": "dataproc-serverless",
    "GCP_PROJECT_ID": "my-proj-123",
    "GCP_REGION": "europe-west1",
    "GCS_BUCKET": "acme",
    "DATAPROC_RUNTIME_VERSION": "2.2",
    "DATAPROC_SERVICE_ACCOUNT": "spark-jobs@my-proj-123.iam.gserviceaccount.com",
    "DATAPROC_SUBNETWORK": "projects/my-proj-123/regions/europe-west1/subnetworks/default",
    "DATAPROC_STREAM_TTL_SECONDS": "604800",
}


class FakeGcs:
    """The staging bucket: driver output objects under a batch's output URI."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def list_files(self, uri: str) -> list[tuple[str, int]]:
        return [(k, len(v)) for k, v in sorted(self.objects.items()) if k.startswith(uri.rstrip("/") + "/")]

    def read_bytes(self, uri: str, start: int = 0, length: int | None = None) -> bytes:
        data = self.objects[uri][start:]
        return data if length is None else data[:length]


def _cfg(**overrides: str) -> AirflowConfig:
    return load_airflow_config({**SERVERLESS_VARS, **overrides})


def _backend(api: FakeDataprocApi, cfg: AirflowConfig | None = None, gcs: FakeGcs | None = None) -> Any:
    cfg = cfg or _cfg()
    return DataprocServerlessJobBackend(
        backends.serverless_target(cfg),
        hook=FakeDataprocHook(api),
        store=gcs or FakeGcs(),  # type: ignore[arg-type]
        stream_ttl_seconds=cfg.dataproc_stream_ttl_seconds,
    )


def _training_job(cfg: AirflowConfig, run_tag: str = "tag1") -> dict[str, Any]:
    jobs = training_tasks.build_training_jobs(cfg, input_uri="gs://acme-raw/x.csv", run_tag=run_tag, variants=("full",))
    return jobs["full"]


def test_config_reads_the_batch_variables_and_names_bad_ones() -> None:
    cfg = _cfg()
    assert cfg.is_serverless and not cfg.is_local and cfg.dataproc_cluster_name is None  # no cluster needed
    assert (cfg.dataproc_runtime_version, cfg.dataproc_stream_ttl_seconds) == ("2.2", 604800)
    defaults = load_airflow_config({"SENTIMENT_BACKEND": "dataproc-serverless", "GCP_PROJECT_ID": "my-proj-123"})
    assert (defaults.dataproc_runtime_version, defaults.dataproc_stream_ttl_seconds) == ("2.2", 14 * 24 * 3600)
    assert defaults.dataproc_service_account is None and defaults.dataproc_subnetwork is None

    with pytest.raises(ValueError) as err:
        load_airflow_config(
            {
                "SENTIMENT_BACKEND": "dataproc-serverless",
                "DATAPROC_RUNTIME_VERSION": "1.1",
                "DATAPROC_SERVICE_ACCOUNT": "me@example.com",
                "DATAPROC_SUBNETWORK": "Bad Net",
                "DATAPROC_STREAM_TTL_SECONDS": "forever",
            }
        )
    message = str(err.value)
    assert "GCP_PROJECT_ID is not set; it is required when SENTIMENT_BACKEND=dataproc-serverless" in message
    assert "DATAPROC_RUNTIME_VERSION is invalid: runtime_config.version '1.1'" in message
    assert "DATAPROC_SERVICE_ACCOUNT is invalid: service account 'me@example.com'" in message
    assert "DATAPROC_SUBNETWORK is invalid" in message
    assert "DATAPROC_STREAM_TTL_SECONDS='forever' is invalid" in message
    with pytest.raises(ValueError, match="DATAPROC_STREAM_TTL_SECONDS is invalid: ttl must be between"):
        _cfg(DATAPROC_STREAM_TTL_SECONDS=str(15 * 24 * 3600))
    # The cluster backend ignores them (a stale Variable does not break it).
    assert load_airflow_config({**SERVERLESS_VARS, "SENTIMENT_BACKEND": "dataproc", "DATAPROC_CLUSTER_NAME": "c",
                                "DATAPROC_RUNTIME_VERSION": "1.1"}).backend == "dataproc"  # fmt: skip


def test_job_backend_is_the_serverless_one_on_a_dataproc_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.providers.google.cloud.hooks.dataproc as provider_hooks

    api = FakeDataprocApi()
    monkeypatch.setattr(FakeDataprocHook, "api", api)
    monkeypatch.setattr(provider_hooks, "DataprocHook", FakeDataprocHook)
    backend = backends.job_backend(_cfg())
    assert isinstance(backend, DataprocServerlessJobBackend)
    assert backend.target.service_account == SERVERLESS_VARS["DATAPROC_SERVICE_ACCOUNT"]
    assert backend.stream_ttl_seconds == 604800


def test_training_job_runs_as_a_batch_and_a_retry_attaches() -> None:
    cfg = _cfg()
    api = FakeDataprocApi()
    backend = _backend(api, cfg)
    job = _training_job(cfg)

    def run(try_number: int) -> dict:
        attempt = TaskAttempt("sentiment_ml_training_pipeline", "manual__1", "train_models_full_dataset", try_number)
        return common.run_job(cfg, job, backend=backend, attempt=attempt)

    result = run(1)
    assert (result["job_id"], result["state"], result["batch_state"]) == ("sentiment-training-full-tag1", "DONE",
                                                                          "SUCCEEDED")  # fmt: skip
    [request] = api.batch_requests
    assert request.parent == "projects/my-proj-123/regions/europe-west1"
    assert request.batch_id == "sentiment-training-full-tag1" and len(request.request_id) == 40
    batch = api.batches["sentiment-training-full-tag1"]
    assert isinstance(batch, dataproc_v1.Batch)
    assert batch.pyspark_batch.main_python_file_uri == job["pyspark_job"]["main_python_file_uri"]
    assert list(batch.pyspark_batch.args) == job["pyspark_job"]["args"]
    assert batch.runtime_config.version == "2.2"
    execution = batch.environment_config.execution_config
    assert execution.service_account == SERVERLESS_VARS["DATAPROC_SERVICE_ACCOUNT"]
    assert execution.subnetwork_uri == SERVERLESS_VARS["DATAPROC_SUBNETWORK"]
    assert execution.ttl.total_seconds() == TRAINING_TTL_SECONDS  # longer than Dataproc's 4 h default
    assert batch.labels["app"] == "sentiment-training"

    # SUCCEEDED already: the retry's create (same request id) gets the first operation; nothing runs twice.
    assert run(2)["job_id"] == "sentiment-training-full-tag1" and list(api.batches) == ["sentiment-training-full-tag1"]
    assert api.batch_requests[1].request_id == request.request_id
    # A create without that request id (another task racing): AlreadyExists, attached to.
    assert backend.submit(job, request_id="other-request")["attached"] is True and len(api.batches) == 1
    api.set_batch_state("sentiment-training-full-tag1", "FAILED", "Driver exited with code 1")
    assert run(3)["job_id"] == "sentiment-training-full-tag1-t3" and len(api.batches) == 2
    assert api.batch_requests[-1].batch_id == "sentiment-training-full-tag1-t3"
    assert api.batch_requests[-1].request_id != request.request_id


def test_a_failed_batch_fails_the_task_with_its_driver_output() -> None:
    cfg = _cfg()
    api = FakeDataprocApi()
    api.batch_wait_outcome = "FAILED"
    gcs = FakeGcs()
    backend = _backend(api, cfg, gcs)
    job = _training_job(cfg)
    with pytest.raises(TaskError) as err:
        common.run_job(cfg, job, backend=backend)
    assert "job sentiment-training-full-tag1 ended ERROR" in str(err.value)
    # No driver output in the bucket: the state and where to look instead.
    assert "no driver output at gs://staging/" in str(err.value) and "cloud_dataproc_batch" in str(err.value)

    output = api.batches["sentiment-training-full-tag1"].runtime_info.output_uri
    gcs.objects[f"{output}.000000000"] = b"starting\n"
    gcs.objects[f"{output}.000000001"] = b"Traceback (most recent call last):\nValueError: bad input\n"
    assert backend.log_tail("sentiment-training-full-tag1", 1) == ["ValueError: bad input"]
    assert backend.log_tail("no-such-batch") == []


def test_a_wait_with_a_timeout_polls_until_the_batch_ends_or_the_time_is_up() -> None:
    cfg = _cfg()
    api = FakeDataprocApi()
    ticks: list[float] = []
    now = [0.0]

    def sleep(s: float) -> None:
        ticks.append(s)
        now[0] += s
        if len(ticks) == 3:
            api.set_batch_state("sentiment-training-full-tag1", "SUCCEEDED")

    backend = _backend(api, cfg)
    backend.sleep, backend.clock, backend.poll_s = sleep, lambda: now[0], 10
    assert backend.submit(_training_job(cfg), wait=True, timeout=600)["state"] == "DONE" and ticks == [10, 10, 10]
    with pytest.raises(TimeoutError, match="sentiment-training-full-tag2 is still RUNNING after 25s"):
        backend.submit(_training_job(cfg, "tag2"), wait=True, timeout=25)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATAPROC_RUNTIME_VERSION", "1.1", "not one the jobs are tested on"),
        ("DATAPROC_SERVICE_ACCOUNT", "me@example.com", "is not a service-account e-mail"),
    ],
)
def test_bad_batch_settings_fail_before_anything_is_sent(variable: str, value: str, message: str) -> None:
    """A config that got past the Variables (built in code, or a param override) still fails with the
    reason before any create request."""
    import dataclasses

    field = {"DATAPROC_RUNTIME_VERSION": "dataproc_runtime_version",
             "DATAPROC_SERVICE_ACCOUNT": "dataproc_service_account"}[variable]  # fmt: skip
    cfg = dataclasses.replace(_cfg(serving_deploy_mode="production"), **{field: value})
    api = FakeDataprocApi()
    backend = _backend(api, cfg)
    with pytest.raises(TaskError, match=message):
        common.run_job(cfg, _training_job(cfg), backend=backend)
    with pytest.raises(TaskError, match=f"cannot be submitted: invalid Dataproc batch: .*{message}"):
        serving_tasks.deploy_serving_job(cfg, serving_tasks.build_serving_job(cfg, "t"), backend=backend)
    assert api.batch_requests == [] and api.cancelled_batches == []


def test_serving_deploy_wait_and_stop_on_batches(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    import logging

    cfg = _cfg(serving_deploy_mode="production", serving_source_type="kafka", kafka_bootstrap_servers="10.0.0.2:9092")
    api = FakeDataprocApi()
    backend = _backend(api, cfg)
    job = serving_tasks.build_serving_job(cfg, "tag1")

    test_cfg = _cfg(serving_source_type="kafka", kafka_bootstrap_servers="10.0.0.2:9092")
    with caplog.at_level(logging.INFO, logger="sentiment_mlops.orchestration.tasks.serving"):
        tested = serving_tasks.deploy_serving_job(test_cfg, job, backend=backend)
    assert tested["submitted"] is False and api.batch_requests == []
    assert '"pyspark_batch"' in caplog.text and '"ttl"' in caplog.text  # the Batch that would be created is logged

    deployed = serving_tasks.deploy_serving_job(cfg, job, backend=backend)
    assert deployed["submitted"] and deployed["state"] == "RUNNING" and not deployed["attached"]
    batch = api.batches["sentiment-serving-kafka-tag1"]
    assert batch.environment_config.execution_config.ttl.total_seconds() == 604800  # DATAPROC_STREAM_TTL_SECONDS
    assert batch.runtime_config.properties["spark.jars.packages"].endswith("spark-sql-kafka-0-10_2.12:3.5.3")
    assert "spark.executor.instances" not in batch.runtime_config.properties

    # The wait task: RUNNING, then the first batch written after the batch was created.
    store = LocalStore(Settings(backend="local", home=tmp_path))
    check = {"backend": backend, "store": store, "since": time.time()}
    job_id = deployed["job_id"]
    assert serving_tasks.check_serving_job(cfg, job_id, require_first_batch=False, **check)["state"] == "RUNNING"
    assert serving_tasks.check_serving_job(cfg, job_id, **check) is None  # no batch yet: look again
    record = {"batch_id": 0, "timestamp": datetime.now(UTC).isoformat(), "rows_in": 3}
    store.write_bytes(f"{common.serving_paths(cfg)['metrics']}/batch-0000000000.json", json.dumps(record).encode())
    assert serving_tasks.check_serving_job(cfg, job_id, **check)["first_batch"]["batch_id"] == 0

    # A retried deploy attaches to its live batch; a second run refuses to share the checkpoint.
    attempt = TaskAttempt("sentiment_model_serving", "manual__1", "deploy_streaming_job", 2)
    again = serving_tasks.deploy_serving_job(cfg, job, backend=backend, attempt=attempt)
    assert again["attached"] and len(api.batch_requests) == 1
    second = serving_tasks.build_serving_job(cfg, "tag2")
    with pytest.raises(TaskError, match="already active on this checkpoint: sentiment-serving-kafka-tag1"):
        serving_tasks.deploy_serving_job(cfg, second, backend=backend)
    checkpoint = job["labels"]["checkpoint"]
    assert api.list_filters[-4:] == [  # by checkpoint label, then unlabelled serving jobs of earlier releases
        f'state = PENDING AND labels.checkpoint = "{checkpoint}"',
        f'state = RUNNING AND labels.checkpoint = "{checkpoint}"',
        'state = PENDING AND labels.app = "sentiment-serving"',
        'state = RUNNING AND labels.app = "sentiment-serving"',
    ]

    # replace_running cancels the old batch (its creating operation) and waits for CANCELLED.
    replaced = serving_tasks.deploy_serving_job(
        cfg, second, replace_running=True, backend=backend, sleep=lambda s: None, poll_s=0
    )
    assert replaced["replaced"] == ["sentiment-serving-kafka-tag1"]
    assert api.cancelled_batches == ["sentiment-serving-kafka-tag1"]
    assert api.batches["sentiment-serving-kafka-tag1"].state.name == "CANCELLED"

    # The management DAG lists and stops the running serving batch, and only serving batches.
    backend.submit(_training_job(cfg))
    active = management.list_active_serving_jobs(cfg, backend=backend)
    assert [j["job_id"] for j in active] == ["sentiment-serving-kafka-tag2"]
    stopped = management.stop_serving_jobs(cfg, stop_all=True, backend=backend)
    assert stopped == [{"job_id": "sentiment-serving-kafka-tag2", "state": "CANCEL_STARTED"}]
    assert backend.get("sentiment-serving-kafka-tag2")["state"] == "CANCELLED"
    assert management.list_active_serving_jobs(cfg, backend=backend) == []
    with pytest.raises(TaskError, match="not a serving job"):
        management.stop_serving_jobs(cfg, job_id="sentiment-training-full-tag1", backend=backend)
    assert api.batches["sentiment-training-full-tag1"].state.name == "RUNNING"
    assert json.loads(json.dumps(stopped)) == stopped  # XCom-able
