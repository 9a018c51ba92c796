"""Shell scripts and the CI workflow: syntax and shellcheck for every script, the CI scripts' dry runs
submit exactly the builder's jobs, missing settings fail clearly, test_dataproc.sh reports PASS/FAIL,
and the workflow names its jobs and settings."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sentiment_mlops import jobs
from sentiment_mlops.core.settings import DEFAULT_KAFKA_INPUT_TOPIC, DEFAULT_KAFKA_OUTPUT_TOPIC, DEFAULT_SERVING_MODEL
from tests.unit.test_dataproc_jobs import FakeDataproc, assert_same_job

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "ci-cd" / "train-model.sh"
DEPLOY = ROOT / "ci-cd" / "deploy-serving.sh"
TEST_DATAPROC = ROOT / "test_dataproc.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "ml-pipeline.yml"

SETTINGS = {
    "GCP_PROJECT_ID": "sentiment-proj-1",
    "GCP_REGION": "europe-west1",
    "DATAPROC_CLUSTER_NAME": "sentiment-cluster",
    "GCS_BUCKET": "acme",
    "MLFLOW_TRACKING_URI": "http://mlflow.example.internal:5000",
}
TARGET = jobs.DataprocTarget("sentiment-proj-1", "europe-west1", "sentiment-cluster", "gs://acme-code/jobs")


def _shell_scripts() -> list[Path]:
    scripts = set(ROOT.glob("*.sh"))
    for folder in ("ci-cd", "scripts", "airflow"):
        scripts |= set((ROOT / folder).rglob("*.sh"))
    return sorted(scripts)


def _clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any project setting, so only what a test passes is set."""
    names = set(SETTINGS) | {"CODE_URI", "PYTHON", "BUILD_DIR"}
    prefixes = (
        "TRAINING_",
        "SERVING_",
        "KAFKA_",
        "MLFLOW_",
        "REGISTERED_MODEL_NAME",
        "SPARK_KAFKA_PACKAGE",
        "DATAPROC_IMAGE_VERSION",
    )
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith(prefixes)}
    env["PYTHON"] = sys.executable
    env.update(extra)
    return env


def _run(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=120)


def _submit_line(stdout: str) -> list[str]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("gcloud dataproc jobs submit pyspark ")]
    assert len(lines) == 1, stdout
    return shlex.split(lines[0])


def _upload_line(stdout: str) -> list[str]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("gsutil cp ")]
    assert len(lines) == 1, stdout
    return shlex.split(lines[0])


# ---------------------------------------------------------------------------------------------------
# Syntax and lint


def test_there_are_scripts_to_check() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _shell_scripts()}
    assert {"ci-cd/train-model.sh", "ci-cd/deploy-serving.sh", "test_dataproc.sh", "run_tests.sh"} <= names


