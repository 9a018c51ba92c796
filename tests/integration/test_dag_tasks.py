"""orchestration.tasks: the DAG steps as plain functions, on the local store, fake job backends and a SQLite
MLflow registry (the Dataproc side through fake hooks: nothing here talks to Google)."""

from __future__ import annotations

import json
import logging
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sentiment_mlops import jobs as job_spec
from sentiment_mlops.backends.gcp.dataproc_backend import DataprocJobBackend
from sentiment_mlops.backends.local.store import LocalStore
from sentiment_mlops.core import naming
from sentiment_mlops.core.settings import Settings
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.tasks import common, management, reports
from sentiment_mlops.orchestration.tasks import serving as serving_tasks
from sentiment_mlops.orchestration.tasks import training as training_tasks
from sentiment_mlops.orchestration.tasks.common import TaskError
from sentiment_mlops.serving import job as serving_job

DATAPROC = {"backend": "dataproc", "gcp_project_id": "my-proj-123", "dataproc_cluster_name": "sentiment-cluster"}


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(Settings(backend="local", home=tmp_path))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class FakeBackend:
    """The JobBackend interface (LocalJobBackend / DataprocJobBackend) in memory."""

    def __init__(self, submit_state: str = "RUNNING") -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.submit_state = submit_state
        self.submitted: list[dict] = []
        self.cancelled: list[str] = []
        self.tail = ["INFO starting", "Traceback (most recent call last):", "ValueError: bad input"]

    def add(self, job_id: str, state: str, labels: dict, args: list[str] | None = None) -> None:
        self.jobs[job_id] = {
            "job_id": job_id,
            "state": state,
            "labels": labels,
            "args": args or [],
            "driver_output": f"file:///logs/{job_id}.log",
            "details": "exit 1" if state == "ERROR" else "",
            "submitted_at": _now(),
        }

    def submit(
        self, job: dict, wait: bool = False, timeout: float | None = None, request_id: str | None = None
    ) -> dict:
        if job["reference"]["job_id"] in self.jobs:  # like both real backends: attach, start nothing
            return {**self.jobs[job["reference"]["job_id"]], "attached": True}
        self.submitted.append(job)
        self.add(job["reference"]["job_id"], self.submit_state, job["labels"], job["pyspark_job"]["args"])
        return dict(self.jobs[job["reference"]["job_id"]])

    def get(self, job_id: str) -> dict:
        return dict(self.jobs[job_id])

    def find(self, job_id: str) -> dict | None:
        return dict(self.jobs[job_id]) if job_id in self.jobs else None

    def list_active(self, labels: dict) -> list[dict]:
        return [
            dict(j)
            for j in self.jobs.values()
            if j["state"] in ("PENDING", "RUNNING") and all(j["labels"].get(k) == v for k, v in labels.items())
        ]

    def cancel(self, job_id: str) -> dict:
        self.cancelled.append(job_id)
        self.jobs[job_id]["state"] = "CANCELLED"
        return dict(self.jobs[job_id])

    def log_tail(self, job_id: str, n: int = 50) -> list[str]:
        return self.tail[-n:]


# --- training -------------------------------------------------------------------------------------


def test_validate_input_estimates_rows_of_the_shared_sample(sample_csv: Path, store: LocalStore) -> None:
    result = common.validate_input(AirflowConfig(), str(sample_csv), store=store)
    lines = sample_csv.read_bytes().count(b"\n")
    assert result["size_bytes"] == sample_csv.stat().st_size
    assert result["files"] == 1 and not result["row_estimate_exact"]
    assert abs(result["row_estimate"] - lines) / lines < 0.05


def test_validate_input_local_bucket_folder_and_errors(store: LocalStore) -> None:
    folder = store.path("gs://acme-raw/raw")
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text("".join(f'"0","tweet {i}"\n' for i in range(150)))
    (folder / "b.csv").write_text("".join(f'"4","tweet {i}"\n' for i in range(150)))
    (folder / "_SUCCESS").write_text("")
    result = common.validate_input(AirflowConfig(), "gs://acme-raw/raw", store=store)
    assert result["files"] == 2 and 280 <= result["row_estimate"] <= 320
    single = common.validate_input(AirflowConfig(), "gs://acme-raw/raw/a.csv", store=store)
    assert single["row_estimate"] == 150 and single["row_estimate_exact"]

    with pytest.raises(TaskError, match="not found"):
        common.validate_input(AirflowConfig(), "gs://acme-raw/missing.csv", store=store)
    with pytest.raises(TaskError, match="about 150 rows; at least 1000"):
        common.validate_input(AirflowConfig(), "gs://acme-raw/raw/a.csv", min_rows=1000, store=store)
    (folder.parent / "notes.txt").write_text("secret diary entry no commas\n" * 200)
    with pytest.raises(TaskError, match="does not look like CSV") as err:
        common.validate_input(AirflowConfig(), "gs://acme-raw/notes.txt", store=store)
    assert "secret" not in str(err.value) and "diary" not in str(err.value)  # the input's contents stay out
    with pytest.raises(TaskError, match="must be a gs:// URI"):
        common.validate_input(AirflowConfig(**DATAPROC), "/local/file.csv", store=store)


