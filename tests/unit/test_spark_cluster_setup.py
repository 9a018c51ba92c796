"""The cluster mode's checks that need no running Spark: a zip missing a module, a master URL that
does not answer, the interpreter that hides the package's source folders, the setting itself."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from sentiment_mlops import jobs
from sentiment_mlops.backends.local.jobs import JobError, LocalJobController
from sentiment_mlops.backends.local.mlflow_server import free_port
from sentiment_mlops.backends.local.spark_cluster import ClusterError, check_master, job_python, parse_master_url
from sentiment_mlops.core.settings import Settings
from sentiment_mlops.jobs.packaging import build_package_zip, missing_modules

CODE = Path(__file__).resolve().parents[2] / "code"
ENTRIES = (CODE / jobs.TRAINING_ENTRY, CODE / jobs.SERVING_ENTRY)


@pytest.fixture(scope="module")
def full_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package_zip(tmp_path_factory.mktemp("zip") / jobs.PACKAGE_ZIP)


def _without(src: Path, dest: Path, member: str) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            if info.filename != member:
                zout.writestr(info, zin.read(info))
    return dest


def test_the_built_zip_holds_every_module_the_jobs_import(full_zip: Path) -> None:
    assert missing_modules(full_zip, ENTRIES) == []


def test_a_zip_missing_a_module_names_it_and_its_importer(full_zip: Path, tmp_path: Path) -> None:
    bad = _without(full_zip, tmp_path / "a.zip", "sentiment_mlops/serving/kafka/sink.py")
    assert missing_modules(bad, ENTRIES) == [
        "sentiment_mlops.serving.kafka.sink (imported by sentiment_mlops/serving/job.py)"
    ]
    bad = _without(full_zip, tmp_path / "b.zip", "sentiment_mlops/training/job.py")
    assert missing_modules(bad, ENTRIES) == [f"sentiment_mlops.training.job (imported by {jobs.TRAINING_ENTRY})"]
    bad = _without(full_zip, tmp_path / "c.zip", "sentiment_mlops/__init__.py")
    assert "has no sentiment_mlops/__init__.py at its root" in missing_modules(bad, ENTRIES)[0]


def _controller(home: Path, master: str) -> LocalJobController:
    return LocalJobController(Settings(backend="local", home=home, spark_master=master))


def _job(zip_uri: str) -> dict:
    target = jobs.DataprocTarget("", "local", "local", "gs://t-code/jobs")
    job = jobs.training_job(target, ["--input=x", "--output=y"], job_id="cluster-check")
    job["pyspark_job"]["python_file_uris"] = [zip_uri]
    return job


def _code_bucket(home: Path, full_zip: Path, tmp_path: Path) -> Path:
    code = home / "buckets" / "t-code" / "jobs"
    code.mkdir(parents=True)
    (code / jobs.TRAINING_ENTRY).write_text((CODE / jobs.TRAINING_ENTRY).read_text())
    (code / jobs.PACKAGE_ZIP).write_bytes(full_zip.read_bytes())
    _without(full_zip, code / "broken.zip", "sentiment_mlops/training/data_loading.py")
    return code


def test_the_runner_refuses_a_zip_missing_a_module_before_starting_anything(full_zip: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _code_bucket(home, full_zip, tmp_path)
    ctl = _controller(home, f"spark://127.0.0.1:{free_port()}")
    with pytest.raises(
        JobError, match=r"broken.zip is missing module\(s\) the job imports: sentiment_mlops.training.data_loading"
    ):
        ctl.submit(_job("gs://t-code/jobs/broken.zip"))
    with pytest.raises(JobError, match="--py-files gs://t-code/jobs/absent.zip not found"):
        ctl.submit(_job("gs://t-code/jobs/absent.zip"))
    assert not list((home / "run" / "jobs").glob("*.json"))  # no job record, no process


def test_a_master_that_does_not_answer_is_one_clear_error(full_zip: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _code_bucket(home, full_zip, tmp_path)
    dead = f"spark://127.0.0.1:{free_port()}"
    with pytest.raises(JobError) as caught:
        _controller(home, dead).submit(_job(f"gs://t-code/jobs/{jobs.PACKAGE_ZIP}"))
    message = str(caught.value)
    assert f"Spark master {dead} (SENTIMENT_SPARK_MASTER) does not answer" in message
    assert "spark_cluster start" in message and "unset SENTIMENT_SPARK_MASTER" in message
    with pytest.raises(ClusterError, match="expected spark://HOST:PORT"):
        check_master("spark://a:1,b:2")
    assert parse_master_url("spark://127.0.0.1") == ("127.0.0.1", 7077)


def test_the_setting_must_be_a_standalone_master_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SENTIMENT_SPARK_MASTER must be a standalone master URL"):
        Settings(home=tmp_path, spark_master="local[2]")


def test_the_job_python_imports_the_package_only_from_the_zip(full_zip: Path, tmp_path: Path) -> None:
    """The venv may hold an editable install and PYTHONPATH may name code/: on the cluster neither
    counts, as on Dataproc."""
    python = job_python(tmp_path)
    probe = "import sentiment_mlops; print(sentiment_mlops.__file__)"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(CODE)}
    hidden = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert hidden.returncode == 1 and "No module named 'sentiment_mlops'" in hidden.stderr
    env["PYTHONPATH"] = f"{full_zip}:{CODE}"
    shipped = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert shipped.stdout.strip() == f"{full_zip}/sentiment_mlops/__init__.py"
