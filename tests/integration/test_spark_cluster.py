"""The jobs on a real multi-process Spark cluster: a standalone master and two workers (1 core, 1 GB
each) on 127.0.0.1, jobs sent by the local runner with SENTIMENT_SPARK_MASTER through spark-submit
--py-files sentiment_mlops.zip from a folder where the package is not importable, as on Dataproc.

Training end to end; the streaming job with file drops, a hot-swap and a model from a newer Spark
refused; a worker killed with SIGKILL mid-stream; the driver killed and restarted. Real MLflow server,
real Spark daemons, no mocks. One cluster for the module: starting it costs about half a minute.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pyspark
import pytest
import yaml
from mlflow.tracking import MlflowClient

from sentiment_mlops import jobs
from sentiment_mlops.backends.local.jobs import CANCELLED, DONE, ERROR, RUNNING, LocalJobController
from sentiment_mlops.backends.local.mlflow_server import free_port
from sentiment_mlops.backends.local.spark_cluster import SparkCluster, alive_workers
from sentiment_mlops.backends.local.supervisor import signal_session
from sentiment_mlops.core.settings import Settings
from sentiment_mlops.core.storage import local_path
from sentiment_mlops.jobs.packaging import build_package_zip
from sentiment_mlops.registry import lookups
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
CODE = Path(__file__).resolve().parents[2] / "code"
BUCKET = "cluster-itest"
BASE = "cluster-itest-model"
BEST = lookups.registered_name(BASE, lookups.BEST_SUFFIX)
TARGET = jobs.DataprocTarget("", "local", "local", jobs.default_code_uri(BUCKET))
IMPORT_PROBE = "import sentiment_mlops\nprint('imported from', sentiment_mlops.__file__)\n"


@pytest.fixture(scope="module")
def cluster(sentiment_home: Path) -> Iterator[SparkCluster]:
    spark_cluster = SparkCluster(Settings(home=sentiment_home).spark_cluster_dir, port=free_port(), ui_port=free_port())
    spark_cluster.start(timeout=300)
    try:
        yield spark_cluster
    finally:
        spark_cluster.stop()


@pytest.fixture(scope="module")
def ctl(cluster: SparkCluster, sentiment_home: Path) -> Iterator[LocalJobController]:
    """The local runner pointed at the cluster, the code uploaded as CI does (entry scripts + zip)."""
    code = local_path(TARGET.code_uri)
    code.mkdir(parents=True, exist_ok=True)
    for entry in (jobs.TRAINING_ENTRY, jobs.SERVING_ENTRY):
        shutil.copy(CODE / entry, code / entry)
    build_package_zip(code / jobs.PACKAGE_ZIP)
    (code / "import_probe.py").write_text(IMPORT_PROBE)
    controller = LocalJobController(Settings(backend="local", home=sentiment_home, spark_master=cluster.master_url))
    yield controller
    for record in controller.list_jobs("active"):  # never leave a driver behind
        controller.cancel(record.job_id, timeout=20)


def _log(ctl: LocalJobController, job_id: str, n: int = 60) -> str:
    return "\n".join(ctl.log_tail(job_id, n))


def _app(cluster: SparkCluster, ctl: LocalJobController, job_id: str) -> dict:
    """The master's record of the application the job's driver registered (its id is in the driver log)."""
    found = re.findall(
        r"Connected to Spark cluster with app ID (app-[\w-]+)", ctl.get(job_id).log_path.read_text(errors="replace")
    )
    assert found, f"the driver of {job_id} never connected to the cluster:\n{_log(ctl, job_id)}"
    state = cluster.state()
    apps = [a for a in state.get("activeapps", []) + state.get("completedapps", []) if a.get("id") == found[-1]]
    assert apps, f"the master does not know {found[-1]}"
    return apps[0]


@dataclass(frozen=True)
class Trained:
    job_id: str
    production_version: str  # @production right after the job, before other tests move it


@pytest.fixture(scope="module")
def trained(ctl: LocalJobController, cluster: SparkCluster, mlflow_server: str, sample_csv: Path) -> Trained:
    """One training job on the cluster: logistic regression on 5,000 tweets, forced onto @production."""
    args = jobs.training_args(
        input=str(sample_csv), output=f"gs://{BUCKET}-models/training/run-1", mlflow_uri=mlflow_server,
        mlflow_experiment="cluster-itest", registered_model_name=BASE, num_features=4096, max_rows=5000,
        models="lr", extra=["--force-promote"],
    )  # fmt: skip
    record = ctl.submit(
        jobs.training_job(TARGET, args, job_id=f"train-{uuid.uuid4().hex[:6]}"), wait=True, timeout=1200
    )
    assert record.state == DONE, _log(ctl, record.job_id)
    # Read now: the hot-swap test registers newer versions and moves @production (random order).
    production = MlflowClient(mlflow_server).get_model_version_by_alias(BEST, "production")
    return Trained(record.job_id, production.version)


@pytest.mark.timeout(1500)
def test_training_runs_on_both_workers_from_the_zip(
    trained: Trained, ctl: LocalJobController, cluster: SparkCluster, mlflow_server: str
) -> None:
    app = _app(cluster, ctl, trained.job_id)
    assert app["state"] == "FINISHED"
    # Both workers ran executors of the job, each with the zip it fetched from the driver.
    for index in (1, 2):
        shipped = list((cluster.work_dir(index) / app["id"]).glob(f"*/{jobs.PACKAGE_ZIP}"))
        assert shipped, f"worker-{index} ran no executor of {app['id']} with the package zip"
    summary = json.loads((local_path(f"gs://{BUCKET}-models/training/run-1") / "training_summary.json").read_text())
    assert summary["promotion"]["registered_model"] == BEST
    client = MlflowClient(mlflow_server)
    assert trained.production_version == str(summary["promotion"]["candidate_version"])
    version = client.get_model_version(BEST, str(summary["promotion"]["candidate_version"]))
    # The Spark that saved the model is recorded on the version, its run and the MLmodel file.
    assert version.tags["spark_version"] == pyspark.__version__
    assert client.get_run(version.run_id).data.tags["spark_version"] == pyspark.__version__
    flavors = mlflow.models.get_model_info(f"models:/{BEST}/{version.version}").flavors
    assert flavors["spark"]["pyspark_version"] == pyspark.__version__


@pytest.mark.timeout(600)
def test_without_the_zip_the_package_is_not_importable(ctl: LocalJobController) -> None:
    """The runner's editable install and PYTHONPATH never reach a job on the cluster."""
    job = jobs.pyspark_job(TARGET, f"{TARGET.code_uri}/import_probe.py", [], app="probe", properties={})
    job["reference"]["job_id"] = f"probe-{uuid.uuid4().hex[:6]}"
    job["pyspark_job"]["python_file_uris"] = []
    record = ctl.submit(job, wait=True, timeout=500)
    assert record.state == ERROR
    assert "No module named 'sentiment_mlops'" in record.details, _log(ctl, record.job_id)
    with_zip = jobs.pyspark_job(TARGET, f"{TARGET.code_uri}/import_probe.py", [], app="probe", properties={})
    with_zip["reference"]["job_id"] = f"probe-{uuid.uuid4().hex[:6]}"
    record = ctl.submit(with_zip, wait=True, timeout=500)
    assert record.state == DONE, _log(ctl, record.job_id)
    assert f"imported from {local_path(TARGET.code_uri) / jobs.PACKAGE_ZIP}/sentiment_mlops/__init__.py" in _log(
        ctl, record.job_id, 200
    )