def test_check_mlflow(mlflow_server: str) -> None:
    assert common.check_mlflow(AirflowConfig(mlflow_tracking_uri=mlflow_server))["healthy"] is True
    from sentiment_mlops.backends.local.mlflow_server import free_port

    with pytest.raises(TaskError, match="unreachable.*MLFLOW_TRACKING_URI"):
        common.check_mlflow(AirflowConfig(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}"))


def test_prepare_environment_copies_entries_and_package_zip(store: LocalStore, tmp_path: Path) -> None:
    result = common.prepare_environment(AirflowConfig(gcs_bucket="acme"), store=store)
    assert result["code_uri"] == "gs://acme-code/jobs"
    code = store.path("gs://acme-code/jobs")
    names = {p.name for p in code.iterdir()}
    assert names == {job_spec.TRAINING_ENTRY, job_spec.SERVING_ENTRY, job_spec.PACKAGE_ZIP}
    with zipfile.ZipFile(code / job_spec.PACKAGE_ZIP) as zf:
        assert {"sentiment_mlops/training/job.py", "sentiment_mlops/serving/job.py"} <= set(zf.namelist())
    with pytest.raises(TaskError, match="entry script"):
        common.prepare_environment(AirflowConfig(), store=store, source_dir=tmp_path / "empty")


def test_training_jobs_full_and_cv_variants() -> None:
    cfg = AirflowConfig(**DATAPROC, gcs_bucket="acme", mlflow_tracking_uri="http://mlflow.example.internal:5000")
    jobs = training_tasks.build_training_jobs(
        cfg, input_uri="gs://acme-raw/raw/x.csv", run_tag="20260101-000000-abcdef", dag_id="my_dag"
    )
    full, cv = jobs["full"], jobs["cv"]
    for variant, spec in jobs.items():
        job_spec.validate_job(spec)  # the rendered job must be a valid Dataproc Job
        assert spec["reference"] == {
            "project_id": "my-proj-123",
            "job_id": f"sentiment-training-{variant}-20260101-000000-abcdef",
        }
        assert spec["placement"] == {"cluster_name": "sentiment-cluster"}
        assert spec["labels"] == {
            "app": "sentiment-training",
            "variant": variant,
            "run": "20260101-000000-abcdef",
            "airflow-dag": "my_dag",
        }
        assert spec["pyspark_job"]["main_python_file_uri"] == "gs://acme-code/jobs/sentiment_multimodel.py"
        assert spec["pyspark_job"]["python_file_uris"] == ["gs://acme-code/jobs/sentiment_mlops.zip"]
        assert common.job_arg(spec, "--output") == f"gs://acme-models/training/20260101-000000-abcdef/{variant}"
        assert common.job_arg(spec, "--mlflow-uri") == "http://mlflow.example.internal:5000"
    full_args, cv_args = full["pyspark_job"]["args"], cv["pyspark_job"]["args"]
    assert "--sample-fraction=1.0" in full_args and "--num-features=32768" in full_args
    assert "--enable-cv" not in full_args
    assert "--mlflow-experiment=sentiment-analysis-pipeline" in full_args
    assert "--sample-fraction=0.3" in cv_args and "--num-features=16384" in cv_args
    assert "--enable-cv" in cv_args and "--cv-folds=2" in cv_args
    assert "--mlflow-experiment=sentiment-analysis-pipeline-cv" in cv_args

    dev = training_tasks.build_training_jobs(
        AirflowConfig(),
        input_uri="/data/x.csv",
        run_tag="t",
        variants=("full",),
        max_rows=3000,
        models="lr",
        overrides={"num_features": 1024, "sample_fraction": None},
        force_promote=True,
    )["full"]["pyspark_job"]["args"]
    assert {"--max-rows=3000", "--models=lr", "--num-features=1024", "--sample-fraction=1.0", "--force-promote"} <= set(
        dev
    )
    with pytest.raises(ValueError, match="unknown training variant"):
        training_tasks.build_training_jobs(AirflowConfig(), input_uri="x", run_tag="t", variants=("huge",))


def test_run_tag_labels_and_retry_ids() -> None:
    tag = naming.make_run_tag("manual__2026-01-01T00:00:00+00:00", datetime(2026, 1, 1, tzinfo=UTC))
    assert tag.startswith("20260101-000000-") and len(tag) == 22
    assert tag != naming.make_run_tag("manual__other", datetime(2026, 1, 1, tzinfo=UTC))
    assert naming.label_value("Twitter.Model@Best") == "twitter-model-best"
    original = {"reference": {"job_id": "a"}, "labels": {}}
    retried = naming.with_job_id(original, "a-t2")
    assert retried["reference"]["job_id"] == "a-t2" and original["reference"]["job_id"] == "a"


def test_run_job_fails_with_the_log_tail() -> None:
    spec = training_tasks.build_training_jobs(AirflowConfig(), input_uri="x.csv", run_tag="t", variants=("full",))[
        "full"
    ]
    backend = FakeBackend(submit_state="ERROR")
    with pytest.raises(TaskError) as err:
        common.run_job(AirflowConfig(), spec, backend=backend)
    assert "ended ERROR" in str(err.value) and "ValueError: bad input" in str(err.value)
    ok = common.run_job(AirflowConfig(), spec, backend=FakeBackend(submit_state="DONE"))
    assert ok["state"] == "DONE"


# --- MLflow: a private SQLite registry --------------------------------------------------------


@pytest.fixture(scope="module")
def registry_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow_sqlite")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_experiment("sentiment-analysis-pipeline", artifact_location=str(root / "artifacts"))
    return client


def _training_run(client: Any, accuracy: float) -> tuple[str, str]:
    """A parent run and one nested model run, the way training_job logs them."""
    exp = client.get_experiment_by_name("sentiment-analysis-pipeline").experiment_id
    parent = client.create_run(exp, run_name="multimodel-training", tags={"best_model": "LinearSVC"})
    client.log_metric(parent.info.run_id, "best_test_accuracy", accuracy)
    client.log_metric(parent.info.run_id, "best_test_auc", accuracy + 0.05)
    child = client.create_run(
        exp, run_name="LinearSVC", tags={"mlflow.parentRunId": parent.info.run_id, "model_type": "LinearSVC"}
    )
    client.log_metric(child.info.run_id, "test_accuracy", accuracy)
    client.log_metric(child.info.run_id, "test_auc", accuracy + 0.05)
    return parent.info.run_id, child.info.run_id


def _summary(parent: str, child: str, output: str) -> dict:
    return {
        "input": "gs://acme-raw/raw/x.csv",
        "output": output,
        "load_report": {"rows_read": 1000, "rows_usable": 990},
        "split_counts": {"train": 800, "validation": 90, "test": 100},
        "best_model": "linearsvc",
        "parent_run_id": parent,
        "promotion": {
            "promote": True,
            "reason": "first production model",
            "registered_model": "twitter-sentiment-model-best",
            "candidate_version": "1",
            "alias": "production",
        },
        "models": {
            "linearsvc": {
                "display_name": "LinearSVC",
                "validation": {"accuracy": 0.74},
                "test": {"accuracy": 0.75, "auc": 0.81, "f1": 0.76, "precision": 0.7, "recall": 0.8},
                "test_confusion_matrix": [[41, 9], [16, 34]],
                "fit_seconds": 3.21,
                "run_id": child,
                "registered_model": "twitter-sentiment-model-linearsvc",
                "version": "1",
            }
        },
    }


def test_best_model_info_from_latest_run_then_registry(registry_client: Any) -> None:
    cfg = AirflowConfig(mlflow_tracking_uri="sqlite:///unused")
    parent, child = _training_run(registry_client, 0.7)
    info = training_tasks.best_model_info(
        cfg, {"full": {"parent_run_id": parent, "models": {}}}, client=registry_client
    )
    assert info["source"].startswith("latest parent training run")
    assert (info["run_id"], info["accuracy"], info["model_type"]) == (parent, 0.7, "LinearSVC")
    assert info["from_this_run"] is True

    name = training_tasks.BEST_MODEL_NAME
    registry_client.create_registered_model(name)
    mv = registry_client.create_model_version(name, f"runs:/{child}/model", child)
    registry_client.set_registered_model_alias(name, "production", mv.version)
    info = training_tasks.best_model_info(cfg, {"full": None}, client=registry_client)
    assert info["source"] == f"registry {name}@production"
    assert (info["run_id"], info["parent_run_id"], info["version"]) == (child, parent, str(mv.version))
    assert (info["accuracy"], info["auc"], info["model_type"]) == (0.7, pytest.approx(0.75), "LinearSVC")
    assert info["from_this_run"] is False

    served = serving_tasks.model_to_serve(
        AirflowConfig(serving_model_name=name, serving_model_stage="Production"), client=registry_client
    )
    assert (served["name"], served["version"], served["alias"]) == (name, str(mv.version), "production")
    assert served["model_uri"] == f"models:/{name}@production"
    with pytest.raises(TaskError, match="not found in the MLflow registry.*serving_model_name"):
        serving_tasks.model_to_serve(AirflowConfig(serving_model_name="no-such-model"), client=registry_client)


def test_training_report_written_and_logged(registry_client: Any, store: LocalStore) -> None:
    cfg = AirflowConfig(gcs_bucket="acme")
    parent, child = _training_run(registry_client, 0.75)
    outputs = {v: f"gs://acme-models/training/tag1/{v}" for v in ("full", "cv")}
    store.write_bytes(
        f"{outputs['full']}/training_summary.json", json.dumps(_summary(parent, child, outputs["full"])).encode()
    )
    best = {
        "model_type": "LinearSVC",
        "accuracy": 0.75,
        "auc": 0.81,
        "run_id": child,
        "source": "registry x",
        "from_this_run": True,
    }
    result = training_tasks.generate_training_report(cfg, "tag1", outputs, best, store=store, client=registry_client)
    assert result["report_uri"] == "gs://acme-models/training/tag1/training_report.md"
    text = Path(result["report_path"]).read_text()
    assert "| LinearSVC | 0.7400 | 0.7500 | 0.8100 | 0.7600 | 0.7000 | 0.8000 | 3.2 |" in text
    assert "| negative | 41 | 9 |" in text and "| positive | 16 | 34 |" in text
    assert "Variant `cv`" in text and "No training_summary.json" in text
    assert "promoted (first production model)" in text
    assert result["mlflow_runs"] == [parent]
    assert [a.path for a in registry_client.list_artifacts(parent, "reports")] == ["reports/training_report.md"]

    with pytest.raises(TaskError, match="no training_summary.json"):
        training_tasks.generate_training_report(cfg, "tag2", {"full": "gs://acme-models/none"}, None, store=store)
    message = reports.completion_message("dag", "tag1", {"input_path": "x", "row_estimate": 5}, best, result)
    assert "accuracy 0.7500" in message and "training_report.md" in message


def test_serving_message_says_whether_anything_was_submitted() -> None:
    model = {"name": "twitter-sentiment-model-best", "version": "3", "model_type": "LinearSVC"}
    running = reports.serving_message("local", "file", model, {"submitted": True, "job_id": "s1"}, {"state": "RUNNING"})
    assert running == (
        "Serving job s1 is RUNNING on local with twitter-sentiment-model-best v3 (LinearSVC); source file."
    )
    tested = reports.serving_message("local", "file", model, {"submitted": False, "job_id": "s1"}, None)
    assert tested.startswith("Test mode: serving job s1") and "nothing submitted" in tested


# --- serving --------------------------------------------------------------------------------------


def test_serving_job_file_and_kafka() -> None:
    file_job = serving_tasks.build_serving_job(AirflowConfig(gcs_bucket="acme", serving_batch_interval=15), "tag1")
    job_spec.validate_job(file_job)
    args = file_job["pyspark_job"]["args"]
    assert file_job["labels"]["app"] == "sentiment-serving" and file_job["labels"]["source"] == "file"
    assert file_job["reference"]["job_id"] == "sentiment-serving-file-tag1"
    # the bucket roots the original project's `gsutil cp` commands use
    assert "--source-type=file" in args and "--input-path=gs://acme-streaming-input" in args
    assert "--output-path=gs://acme-predictions" in args
    assert "--batch-interval-seconds=15" in args and "--model-stage=Production" in args
    assert "--metrics-path=gs://acme-predictions/_metrics/batches" in args
    assert "--checkpoint=gs://acme-checkpoint/streaming/file" in args
    assert "spark.jars.packages" not in file_job["pyspark_job"]["properties"]

    kafka_cfg = AirflowConfig(**DATAPROC, serving_source_type="kafka", kafka_bootstrap_servers="k1:9092")
    kafka_job = serving_tasks.build_serving_job(kafka_cfg, "tag1")
    job_spec.validate_job(kafka_job)
    kargs = kafka_job["pyspark_job"]["args"]
    assert {
        "--kafka-bootstrap=k1:9092",
        "--kafka-topic=tweets",
        "--write-kafka",
        "--kafka-output-topic=predictions",
    } <= set(kargs)
    assert not any(a.startswith("--input-path") for a in kargs)
    assert "spark-sql-kafka" in kafka_job["pyspark_job"]["properties"]["spark.jars.packages"]

    tuned = serving_tasks.build_serving_job(
        kafka_cfg, "tag2", max_offsets_per_trigger=5000, starting_offsets="latest", dead_letter_topic="tweets-dead"
    )
    job_spec.validate_job(tuned)
    targs = tuned["pyspark_job"]["args"]
    assert {"--max-offsets-per-trigger=5000", "--starting-offsets=latest", "--dead-letter-topic=tweets-dead"} <= set(
        targs
    )
    parsed = serving_job.build_arg_parser().parse_args(targs)  # the job itself accepts every flag
    assert (parsed.starting_offsets, parsed.dead_letter_topic, parsed.max_offsets_per_trigger) == (
        "latest",
        "tweets-dead",
        5000,
    )


def test_deploy_test_mode_logs_the_job_and_submits_nothing(caplog: pytest.LogCaptureFixture) -> None:
    cfg = AirflowConfig(serving_deploy_mode="test")
    job = serving_tasks.build_serving_job(cfg, "tag1")
    backend = FakeBackend()
    with caplog.at_level(logging.INFO, logger="sentiment_mlops.orchestration.tasks.serving"):
        result = serving_tasks.deploy_serving_job(cfg, job, backend=backend)
    assert result["submitted"] is False and result["mode"] == "test"
    assert backend.submitted == []
    assert json.dumps(job, indent=2, sort_keys=True) in caplog.text


def test_deploy_production_refuses_or_replaces_jobs_on_its_checkpoint() -> None:
    cfg = AirflowConfig(serving_deploy_mode="production")
    job = serving_tasks.build_serving_job(cfg, "tag1")
    label = job["labels"]["checkpoint"]
    assert label == serving_tasks.checkpoint_label(common.serving_paths(cfg)["checkpoint"])
    assert label.startswith("ckpt-") and len(label) == 21
    backend = FakeBackend()
    backend.add("old-serving", "RUNNING", {"app": "sentiment-serving", "checkpoint": label})
    backend.add("kafka-serving", "RUNNING", {"app": "sentiment-serving", "checkpoint": "ckpt-0000000000000000"})
    backend.add("a-training", "RUNNING", {"app": "sentiment-training"})
    with pytest.raises(TaskError, match="already active on this checkpoint: old-serving"):
        serving_tasks.deploy_serving_job(cfg, job, backend=backend)
    result = serving_tasks.deploy_serving_job(cfg, job, replace_running=True, backend=backend)
    assert result["submitted"] and result["job_id"] == "sentiment-serving-file-tag1" and not result["attached"]
    assert result["replaced"] == ["old-serving"] and backend.cancelled == ["old-serving"]  # other checkpoints stay
    assert backend.submitted == [job]


class SlowCancelBackend(FakeBackend):
    """Dataproc's cancel: it returns while the driver still runs; the job ends some polls later."""

    def __init__(self, polls_to_stop: int) -> None:
        super().__init__()
        self.polls_to_stop = polls_to_stop
        self.events: list[str] = []

    def cancel(self, job_id: str) -> dict:
        self.cancelled.append(job_id)
        self.events.append(f"cancel {job_id}")
        return dict(self.jobs[job_id])  # still RUNNING

    def get(self, job_id: str) -> dict:
        if job_id in self.cancelled and self.jobs[job_id]["state"] == "RUNNING":
            self.polls_to_stop -= 1
            if self.polls_to_stop <= 0:
                self.jobs[job_id]["state"] = "CANCELLED"
                self.events.append(f"ended {job_id}")
        return dict(self.jobs[job_id])

    def submit(
        self, job: dict, wait: bool = False, timeout: float | None = None, request_id: str | None = None
    ) -> dict:
        self.events.append(f"submit {job['reference']['job_id']}")
        return super().submit(job, wait, timeout, request_id)


def test_replace_running_waits_for_the_old_driver_to_stop_before_submitting() -> None:
    from sentiment_mlops.orchestration.job_attempts import TaskAttempt

    cfg = AirflowConfig(serving_deploy_mode="production")
    job = serving_tasks.build_serving_job(cfg, "tag2")
    backend = SlowCancelBackend(polls_to_stop=3)
    backend.add("old", "RUNNING", {"app": "sentiment-serving", "checkpoint": job["labels"]["checkpoint"]})
    attempt = TaskAttempt("sentiment_model_serving", "manual__x", "deploy_streaming_job", 1)
    kw: dict[str, Any] = {"sleep": lambda s: None, "poll_s": 1}
    serving_tasks.deploy_serving_job(cfg, job, replace_running=True, backend=backend, attempt=attempt, **kw)
    assert backend.events == ["cancel old", "ended old", "submit sentiment-serving-file-tag2"]

    stuck = SlowCancelBackend(polls_to_stop=10**6)
    stuck.add("old", "RUNNING", {"app": "sentiment-serving", "checkpoint": job["labels"]["checkpoint"]})
    clock = iter(range(0, 10_000, 10))
    with pytest.raises(TaskError, match="still RUNNING 60s after its cancel"):
        serving_tasks.deploy_serving_job(
            cfg, job, replace_running=True, backend=stuck, timeout_s=60, clock=lambda: next(clock), **kw
        )
    assert stuck.submitted == []  # never a second driver on the checkpoint


def test_retried_deploy_with_replace_running_keeps_its_own_job() -> None:
    """Attempt 1 submitted and died; attempt 2 (replace_running) must not cancel that job: it attaches.
    When that job has failed, attempt 3 submits `-t3` (and still cancels nothing of its own)."""
    from sentiment_mlops.orchestration.job_attempts import TaskAttempt

    cfg = AirflowConfig(serving_deploy_mode="production")
    job = serving_tasks.build_serving_job(cfg, "tag3")
    backend = FakeBackend()

    def deploy(try_number: int) -> dict:
        attempt = TaskAttempt("sentiment_model_serving", "manual__y", "deploy_streaming_job", try_number)
        return serving_tasks.deploy_serving_job(cfg, job, replace_running=True, backend=backend, attempt=attempt)

    first = deploy(1)
    second = deploy(2)
    assert second["job_id"] == first["job_id"] == "sentiment-serving-file-tag3" and second["attached"]
    assert backend.cancelled == [] and len(backend.submitted) == 1
    backend.jobs["sentiment-serving-file-tag3"]["state"] = "ERROR"
    third = deploy(3)
    assert third["job_id"] == "sentiment-serving-file-tag3-t3" and not third["attached"]
    assert backend.cancelled == [] and len(backend.list_active({"checkpoint": job["labels"]["checkpoint"]})) == 1


def _metrics_record(batch_id: int, when: datetime) -> dict:
    return {"batch_id": batch_id, "timestamp": when.isoformat(timespec="seconds"), "rows_in": 10, "predicted": 9,
            "quarantined": 1, "rows_per_s": 50.0, "latency_s": 1.5, "model_version": "3"}  # fmt: skip


def test_wait_for_serving_job(store: LocalStore) -> None:
    cfg = AirflowConfig()
    paths = common.serving_paths(cfg)
    backend = FakeBackend()
    args = [f"--output-path={paths['output']}", f"--metrics-path={paths['metrics']}", "--input-path=gs://in/x"]
    backend.add("s1", "RUNNING", {"app": "sentiment-serving"}, args)
    clock = iter(range(0, 10_000, 5))
    kw: dict[str, Any] = {"backend": backend, "store": store, "sleep": lambda s: None, "clock": lambda: next(clock)}

    with pytest.raises(TaskError) as err:  # RUNNING but no batch: times out with the log tail
        serving_tasks.wait_for_serving_job(cfg, "s1", timeout_s=30, **kw)
    assert "did not reach its first batch within 30s" in str(err.value) and "ValueError: bad input" in str(err.value)
    assert serving_tasks.wait_for_serving_job(cfg, "s1", require_first_batch=False, **kw)["state"] == "RUNNING"

    old = datetime.now(UTC) - timedelta(hours=1)
    store.write_bytes(
        f"{paths['metrics']}/batch-0000000000.json", (json.dumps(_metrics_record(0, old)) + "\n").encode()
    )
    with pytest.raises(TaskError):  # a batch from an earlier job does not count
        serving_tasks.wait_for_serving_job(cfg, "s1", timeout_s=10, **kw)
    store.write_bytes(
        f"{paths['metrics']}/batch-0000000001.json",
        (json.dumps(_metrics_record(1, datetime.now(UTC))) + "\n").encode(),
    )
    done = serving_tasks.wait_for_serving_job(cfg, "s1", timeout_s=10, **kw)
    assert done["first_batch"]["batch_id"] == 1 and done["first_batch"]["kind"] == "metrics"

    backend.jobs["s1"]["state"] = "ERROR"
    with pytest.raises(TaskError, match="ended ERROR"):
        serving_tasks.wait_for_serving_job(cfg, "s1", **kw)


def test_read_batch_metrics_folder_and_jsonl(store: LocalStore) -> None:
    now = datetime.now(UTC)
    for i in range(7):
        store.write_bytes(
            f"gs://pred-bucket/m/batch-{i:010d}.json",
            (json.dumps(_metrics_record(i, now + timedelta(seconds=i))) + "\n").encode(),
        )
    assert [r["batch_id"] for r in serving_tasks.read_batch_metrics(store, "gs://pred-bucket/m", last=3)] == [4, 5, 6]
    lines = "".join(json.dumps(_metrics_record(i, now + timedelta(seconds=i))) + "\n" for i in range(4)) + "{partial"
    store.write_bytes("gs://pred-bucket/batches.jsonl", lines.encode())
    assert [
        r["batch_id"] for r in serving_tasks.read_batch_metrics(store, "gs://pred-bucket/batches.jsonl", last=2)
    ] == [2, 3]
    assert serving_tasks.read_batch_metrics(store, "gs://pred-bucket/none") == []


def _write_parquet(store: LocalStore, uri: str, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = store.path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [str(i) for i in range(rows)], "prediction": [1.0] * rows}), path)


