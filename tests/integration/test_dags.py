"""The DAG files: they import cleanly, have the task ids and order that are the interface, dispatch
training by backend, fail first on bad Variables; and one real `airflow dags test` end to end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = ROOT / "airflow" / "dags"
# Parsing needs an AIRFLOW_HOME; never the user's ~/airflow. Set before anything imports airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="sentiment-airflow-parse-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

EXPECTED_CHAINS = {
    "sentiment_ml_training_pipeline": [
        ["start", "validate_data", "check_mlflow_connection", "prepare_environment", "train_models_full_dataset",
         "get_best_model_info", "generate_training_report", "send_completion_notification", "end"],
        ["prepare_environment", "train_models_with_cv", "get_best_model_info"],
    ],
    "sentiment_training_local": [
        ["start", "validate_data", "check_mlflow_connection", "prepare_environment", "train_models",
         "get_best_model_info", "generate_training_report", "end"],
    ],
    "sentiment_model_serving": [
        ["validate_mlflow", "get_model_to_serve", "deploy_streaming_job", "wait_for_streaming_job", "notify"],
    ],
    "sentiment_serving_management": [
        ["list_active_serving_jobs", "job_status_and_metrics", "check_prediction_output", "write_monitoring_report",
         "stop_serving_job"],
    ],
    "sentiment_model_monitoring": [
        ["start", "measure_model", "alert_fired", "notify_alert", "retraining_enabled", "trigger_retraining"],
    ],
}  # fmt: skip

DATAPROC_VARS = {
    "SENTIMENT_BACKEND": "dataproc",
    "GCP_PROJECT_ID": "my-proj-123",
    "DATAPROC_CLUSTER_NAME": "sentiment-cluster",
    "GCS_BUCKET": "acme",
}


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS_DIR))


def test_dagbag_imports_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == set(EXPECTED_CHAINS)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_CHAINS))
def test_tasks_and_order(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    chains = EXPECTED_CHAINS[dag_id]
    assert set(dag.task_ids) == {t for chain in chains for t in chain}
    for chain in chains:
        for upstream, downstream in zip(chain, chain[1:], strict=False):
            assert upstream in dag.get_task(downstream).upstream_task_ids, f"{upstream} -> {downstream}"
    roots = [t.task_id for t in dag.roots]
    assert roots == [chains[0][0]]  # the first task (which loads the Variables) runs before anything else


def test_schedules_and_params(dagbag: Any) -> None:
    assert dagbag.dags["sentiment_ml_training_pipeline"].schedule == "0 3 * * 0"  # weekly; manual runs too
    assert dagbag.dags["sentiment_model_monitoring"].schedule == "@hourly"
    for dag_id in ("sentiment_training_local", "sentiment_model_serving", "sentiment_serving_management"):
        assert dagbag.dags[dag_id].schedule is None  # manual only
    assert {"stop_job_id", "stop_all"} <= set(dagbag.dags["sentiment_serving_management"].params)
    assert {"deploy_mode", "source_type", "wait_timeout_seconds"} <= set(dagbag.dags["sentiment_model_serving"].params)
    assert {"input_path", "max_rows", "models"} <= set(dagbag.dags["sentiment_training_local"].params)


def test_every_dag_notifies_a_person_when_it_fails(dagbag: Any) -> None:
    from sentiment_mlops.orchestration.notifications import on_failure

    for dag in dagbag.dags.values():
        for t in dag.tasks:
            callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
            assert on_failure in callbacks, f"{dag.dag_id}.{t.task_id}"


def test_training_tasks_are_deferrable_dataproc_operators(dagbag: Any) -> None:
    from airflow.providers.google.cloud.operators.dataproc import DataprocSubmitJobOperator

    dag = dagbag.dags["sentiment_ml_training_pipeline"]
    for task_id in ("train_models_full_dataset", "train_models_with_cv"):
        op = dag.get_task(task_id)
        assert isinstance(op, DataprocSubmitJobOperator)
        assert op.deferrable and op.gcp_conn_id == "google_cloud_default"
        assert "job" in op.template_fields and "sentiment_config" in op.template_fields


def test_serving_wait_defers_to_a_trigger(dagbag: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from sentiment_mlops.orchestration.config import AirflowConfig
    from sentiment_mlops.orchestration.tasks.common import TaskError
    from sentiment_mlops.orchestration.triggers import ServingJobTrigger

    op = dagbag.dags["sentiment_model_serving"].get_task("wait_for_streaming_job")
    deployment = {"submitted": True, "job_id": "sentiment-serving-file-t"}

    class TI:
        def xcom_pull(self, task_ids: str) -> Any:
            return {"config": AirflowConfig().as_dict()} if task_ids == "validate_mlflow" else deployment

    context = {"ti": TI(), "params": {"wait_timeout_seconds": 120, "require_first_batch": True}}
    with pytest.raises(TaskDeferred) as deferred:  # no worker slot held while polling
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, ServingJobTrigger) and trigger.job_id == "sentiment-serving-file-t"
    assert trigger.deadline - trigger.since == 120 and trigger.require_first_batch
    assert op.execute_complete(context, {"status": "ok", "result": {"state": "RUNNING"}}) == {"state": "RUNNING"}
    with pytest.raises(TaskError, match="ended ERROR"):
        op.execute_complete(context, {"status": "error", "message": "serving job x ended ERROR"})
    deployment["submitted"] = False
    assert op.execute(context)["state"] == "NOT_SUBMITTED"


# --- the first task: Variables -------------------------------------------------------------------


class _DagRun:
    run_after = None


def _patch_variables(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    from airflow.sdk import Variable

    def fake_get(key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        return values.get(key, default)

    monkeypatch.setattr(Variable, "get", fake_get)


@pytest.mark.parametrize(
    ("dag_id", "task_id", "kwargs"),
    [
        ("sentiment_ml_training_pipeline", "start", {"run_id": "r", "dag_run": _DagRun(), "params": {}}),
        ("sentiment_model_serving", "validate_mlflow", {"run_id": "r", "dag_run": _DagRun(), "params": {}}),
        ("sentiment_serving_management", "list_active_serving_jobs", {}),
        ("sentiment_model_monitoring", "start", {"run_id": "r", "dag_run": _DagRun()}),
    ],
)
def test_first_task_fails_naming_the_bad_variable(
    dagbag: Any, monkeypatch: pytest.MonkeyPatch, dag_id: str, task_id: str, kwargs: dict
) -> None:
    _patch_variables(monkeypatch, {"serving_deploy_mode": "prod", "serving_batch_interval": "often"})
    with pytest.raises(ValueError) as err:
        dagbag.dags[dag_id].get_task(task_id).python_callable(**kwargs)
    assert "serving_deploy_mode='prod' is invalid; allowed values: test, production" in str(err.value)
    assert "serving_batch_interval='often'" in str(err.value)


def test_training_start_and_local_dev_override(dagbag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_variables(monkeypatch, {"SENTIMENT_BACKEND": "dataproc"})  # project/cluster missing
    start = dagbag.dags["sentiment_ml_training_pipeline"].get_task("start").python_callable
    with pytest.raises(ValueError, match="GCP_PROJECT_ID is not set"):
        start(run_id="r", dag_run=_DagRun(), params={})
    local_start = dagbag.dags["sentiment_training_local"].get_task("start").python_callable
    out = local_start(run_id="r", dag_run=_DagRun(), params={"input_path": "/data/x.csv"})
    assert out["config"]["backend"] == "local" and out["input_path"] == "/data/x.csv"

    _patch_variables(monkeypatch, DATAPROC_VARS)
    out = start(run_id="manual__1", dag_run=_DagRun(), params={"input_path": None})
    assert out["config"]["backend"] == "dataproc"
    assert out["input_path"] == "gs://acme-raw/raw/training.1600000.processed.noemoticon.csv"
    assert len(out["run_tag"]) == 22


# --- the training operator's backend dispatch ------------------------------------------------------


class _TI:
    dag_id = "sentiment_ml_training_pipeline"
    run_id = "manual__2026-01-01T00:00:00+00:00"

    def __init__(self, task_id: str, try_number: int = 1) -> None:
        self.task_id, self.try_number = task_id, try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _training_job(cfg: Any) -> dict:
    from sentiment_mlops.orchestration.tasks import training

    return training.build_training_jobs(cfg, input_uri="gs://acme-raw/x.csv", run_tag="tag1", variants=("full",))[
        "full"
    ]


def _dataproc_operator(dagbag: Any, monkeypatch: pytest.MonkeyPatch, api: Any, deferrable: bool = False) -> Any:
    """train_models_full_dataset with its job and config for the Dataproc backend, on a fake API."""
    import airflow.providers.google.cloud.operators.dataproc as provider

    from sentiment_mlops.orchestration.config import load_airflow_config
    from tests.fake_dataproc import FakeDataprocHook

    cfg = load_airflow_config(DATAPROC_VARS)
    monkeypatch.setattr(FakeDataprocHook, "api", api)
    monkeypatch.setattr(provider, "DataprocHook", FakeDataprocHook)
    op = dagbag.dags["sentiment_ml_training_pipeline"].get_task("train_models_full_dataset")
    for name, value in (("job", _training_job(cfg)), ("sentiment_config", cfg.as_dict()), ("region", "placeholder"),
                        ("deferrable", deferrable), ("request_id", None)):  # fmt: skip
        monkeypatch.setattr(op, name, value)
    return op


def test_training_operator_on_dataproc_submits_once_with_a_stable_request_id(
    dagbag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fake_dataproc import FakeDataprocApi

    api = FakeDataprocApi()
    op = _dataproc_operator(dagbag, monkeypatch, api)
    ti = _TI("train_models_full_dataset")
    assert op.execute({"ti": ti, "run_id": ti.run_id}) == "sentiment-training-full-tag1"
    [request] = api.requests
    assert (request.project_id, request.region) == ("my-proj-123", "us-central1")
    assert request.job.reference.job_id == "sentiment-training-full-tag1"
    assert len(request.request_id) == 40 and api.jobs["sentiment-training-full-tag1"].status.state.name == "DONE"
    links = [v for v in ti.pushed.values() if isinstance(v, dict) and "job_id" in v]  # the provider's job link
    assert links and links[0]["job_id"] == "sentiment-training-full-tag1" and links[0]["project_id"] == "my-proj-123"


def test_training_retry_on_dataproc_attaches_or_resubmits(dagbag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attempt 1 submits and its worker dies (the job runs on); attempt 2 defers on that very job; when
    that job fails, attempt 3 submits `-t3`; a lost submit response (AlreadyExists) attaches too."""
    from airflow.sdk.exceptions import TaskDeferred

    from tests.fake_dataproc import FakeDataprocApi, FakeDataprocHook

    api = FakeDataprocApi()
    op = _dataproc_operator(dagbag, monkeypatch, api, deferrable=True)
    first = _TI("train_models_full_dataset", 1)
    with pytest.raises(TaskDeferred) as deferred:  # submitted, RUNNING: the worker would now die
        op.execute({"ti": first, "run_id": first.run_id})
    assert deferred.value.trigger.job_id == "sentiment-training-full-tag1"

    op = _dataproc_operator(dagbag, monkeypatch, api, deferrable=True)
    second = _TI("train_models_full_dataset", 2)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": second, "run_id": second.run_id})
    assert deferred.value.trigger.job_id == "sentiment-training-full-tag1"
    assert len(api.requests) == 1 and list(api.jobs) == ["sentiment-training-full-tag1"]  # nothing resubmitted

    api.set_state("sentiment-training-full-tag1", "ERROR")
    op = _dataproc_operator(dagbag, monkeypatch, api)
    third = _TI("train_models_full_dataset", 3)
    assert op.execute({"ti": third, "run_id": third.run_id}) == "sentiment-training-full-tag1-t3"
    assert [r.job.reference.job_id for r in api.requests] == [
        "sentiment-training-full-tag1",
        "sentiment-training-full-tag1-t3",
    ]
    assert api.requests[0].request_id != api.requests[1].request_id

    # A submit whose response was lost: the job exists, this attempt's lookup missed it.
    op = _dataproc_operator(dagbag, monkeypatch, api)
    raced = dict(op.job, reference={"job_id": "sentiment-training-full-tag1-t4"})
    FakeDataprocHook(api).submit_job(job=raced, project_id="my-proj-123", region="us-central1")
    monkeypatch.setattr("sentiment_mlops.orchestration.operators.job_for_attempt", lambda find, job, n: (raced, None))
    fourth = _TI("train_models_full_dataset", 4)
    assert op.execute({"ti": fourth, "run_id": fourth.run_id}) == "sentiment-training-full-tag1-t4"
    assert api.jobs["sentiment-training-full-tag1-t4"].status.state.name == "DONE" and len(api.jobs) == 3