def _drop(folder: Path, name: str, rows: list[tuple[str, str]]) -> set[str]:
    """Write then rename, as a finished `gsutil cp` appears; returns the ids."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    tmp.write_text("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in rows))
    tmp.rename(folder / name)
    return {i for i, _ in rows}


def _rows(prefix: str, n: int) -> list[tuple[str, str]]:
    return [
        (f"{prefix}-{r}", f"tweet {r} is lovely, great day" if r % 2 else f"sad tweet {r}, awful") for r in range(n)
    ]


def _predictions(tag: str, strict: bool = True) -> pd.DataFrame:
    """Every prediction row on disk: the part files in the day folders, not the staging folder that
    Spark writes and deletes under `_staging/` while the stream runs. Then (`strict=False`), a file
    moved or still being written is skipped: the next poll reads it."""
    folder = local_path(f"gs://{tag}-predictions") / "predictions"
    files = sorted(folder.glob("date=*/part-*.parquet"))
    frames = []
    for path in files:
        try:
            frames.append(pd.read_parquet(path))
        except (OSError, ValueError):  # FileNotFoundError is an OSError; pyarrow's ArrowInvalid a ValueError
            if strict:
                raise
    return pd.concat(frames) if frames else pd.DataFrame({"id": [], "model_version": []})


def _seen(tag: str) -> set[str]:
    return set(_predictions(tag, strict=False)["id"])


def _stream_job(tag: str, mlflow_server: str, job_id: str, *extra: str) -> dict:
    paths = jobs.serving_paths(tag)
    args = jobs.serving_args(
        source_type="file", input_path=paths["input"], output_path=paths["output"], checkpoint=paths["checkpoint"],
        mlflow_uri=mlflow_server, model_name=BEST, model_stage="production", batch_interval_seconds=2,
        reload_interval_seconds=2, max_files_per_trigger=1, extra=list(extra),
    )  # fmt: skip
    return jobs.serving_job(TARGET, args, job_id=job_id)


def _future_spark_version(client: MlflowClient, version: str, tmp_path: Path) -> str:
    """A copy of `version` whose MLmodel says a future Spark saved it; returns the new version."""
    mv = client.get_model_version(BEST, version)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{BEST}/{version}", dst_path=str(tmp_path / "m")))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    mlmodel["flavors"]["spark"]["pyspark_version"] = "99.0.0"
    (local / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with mlflow.start_run(run_name="future-spark", experiment_id=client.get_run(mv.run_id).info.experiment_id) as run:
        mlflow.log_artifacts(str(local), "model")
    return str(client.create_model_version(BEST, f"{run.info.artifact_uri}/model", run.info.run_id).version)


@pytest.mark.timeout(1500)
def test_stream_hot_swaps_refuses_a_newer_spark_model_and_survives_a_worker_sigkill(
    trained: Trained, ctl: LocalJobController, cluster: SparkCluster, mlflow_server: str, tmp_path: Path
) -> None:
    tag = "cl-stream"
    inbox = local_path(jobs.serving_paths(tag)["input"])
    client = MlflowClient(mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    first = client.get_model_version_by_alias(BEST, "production").version
    record = ctl.submit(_stream_job(tag, mlflow_server, f"stream-{uuid.uuid4().hex[:6]}"))
    job_id = record.job_id
    expected: set[str] = set()
    try:
        # 1. a dropped file is scored by the job on the cluster with the @production version
        expected |= _drop(inbox, "a.csv", _rows("a", 20))
        wait_for(lambda: expected <= _seen(tag), "the first drop's predictions", timeout=600, poll=1)
        assert set(_predictions(tag)["model_version"]) == {first}
        assert ctl.get(job_id).state == RUNNING

        # 2. a version saved by a newer Spark is refused with the reason; the current one keeps serving
        future = _future_spark_version(client, first, tmp_path)
        lookups.promote(client, BEST, future)
        wait_for(
            lambda: "saved by Spark 99.0.0" in _log(ctl, job_id, 400),
            "the newer-Spark model's refusal",
            timeout=180,
            poll=1,
        )
        assert f"rejected {BEST} v{future}" in _log(ctl, job_id, 400)

        # 3. hot-swap: a new version takes the alias; later rows carry it, no batch fails
        source = client.get_model_version(BEST, first)
        swapped = str(client.create_model_version(BEST, source.source, source.run_id).version)
        lookups.promote(client, BEST, swapped)
        batch = 0

        def scored_by_new_version() -> bool:
            nonlocal batch
            batch += 1
            expected.update(_drop(inbox, f"b{batch}.csv", _rows(f"b{batch}", 5)))
            time.sleep(4)
            return swapped in set(_predictions(tag, strict=False)["model_version"])

        wait_for(scored_by_new_version, f"rows scored by v{swapped}", timeout=300, poll=1)

        # 4. SIGKILL a worker (its executor and Python workers with it) while files are being scored
        for f in range(6):
            expected |= _drop(inbox, f"c{f}.csv", _rows(f"c{f}", 200))
        wait_for(lambda: any(i.startswith("c0-") for i in _seen(tag)), "the first c file", timeout=300, poll=1)
        cluster.kill("worker-1", signal.SIGKILL)
        wait_for(
            lambda: len(alive_workers(cluster.state())) == 1, "the master to drop the dead worker", timeout=120, poll=1
        )
        wait_for(lambda: expected <= _seen(tag), "every row after the worker died", timeout=600, poll=1)
        time.sleep(5)  # the last batch's files are complete once its rows are all readable
        out = _predictions(tag)
        assert not out["id"].duplicated().any(), "a row was predicted twice"
        assert set(out["id"]) == expected
        assert ctl.get(job_id).state == RUNNING, _log(ctl, job_id)
        assert _app(cluster, ctl, job_id)["state"] == "RUNNING"
    finally:
        if cluster.pid("worker-1") is None:
            cluster.start_worker(1, wait=120)
        assert ctl.cancel(job_id, timeout=30).state == CANCELLED


@pytest.mark.timeout(1500)
def test_driver_killed_and_restarted_scores_every_row_exactly_once(
    trained: Trained, ctl: LocalJobController, cluster: SparkCluster, mlflow_server: str
) -> None:
    tag = "cl-crash"
    inbox = local_path(jobs.serving_paths(tag)["input"])
    expected: set[str] = set()
    for f in range(10):
        expected |= _drop(inbox, f"d{f:02d}.csv", _rows(f"d{f}", 200))
    metrics = local_path(f"gs://{tag}-predictions") / "_metrics" / "batches"
    first = ctl.submit(_stream_job(tag, mlflow_server, f"crash-a-{uuid.uuid4().hex[:6]}"))
    try:
        wait_for(lambda: len(list(metrics.glob("batch-*.json"))) >= 2, "two committed batches", timeout=600, poll=1)
    finally:
        # The driver's machine goes away: spark-submit, the Python driver and its supervisor, at once.
        signal_session(first.pid, signal.SIGKILL)  # type: ignore[arg-type]
    # SIGKILL is delivered asynchronously: a loaded machine may still show the driver for a moment.
    wait_for(lambda: ctl.get(first.job_id).state != RUNNING, "the runner to see the driver gone", timeout=60)
    killed = ctl.get(first.job_id)
    assert killed.state == ERROR and "killed" in killed.details
    assert len(list(metrics.glob("batch-*.json"))) < 10, "the crash should interrupt the stream before it finished"
    wait_for(
        lambda: _app(cluster, ctl, first.job_id)["state"] != "RUNNING",
        "the master to end the dead driver's app",
        timeout=120,
        poll=1,
    )

    second = ctl.submit(
        _stream_job(tag, mlflow_server, f"crash-b-{uuid.uuid4().hex[:6]}", "--available-now"), wait=True, timeout=900
    )
    assert second.state == DONE, _log(ctl, second.job_id)
    out = _predictions(tag)
    assert set(out["id"]) == expected
    assert not out["id"].duplicated().any() and len(out) == len(expected)