def test_management_status_output_report_and_stop(store: LocalStore) -> None:
    cfg = AirflowConfig(gcs_bucket="acme")
    paths = common.serving_paths(cfg)
    predictions = paths["predictions"]
    assert predictions == "gs://acme-predictions/predictions"  # the original project's `gsutil ls` path
    stream = "20260102000000-0a1b2c3d"
    # output written before the flat layout is still counted
    _write_parquet(store, f"{predictions}/date=2026-01-01/stream={stream}/batch_id=0/part-0.parquet", 5)
    _write_parquet(store, f"{predictions}/date=2026-01-02/part-{stream}-0000000001-00000.parquet", 7)
    _write_parquet(store, f"{predictions}/date=2026-01-02/part-{stream}-0000000002-00000.parquet", 3)
    _write_parquet(store, f"{predictions}/_staging/{stream}-3/part-00000-x.snappy.parquet", 4)  # in flight
    store.write_bytes(
        f"{paths['metrics']}/batch-0000000002.json", json.dumps(_metrics_record(2, datetime.now(UTC))).encode()
    )

    backend = FakeBackend()
    backend.add("s1", "RUNNING", {"app": "sentiment-serving"}, [f"--metrics-path={paths['metrics']}"])
    backend.add("t1", "RUNNING", {"app": "sentiment-training"})
    active = management.list_active_serving_jobs(cfg, backend=backend)
    assert [j["job_id"] for j in active] == ["s1"]
    statuses = management.job_status_and_metrics(cfg, ["s1"], backend=backend, store=store)
    assert statuses[0]["last_metrics"]["batch_id"] == 2 and statuses[0]["recent_rows_per_s"] == 50.0

    output = management.check_prediction_output(cfg, max_partitions=1, store=store)
    assert output["partitions_total"] == 2 and output["latest_date"] == "2026-01-02"
    assert output["partitions"] == [
        {"date": "2026-01-02", "files": 2, "batches": 2, "rows": 10, "bytes": output["partitions"][0]["bytes"]}
    ]
    assert management.check_prediction_output(cfg, max_partitions=5, store=store)["rows_in_latest_partitions"] == 15

    report = management.write_monitoring_report(cfg, statuses, output, store=store)
    assert report["json_uri"].startswith("gs://acme-predictions/monitoring/serving-report-")
    saved = json.loads(store.path(report["json_uri"]).read_text())
    assert saved["jobs"][0]["job_id"] == "s1" and saved["prediction_output"]["latest_date"] == "2026-01-02"
    markdown = store.path(report["markdown_uri"]).read_text()
    assert "| s1 | RUNNING | 2 @" in markdown and "| 2026-01-02 | 2 | 2 | 10 |" in markdown

    assert management.stop_serving_jobs(cfg, backend=backend) == []
    with pytest.raises(TaskError, match="not a serving job"):
        management.stop_serving_jobs(cfg, job_id="t1", backend=backend)
    assert management.stop_serving_jobs(cfg, job_id="s1", backend=backend) == [{"job_id": "s1", "state": "CANCELLED"}]
    backend.add("s2", "RUNNING", {"app": "sentiment-serving"})
    backend.add("s3", "PENDING", {"app": "sentiment-serving"})
    assert {s["job_id"] for s in management.stop_serving_jobs(cfg, stop_all=True, backend=backend)} == {"s2", "s3"}