SERVERLESS_VARS = {
    "SENTIMENT_BACKEND": "dataproc-serverless",
    "GCP_PROJECT_ID": "my-proj-123",
    "GCS_BUCKET": "acme",
    "DATAPROC_SERVICE_ACCOUNT": "spark-jobs@my-proj-123.iam.gserviceaccount.com",
}


def _serverless_operator(
    dagbag: Any, monkeypatch: pytest.MonkeyPatch, api: Any, deferrable: bool = False, **config: Any
) -> Any:
    """train_models_full_dataset with its job and config for dataproc-serverless, on a fake API."""
    import airflow.providers.google.cloud.operators.dataproc as provider

    from sentiment_mlops.orchestration.config import load_airflow_config
    from tests.fake_dataproc import FakeDataprocHook

    cfg = load_airflow_config(SERVERLESS_VARS)
    monkeypatch.setattr(FakeDataprocHook, "api", api)
    monkeypatch.setattr(provider, "DataprocHook", FakeDataprocHook)
    op = dagbag.dags["sentiment_ml_training_pipeline"].get_task("train_models_full_dataset")
    for name, value in (("job", _training_job(cfg)), ("sentiment_config", {**cfg.as_dict(), **config}),
                        ("region", "placeholder"), ("deferrable", deferrable), ("request_id", None)):  # fmt: skip
        monkeypatch.setattr(op, name, value)
    return op