@pytest.mark.parametrize("script", _shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_bash_syntax(script: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
@pytest.mark.parametrize("script", _shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shellcheck(script: Path) -> None:
    proc = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True, cwd=script.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", [TRAIN, DEPLOY, TEST_DATAPROC], ids=lambda p: p.name)
def test_scripts_are_strict_and_executable(script: Path) -> None:
    assert "set -euo pipefail" in script.read_text()
    assert os.access(script, os.X_OK)


# ---------------------------------------------------------------------------------------------------
# Dry runs agree with the builder


def test_train_dry_run_submits_the_builders_training_job(tmp_path: Path) -> None:
    env = _clean_env(**SETTINGS, TRAINING_JOB_ID="train-ci-1", TRAINING_MODELS="lr,svc", BUILD_DIR=str(tmp_path))
    proc = _run(TRAIN, "--dry-run", "--max-rows", "2000", "--", "--input-layout=six", env=env)
    assert proc.returncode == 0, proc.stderr

    paths = jobs.training_paths("acme", "train-ci-1")
    assert paths == {
        "input": "gs://acme-raw/raw/training.1600000.processed.noemoticon.csv",
        "output": "gs://acme-models/training/train-ci-1",
    }
    expected = jobs.training_job(
        TARGET,
        jobs.training_args(
            input=paths["input"],
            output=paths["output"],
            mlflow_uri="http://mlflow.example.internal:5000",
            models="lr,svc",
            max_rows=2000,
            extra=["--input-layout=six"],
        ),
        labels={"trigger": "manual"},
        job_id="train-ci-1",
    )
    submit = _submit_line(proc.stdout)
    assert submit == jobs.job_to_gcloud_command(expected, "europe-west1")
    # Spelled out: the uploaded files are the ones the job runs, args and properties are the builder's.
    upload = _upload_line(proc.stdout)
    assert upload[-1] == "gs://acme-code/jobs/"
    assert upload[-1] + Path(upload[2]).name == expected["pyspark_job"]["main_python_file_uri"]
    assert [upload[-1] + Path(upload[3]).name] == expected["pyspark_job"]["python_file_uris"]
    assert Path(upload[2]).is_file()
    assert submit[submit.index("--") + 1 :] == expected["pyspark_job"]["args"]
    props = next(a for a in submit if a.startswith("--properties=")).removeprefix("--properties=")
    assert dict(kv.split("=", 1) for kv in props.split(",")) == expected["pyspark_job"]["properties"]
    # The zip is built by the Python module, not by shell code that could differ.
    assert f"{sys.executable} -m sentiment_mlops.jobs.packaging {tmp_path}/{jobs.PACKAGE_ZIP}" in proc.stdout
    assert not (tmp_path / jobs.PACKAGE_ZIP).exists()  # dry run: printed, not built


def test_deploy_dry_run_submits_the_builders_serving_job(tmp_path: Path) -> None:
    env = _clean_env(
        **SETTINGS,
        SERVING_JOB_ID="serve-ci-1",
        SERVING_SOURCE_TYPE="kafka",
        KAFKA_BOOTSTRAP_SERVERS="k1:9092,k2:9092",
        SERVING_MAX_FAILURES_PER_HOUR="3",
        BUILD_DIR=str(tmp_path),
    )
    proc = _run(DEPLOY, "--dry-run", "--model-stage", "Staging", env=env)
    assert proc.returncode == 0, proc.stderr

    paths = jobs.serving_paths("acme", "kafka")
    expected = jobs.serving_job(
        TARGET,
        jobs.serving_args(
            source_type="kafka",
            kafka_bootstrap="k1:9092,k2:9092",
            kafka_topic=DEFAULT_KAFKA_INPUT_TOPIC,
            output_path=paths["output"],
            checkpoint=paths["checkpoint"],
            metrics_path=paths["metrics"],
            mlflow_uri="http://mlflow.example.internal:5000",
            model_name=DEFAULT_SERVING_MODEL,
            model_stage="Staging",
            write_kafka=True,
            kafka_output_topic=DEFAULT_KAFKA_OUTPUT_TOPIC,
        ),
        kafka=True,
        labels={"trigger": "manual"},
        job_id="serve-ci-1",
        max_failures_per_hour=3,
    )
    submit = _submit_line(proc.stdout)
    assert submit == jobs.job_to_gcloud_command(expected, "europe-west1", async_=True)
    assert "--async" in submit
    upload = _upload_line(proc.stdout)
    assert upload[-1] + Path(upload[2]).name == expected["pyspark_job"]["main_python_file_uri"]
    assert [upload[-1] + Path(upload[3]).name] == expected["pyspark_job"]["python_file_uris"]
    assert "SERVING_JOB_ID=serve-ci-1" in proc.stdout.splitlines()
    # The old stream is found by the builder's app label before the new one is submitted.
    lines = proc.stdout.splitlines()
    list_at = next(i for i, ln in enumerate(lines) if ln.startswith("gcloud dataproc jobs list "))
    assert "labels.app = sentiment-serving" in lines[list_at] and "--cluster=sentiment-cluster" in lines[list_at]
    assert list_at < next(i for i, ln in enumerate(lines) if ln.startswith("gcloud dataproc jobs submit"))


def test_deploy_passes_the_challenger_alias_to_the_job(tmp_path: Path) -> None:
    env = _clean_env(**SETTINGS, SERVING_CHALLENGER_ALIAS="shadow", BUILD_DIR=str(tmp_path))
    assert "--challenger-alias=shadow" in _submit_line(_run(DEPLOY, "--dry-run", "--keep-existing", env=env).stdout)
    off = _run(DEPLOY, "--dry-run", "--keep-existing", "--challenger-alias", "none", env=env)
    assert off.returncode == 0, off.stderr
    assert "--challenger-alias=none" in _submit_line(off.stdout)  # the flag wins over the environment
    bad = _run(DEPLOY, "--dry-run", "--challenger-alias", "production", env=env)
    assert bad.returncode != 0 and "the served model's own alias" in bad.stderr


def test_deploy_file_source_defaults_and_keep_existing(tmp_path: Path) -> None:
    env = _clean_env(**SETTINGS, SERVING_JOB_ID="serve-ci-2", BUILD_DIR=str(tmp_path))
    proc = _run(DEPLOY, "--dry-run", "--keep-existing", env=env)
    assert proc.returncode == 0, proc.stderr
    submit = _submit_line(proc.stdout)
    assert "--input-path=gs://acme-streaming-input" in submit and "--source-type=file" in submit
    assert "--checkpoint=gs://acme-checkpoint/streaming/file" in submit
    assert not any("spark.jars.packages" in a or a.startswith("--kafka") or a == "--write-kafka" for a in submit)
    assert "gcloud dataproc jobs list" not in proc.stdout


@pytest.mark.parametrize(
    ("source", "flags", "writes_kafka"),
    [
        ("kafka", ("--write-kafka", "false"), False),  # the original deploy script's spelling
        ("kafka", ("--write-kafka=no",), False),
        ("file", ("--write-kafka", "true"), True),
        ("file", ("--write-kafka", "--keep-existing"), True),  # bare flag: true, next flag kept
    ],
)
def test_deploy_write_kafka_takes_true_or_false(tmp_path: Path, source: str, flags: tuple, writes_kafka: bool) -> None:
    env = _clean_env(**SETTINGS, SERVING_SOURCE_TYPE=source, KAFKA_BOOTSTRAP_SERVERS="k1:9092", BUILD_DIR=str(tmp_path))
    proc = _run(DEPLOY, "--dry-run", *flags, "--keep-existing", "true", env=env)
    assert proc.returncode == 0, proc.stderr
    assert ("--write-kafka" in _submit_line(proc.stdout)) is writes_kafka
    assert "gcloud dataproc jobs list" not in proc.stdout  # --keep-existing true kept the running job


def test_deploy_rejects_a_non_boolean_write_kafka_value(tmp_path: Path) -> None:
    env = _clean_env(**SETTINGS, BUILD_DIR=str(tmp_path))
    proc = _run(DEPLOY, "--dry-run", "--write-kafka=maybe", env=env)
    assert proc.returncode != 0 and "expected true or false, got 'maybe'" in proc.stderr


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud CLI not installed")
def test_dry_run_commands_make_gcloud_send_the_builders_job(tmp_path: Path) -> None:
    """Run the printed command with the real gcloud against a fake Dataproc endpoint: what reaches the
    API is exactly training_job(...)."""
    env = _clean_env(**SETTINGS, TRAINING_JOB_ID="train-ci-3", BUILD_DIR=str(tmp_path))
    proc = _run(TRAIN, "--dry-run", env=env)
    assert proc.returncode == 0, proc.stderr
    expected = jobs.training_job(
        TARGET,
        jobs.training_args(
            input="gs://acme-raw/raw/training.1600000.processed.noemoticon.csv",
            output="gs://acme-models/training/train-ci-3",
            mlflow_uri="http://mlflow.example.internal:5000",
        ),
        labels={"trigger": "manual"},
        job_id="train-ci-3",
    )
    submit = _submit_line(proc.stdout)
    sep = submit.index("--")
    with FakeDataproc() as fake:
        # --async: the fake never finishes a job, and the flag does not change the Job sent.
        sent = fake.run_gcloud([*submit[:sep], "--async", *submit[sep:]], tmp_path)
    assert_same_job(sent, expected)


# ---------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("script", [TRAIN, DEPLOY, TEST_DATAPROC], ids=lambda p: p.name)
def test_missing_settings_fail_with_exit_2_and_name_them(script: Path) -> None:
    partial = {k: v for k, v in SETTINGS.items() if k not in ("GCP_PROJECT_ID", "GCS_BUCKET")}
    proc = _run(script, "--dry-run", env=_clean_env(**partial))
    assert proc.returncode == 2
    assert "GCP_PROJECT_ID" in proc.stderr and "GCS_BUCKET" in proc.stderr
    assert "DATAPROC_CLUSTER_NAME" not in proc.stderr
    assert proc.stdout == ""


def test_invalid_settings_are_rejected_by_the_builder(tmp_path: Path) -> None:
    env = _clean_env(**{**SETTINGS, "DATAPROC_CLUSTER_NAME": "Bad_Cluster"}, BUILD_DIR=str(tmp_path))
    proc = _run(TRAIN, "--dry-run", env=env)
    assert proc.returncode == 2 and "cluster_name" in proc.stderr
    kafka = _run(DEPLOY, "--dry-run", "--source-type", "kafka", env=_clean_env(**SETTINGS, BUILD_DIR=str(tmp_path)))
    assert kafka.returncode == 2 and "kafka_bootstrap" in kafka.stderr
    unknown = _run(TRAIN, "--dry-run", "--bogus", env=_clean_env(**SETTINGS))
    assert unknown.returncode == 2 and "--bogus" in unknown.stderr
    no_value = _run(TRAIN, "--project", env=_clean_env(**SETTINGS))
    assert no_value.returncode == 2 and "--project needs a value" in no_value.stderr


# ---------------------------------------------------------------------------------------------------
# test_dataproc.sh


def test_test_dataproc_dry_run_prints_every_check(tmp_path: Path) -> None:
    proc = _run(TEST_DATAPROC, "--dry-run", env=_clean_env(**SETTINGS))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "gcloud auth print-access-token" in out
    assert "gcloud dataproc clusters describe sentiment-cluster --project=sentiment-proj-1 --region=europe-west1" in out
    for bucket in jobs.bucket_names("acme").values():
        assert f"gsutil ls gs://{bucket}/" in out
    assert "curl -fsS --max-time 10 http://mlflow.example.internal:5000/health" in out
    assert "gcloud dataproc jobs submit pyspark gs://acme-code/jobs/smoke/dataproc_smoke.py" in out
    assert "PASS" not in out and "FAIL" not in out


def _fake_tools(bin_dir: Path, *, cluster_state: str, curl_ok: bool) -> Path:
    """Stand-ins for gcloud, gsutil and curl that log their arguments."""
    bin_dir.mkdir()
    log = bin_dir / "calls.log"
    tools = {
        "gcloud": f'case "$*" in *describe*) echo {cluster_state} ;; *print-access-token*) echo token ;; esac',
        "gsutil": 'case "$*" in *gs://acme-models/*) echo "AccessDeniedException: 403" >&2; exit 1 ;; esac',
        "curl": "echo OK" if curl_ok else 'echo "curl: (7) Failed to connect" >&2; exit 7',
    }
    for name, body in tools.items():
        exe = bin_dir / name
        exe.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "{log}"\n{body}\n')
        exe.chmod(0o755)
    return log


def test_test_dataproc_reports_pass_and_fail_per_check(tmp_path: Path) -> None:
    log = _fake_tools(tmp_path / "bin", cluster_state="RUNNING", curl_ok=False)
    env = _clean_env(**SETTINGS, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    proc = _run(TEST_DATAPROC, env=env)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "PASS  gcloud credentials" in out
    assert "PASS  cluster sentiment-cluster is RUNNING" in out
    assert "PASS  bucket gs://acme-raw is readable" in out
    assert "FAIL  bucket gs://acme-models is readable: AccessDeniedException: 403" in out
    assert "FAIL  MLflow answers http://mlflow.example.internal:5000/health: curl: (7) Failed to connect" in out
    assert "PASS  PySpark smoke job" in out
    assert "2 check(s) failed" in out
    calls = log.read_text()
    assert (
        "gsutil -q cp" in calls
        and "/dataproc_smoke.py" in calls
        and "sentiment_mlops.zip gs://acme-code/jobs/smoke/" in calls
    )
    assert "--py-files=gs://acme-code/jobs/smoke/sentiment_mlops.zip" in calls


def test_test_dataproc_fails_a_cluster_that_is_not_running(tmp_path: Path) -> None:
    _fake_tools(tmp_path / "bin", cluster_state="STOPPED", curl_ok=True)
    env = _clean_env(**SETTINGS, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    proc = _run(TEST_DATAPROC, env=env)
    assert proc.returncode == 1
    assert "FAIL  cluster sentiment-cluster is RUNNING: cluster state is STOPPED, want RUNNING" in proc.stdout


# ---------------------------------------------------------------------------------------------------
# Workflow


def _workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_parses_and_names_jobs_test_train_deploy() -> None:
    wf = _workflow()
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert {"push", "pull_request", "schedule"} <= set(triggers)
    assert triggers["schedule"][0]["cron"]
    wf_jobs = wf["jobs"]
    assert set(wf_jobs) >= {"test", "train", "deploy"}

    test_steps = wf_jobs["test"]["steps"]
    assert any(s.get("run", "").strip() == "./run_tests.sh" for s in test_steps)
    assert any(s.get("with", {}).get("python-version") == "3.11" for s in test_steps)
    assert "ubuntu" in wf_jobs["test"]["runs-on"]

    for name, script in (("train", "ci-cd/train-model.sh"), ("deploy", "ci-cd/deploy-serving.sh")):
        job = wf_jobs[name]
        needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
        assert "test" in needs
        assert "refs/heads/main" in job["if"] and "schedule" in job["if"]
        steps = job["steps"]
        uses = [s.get("uses", "") for s in steps]
        auth = next(s for s in steps if s.get("uses", "").startswith("google-github-actions/auth@"))
        # Keyless: Workload Identity Federation, no service-account key in the repository's secrets.
        assert auth["with"] == {
            "workload_identity_provider": "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
            "service_account": "${{ vars.GCP_DEPLOY_SERVICE_ACCOUNT }}",
        }
        assert job["permissions"]["id-token"] == "write"
        assert any(u.startswith("google-github-actions/setup-gcloud@") for u in uses)
        assert any(s.get("run", "").strip() == script for s in steps)
        # Settings come from repository variables/secrets, and are the names the script reads.
        script_text = (ROOT / script).read_text()
        for key, value in job["env"].items():
            if key == "PYTHON":  # the interpreter setup-python installed, not a project setting
                continue
            assert "${{" in value, f"{name}: {key} is hard-coded"
            assert key in script_text, f"{name}: {script} does not read {key}"
        for required in SETTINGS:
            assert required in job["env"]


def test_workflow_has_no_hard_coded_project_settings() -> None:
    text = WORKFLOW.read_text()
    assert "gcloud config set project" not in text
    assert "credentials_json" not in text and "GCP_SA_KEY" not in text
    json.dumps(_workflow())  # plain data all the way down


# ---------------------------------------------------------------------------------------------------
# The control plane (ci-cd/deploy-control-plane.sh)

CONTROL_PLANE = ROOT / "ci-cd" / "deploy-control-plane.sh"
CONTROL_SETTINGS = {
    **SETTINGS,
    "MLFLOW_IMAGE": "europe-west1-docker.pkg.dev/sentiment-proj-1/sentiment/mlops:1",
    "COMPOSER_IMAGE_VERSION": "composer-3-airflow-3.1.0",
}


def test_control_plane_dry_run_prints_the_whole_deployment_without_a_secret() -> None:
    proc = _run(CONTROL_PLANE, "--dry-run", "--name", "acme", env=_clean_env(**CONTROL_SETTINGS))
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith("#")]
    commands = [shlex.split(ln) for ln in lines if ln.startswith("gcloud ")]
    sql = next(c for c in commands if c[:4] == ["gcloud", "sql", "instances", "create"])
    assert "--database-version=POSTGRES_15" in sql and "--region=europe-west1" in sql
    assert {c[4] for c in commands if c[:4] == ["gcloud", "sql", "databases", "create"]} == {"mlflow", "mlflow_auth"}
    run = next(c for c in commands if c[:3] == ["gcloud", "run", "deploy"])
    args = next(a for a in run if a.startswith("--args=")).split(",")
    assert "--app-name=basic-auth" in args and "--serve-artifacts" in args
    assert "--artifacts-destination=gs://acme-mlflow-artifacts" in args
    assert any(
        a.startswith("--backend-store-uri=postgresql+psycopg2://sentiment@/mlflow?host=/cloudsql/") for a in args
    )
    assert "--add-cloudsql-instances=sentiment-proj-1:europe-west1:acme-pg" in run
    secrets = next(a for a in run if a.startswith("--set-secrets=")).removeprefix("--set-secrets=").split(",")
    assert "PGPASSWORD=acme-postgres-password:latest" in secrets
    assert "MLFLOW_AUTH_ADMIN_PASSWORD=acme-mlflow-admin-password:latest" in secrets
    # Secrets are generated into Secret Manager by a pipe, never written on a command line.
    assert sum("openssl rand" in ln and "gcloud secrets create" in ln for ln in lines) == 3
    password_args = [a for c in commands for a in c if a.startswith("--password=")]
    assert password_args == ["--password=$(gcloud secrets versions access latest --secret=acme-postgres-password)"]
    # Least roles: the Dataproc and Composer accounts may read the client secret, nothing else of MLflow's.
    readers = {
        (c[3], next(a for a in c if a.startswith("--member=")).split("@")[0])
        for c in commands
        if c[:3] == ["gcloud", "secrets", "add-iam-policy-binding"]
    }
    assert {s for s, m in readers if m.endswith("dataproc")} == {"acme-mlflow-client"}
    assert {s for s, m in readers if m.endswith("composer")} == {"acme-mlflow-client"}
    # Composer 3: the image version asked for, our DAGs and package, the Variables the DAGs read.
    create = next(c for c in commands if c[:4] == ["gcloud", "composer", "environments", "create"])
    assert "--image-version=composer-3-airflow-3.1.0" in create
    imports = [c for c in commands if c[3:6] == ["storage", "dags", "import"]]
    sources = {Path(next(a for a in c if a.startswith("--source=")).split("=", 1)[1]).name for c in imports}
    assert sources == {p.name for p in (ROOT / "airflow" / "dags").glob("*.py")} | {"sentiment_mlops"}
    variables = {c[c.index("set") + 1]: c[c.index("set") + 2] for c in commands if "variables" in c}
    assert variables["SENTIMENT_BACKEND"] == "dataproc" and variables["GCS_BUCKET"] == "acme"
    assert variables["MLFLOW_CREDENTIALS_SECRET"] == "projects/sentiment-proj-1/secrets/acme-mlflow-client"
    from sentiment_mlops.orchestration.config import ALL_VARIABLES

    assert set(variables) <= set(ALL_VARIABLES)


def test_control_plane_names_missing_settings() -> None:
    proc = _run(CONTROL_PLANE, "--dry-run", env=_clean_env(GCP_PROJECT_ID="p"))
    assert proc.returncode == 2
    for name in ("GCS_BUCKET", "DATAPROC_CLUSTER_NAME", "MLFLOW_IMAGE", "COMPOSER_IMAGE_VERSION"):
        assert name in proc.stderr
    assert "GCP_PROJECT_ID" not in proc.stderr