# --- the Dataproc backend through a fake hook ---------------------------------------------------------


class FakeGcs:
    def list_files(self, uri: str) -> list[tuple[str, int]]:
        return [(f"{uri}/driveroutput.000000000", 10), (f"{uri}/driveroutput.000000001", 20)]

    def read_bytes(self, uri: str, start: int = 0, length: int | None = None) -> bytes:
        return f"first line of {uri.rsplit('/', 1)[1]}\nlast line\n".encode()


def test_dataproc_backend_with_a_fake_api() -> None:
    from tests.fake_dataproc import FakeDataprocApi, FakeDataprocHook

    cfg = AirflowConfig(**DATAPROC, gcp_region="europe-west1")
    api = FakeDataprocApi()
    backend = DataprocJobBackend("my-proj-123", "europe-west1", hook=FakeDataprocHook(api), store=FakeGcs())  # type: ignore[arg-type]
    spec = training_tasks.build_training_jobs(cfg, input_uri="gs://b-raw/x.csv", run_tag="t", variants=("full",))[
        "full"
    ]
    result = backend.submit(spec, wait=True, request_id="r1")
    assert result["state"] == "DONE" and "attached" not in result
    assert [(r.project_id, r.region, r.job.reference.job_id, r.request_id) for r in api.requests] == [
        ("my-proj-123", "europe-west1", spec["reference"]["job_id"], "r1")
    ]
    # The same job again: with its request id the API returns the first job, without it AlreadyExists;
    # either way the backend attaches and nothing new runs.
    assert backend.submit(spec, request_id="r1")["job_id"] == spec["reference"]["job_id"]
    assert backend.submit(spec, request_id="r2")["attached"] is True
    assert len(api.jobs) == 1 and backend.find("no-such-job") is None

    serving = serving_tasks.build_serving_job(cfg, "t")
    backend.submit(serving)
    active = management.list_active_serving_jobs(cfg, backend=backend)
    assert [j["job_id"] for j in active] == [serving["reference"]["job_id"]]
    backend.cancel(serving["reference"]["job_id"])
    assert api.cancelled == [serving["reference"]["job_id"]]
    tail = backend.log_tail(serving["reference"]["job_id"], 5)
    assert tail[0] == "first line of driveroutput.000000001" and tail[-1] == "last line"