def test_training_operator_on_serverless_creates_one_batch_and_retries_like_jobs(
    dagbag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 1 creates the batch and defers on DataprocBatchTrigger; the trigger's event ends the task;
    attempt 2 (worker died) defers on the same batch; after the batch failed, attempt 3 creates `-t3`
    and waits with the hook; attempt 4 finds `-t3` SUCCEEDED and creates nothing."""
    from airflow.providers.google.cloud.triggers.dataproc import DataprocBatchTrigger
    from airflow.sdk.exceptions import AirflowException, TaskDeferred

    from tests.fake_dataproc import FakeDataprocApi

    api = FakeDataprocApi()
    batch_id = "sentiment-training-full-tag1"
    op = _serverless_operator(dagbag, monkeypatch, api, deferrable=True)
    first = _TI("train_models_full_dataset", 1)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": first, "run_id": first.run_id})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DataprocBatchTrigger) and trigger.batch_id == batch_id
    assert (trigger.project_id, trigger.region, trigger.polling_interval_seconds) == ("my-proj-123", "us-central1", 60)
    [request] = api.batch_requests
    assert request.parent == "projects/my-proj-123/regions/us-central1" and request.batch_id == batch_id
    assert len(request.request_id) == 40
    assert request.batch.pyspark_batch.main_python_file_uri == op.job["pyspark_job"]["main_python_file_uri"]
    assert (
        request.batch.environment_config.execution_config.service_account == SERVERLESS_VARS["DATAPROC_SERVICE_ACCOUNT"]
    )
    links = [v for v in first.pushed.values() if isinstance(v, dict) and "batch_id" in v]  # the provider's batch link
    assert links and links[0]["batch_id"] == batch_id and links[0]["project_id"] == "my-proj-123"
    done = {"batch_id": batch_id, "batch_state": "SUCCEEDED", "batch_state_message": ""}
    assert op.execute_complete({}, done) == batch_id
    with pytest.raises(AirflowException, match=f"Batch {batch_id} ended FAILED: Driver exited"):
        op.execute_complete({}, {**done, "batch_state": "FAILED", "batch_state_message": "Driver exited with code 1"})

    op = _serverless_operator(dagbag, monkeypatch, api, deferrable=True)
    second = _TI("train_models_full_dataset", 2)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": second, "run_id": second.run_id})
    assert deferred.value.trigger.batch_id == batch_id and len(api.batch_requests) == 1  # attached

    api.set_batch_state(batch_id, "FAILED", "Driver exited with code 1")
    op = _serverless_operator(dagbag, monkeypatch, api)
    third = _TI("train_models_full_dataset", 3)
    assert op.execute({"ti": third, "run_id": third.run_id}) == f"{batch_id}-t3"
    assert api.batches[f"{batch_id}-t3"].state.name == "SUCCEEDED" and len(api.batch_requests) == 2
    fourth = _TI("train_models_full_dataset", 4)
    assert op.execute({"ti": fourth, "run_id": fourth.run_id}) == f"{batch_id}-t3" and len(api.batch_requests) == 2

    cancelling = FakeDataprocApi()
    cancelling.batch_wait_outcome = "CANCELLED"  # cancelled by someone while the task waits
    op = _serverless_operator(dagbag, monkeypatch, cancelling)
    with pytest.raises(AirflowException, match=f"Batch {batch_id} ended CANCELLED.*\n.*Driver logs: https://"):
        op.execute({"ti": first, "run_id": first.run_id})


def test_training_operator_on_serverless_kill_and_bad_settings(dagbag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from tests.fake_dataproc import FakeDataprocApi

    api = FakeDataprocApi()
    op = _serverless_operator(dagbag, monkeypatch, api, deferrable=True)
    ti = _TI("train_models_full_dataset")
    with pytest.raises(TaskDeferred):
        op.execute({"ti": ti, "run_id": ti.run_id})
    op.on_kill()  # cancel_on_kill: the batch's creating operation is cancelled
    assert api.cancelled_batches == ["sentiment-training-full-tag1"]

    for bad, message in (({"dataproc_runtime_version": "1.1"}, "not one the jobs are tested on"),
                         ({"dataproc_service_account": "me@example.com"}, "not a service-account e-mail")):  # fmt: skip
        api = FakeDataprocApi()
        op = _serverless_operator(dagbag, monkeypatch, api, **bad)
        with pytest.raises(ValueError, match=message):
            op.execute({"ti": ti, "run_id": ti.run_id})
        assert api.batch_requests == []  # refused before any create request


def test_training_operator_on_local_runs_local_jobs(dagbag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentiment_mlops.orchestration.config import AirflowConfig
    from sentiment_mlops.orchestration.tasks import common

    cfg = AirflowConfig(gcs_bucket="acme")
    runs: list[tuple] = []
    monkeypatch.setattr(
        common,
        "run_job",
        lambda c, job, **kw: runs.append((c.backend, job, kw["attempt"])) or {"job_id": job["reference"]["job_id"]},
    )
    op = dagbag.dags["sentiment_ml_training_pipeline"].get_task("train_models_with_cv")
    monkeypatch.setattr(op, "job", _training_job(cfg))
    monkeypatch.setattr(op, "sentiment_config", cfg.as_dict())
    ti = _TI("train_models_with_cv", 2)
    assert op.execute({"ti": ti, "run_id": ti.run_id}) == "sentiment-training-full-tag1"
    assert runs[0][0] == "local" and runs[0][2].try_number == 2 and runs[0][2].task_id == "train_models_with_cv"


# --- end to end: the real airflow CLI, spark-submit and MLflow server -----------------------------------


def _airflow(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


LOGICAL_DATE = "2026-01-04T03:00:00+00:00"
RERUN_DAG = """
import json, sys
from datetime import datetime
from airflow.dag_processing.dagbag import DagBag
folder, dag_id, when, conf = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3]), json.loads(sys.argv[4])
run = DagBag(folder).get_dag(dag_id).test(run_after=when, logical_date=when, run_conf=conf)
print("DAG RUN", getattr(run.state, "value", run.state))
sys.exit(0 if run.state == "success" else 1)
"""


def _wait_for_running_job(jobs_dir: Path, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """True once the local runner has started a training job's process (False: the run ended or timed out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for record in jobs_dir.glob("sentiment-training-full-*.json"):
            with contextlib.suppress(ValueError, OSError):
                data = json.loads(record.read_text())
                if data["pid"] and data["state"] in ("PENDING", "RUNNING"):  # the state is refreshed on reads
                    return True
        time.sleep(1)
    return False


@pytest.mark.integration
def test_dags_test_sentiment_training_local_end_to_end(
    tmp_path: Path, sentiment_home: Path, mlflow_server: str, sample_csv: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.registry import lookups as registry

    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SENTIMENT_HOME": str(sentiment_home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    env.pop("SENTIMENT_BUCKET_ROOT", None)
    migrate = _airflow(env, "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    for key, value in (("MLFLOW_TRACKING_URI", mlflow_server), ("GCS_BUCKET", "e2e-sentiment")):
        result = _airflow(env, "variables", "set", key, value)
        assert result.returncode == 0, result.stderr[-2000:]

    conf = {"input_path": str(sample_csv), "max_rows": 3000, "models": "lr,svc", "force_promote": True}
    # The DAG run is killed (SIGKILL: no cleanup at all) once its training job runs, then run again. The
    # CLI `airflow dags test` names each call's run after the current time, so this calls what it calls,
    # DAG.test(), with a fixed run_after: the second call executes the same DAG run (same run_id) again,
    # and train_models must attach to the job the killed run started, not start a second one.
    args = [sys.executable, "-c", RERUN_DAG, str(DAGS_DIR), "sentiment_training_local", LOGICAL_DATE, json.dumps(conf)]
    jobs_dir = sentiment_home / "run" / "jobs"
    first = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        assert _wait_for_running_job(jobs_dir, first, timeout=600), "the first run never started its job"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0 and "DAG RUN success" in output, output[-6000:]
    assert "attaches to job sentiment-training-full-" in output, output[-6000:]
    jobs = list(jobs_dir.glob("sentiment-training-full-*.json"))
    assert [json.loads(j.read_text())["state"] for j in jobs] == ["DONE"]  # one job, attached to, DONE

    reports = list((sentiment_home / "buckets" / "e2e-sentiment-models" / "training").glob("*/training_report.md"))
    assert len(reports) == 1
    report = reports[0].read_text()
    assert "| LogisticRegression |" in report and "| LinearSVC |" in report and "Confusion matrix" in report
    summary = json.loads((reports[0].parent / "full" / "training_summary.json").read_text())
    assert set(summary["models"]) == {"logisticregression", "linearsvc"}

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    for model in summary["models"].values():  # every model of this run registered under its own name
        version = client.get_model_version(model["registered_model"], model["version"])
        assert version.run_id == model["run_id"]
    production = registry.resolve_version(client, "twitter-sentiment-model-best", "production")
    assert production is not None and production.run_id in {m["run_id"] for m in summary["models"].values()}
    artifacts = [a.path for a in client.list_artifacts(summary["parent_run_id"], "reports")]
    assert artifacts == ["reports/training_report.md"]

    # A bad Variable fails the first task of a DAG, with the message naming it (real CLI, real Variables).
    assert _airflow(env, "variables", "set", "serving_deploy_mode", "prod").returncode == 0
    bad = _airflow(env, "dags", "test", "sentiment_model_serving", timeout=300)
    assert bad.returncode != 0
    assert "serving_deploy_mode='prod' is invalid; allowed values: test, production" in bad.stdout + bad.stderr