def test_run_job_retry_attaches_or_resubmits() -> None:
    from sentiment_mlops.orchestration.job_attempts import TaskAttempt

    spec = training_tasks.build_training_jobs(AirflowConfig(), input_uri="x.csv", run_tag="t", variants=("full",))[
        "full"
    ]
    backend = FakeBackend(submit_state="DONE")

    def run(try_number: int) -> dict:
        attempt = TaskAttempt("sentiment_training_local", "manual__z", "train_models", try_number)
        return common.run_job(AirflowConfig(), spec, backend=backend, attempt=attempt)

    assert run(1)["job_id"] == "sentiment-training-full-t"
    assert run(2)["attached"] and len(backend.submitted) == 1  # DONE already: nothing runs twice
    backend.jobs["sentiment-training-full-t"]["state"] = "CANCELLED"  # killed with its task
    assert run(3)["job_id"] == "sentiment-training-full-t-t3" and len(backend.submitted) == 2
    assert run(4)["job_id"] == "sentiment-training-full-t-t3"  # the newest attempt's job decides


def test_serving_wait_trigger_polls_in_the_triggerer(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import importlib
    import time

    from sentiment_mlops.orchestration.triggers import ServingJobTrigger

    cfg = AirflowConfig()
    paths = common.serving_paths(cfg)
    backend = FakeBackend()
    backend.add("s1", "RUNNING", {"app": "sentiment-serving"}, [f"--metrics-path={paths['metrics']}"])
    monkeypatch.setattr(serving_tasks, "job_backend", lambda c: backend)
    monkeypatch.setattr(serving_tasks, "store_for", lambda c: store)
    now = time.time()
    trigger = ServingJobTrigger(cfg.as_dict(), "s1", since=now, deadline=now + 60, timeout_s=60, poll_s=0.05)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    trigger = getattr(importlib.import_module(module), name)(**kwargs)  # what the triggerer does

    async def first_event(t: ServingJobTrigger) -> dict:
        async for event in t.run():
            return event.payload
        raise AssertionError("no event")

    async def batch_later() -> dict:
        task = asyncio.create_task(first_event(trigger))
        await asyncio.sleep(0.3)
        assert not task.done()  # RUNNING without a batch: still polling
        record = json.dumps(_metrics_record(1, datetime.now(UTC))) + "\n"
        store.write_bytes(f"{paths['metrics']}/batch-0000000001.json", record.encode())
        return await asyncio.wait_for(task, 10)

    event = asyncio.run(batch_later())
    assert event["status"] == "ok" and event["result"]["first_batch"]["batch_id"] == 1

    backend.jobs["s1"]["submitted_at"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()  # batch is older
    late = ServingJobTrigger(cfg.as_dict(), "s1", since=now, deadline=now - 1, timeout_s=30, poll_s=0.05)
    event = asyncio.run(first_event(late))
    assert event["status"] == "error" and "did not reach its first batch within 30s" in event["message"]
    backend.jobs["s1"]["state"] = "ERROR"
    event = asyncio.run(first_event(trigger))
    assert (
        event["status"] == "error" and "ended ERROR" in event["message"] and "ValueError: bad input" in event["message"]
    )
