"""The production profile against real parts: Debian's PostgreSQL 15 started by the test run (as an
unprivileged user), MLflow with basic-auth and artifacts proxied to the GCS emulator, an embedded SQLite
registry migrated into it, Airflow's metadata DB on PostgreSQL and the training DAG through
`airflow dags test` with authenticated clients."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from sentiment_mlops.backends.local import postgres, profile
from sentiment_mlops.backends.local.mlflow_server import MlflowServer, ServiceError, free_port
from sentiment_mlops.core.settings import AIRFLOW_DATABASE, MLFLOW_DATABASE, Settings
from tests.fixtures_gcs import gcs_emulator_fixture  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT_BUCKET = "prod-test-mlflow-artifacts"
MODEL = "migrated-model"


def _postgres_available() -> str | None:
    if not (postgres.bin_dir() / "initdb").exists():
        return f"PostgreSQL 15 server binaries missing in {postgres.bin_dir()} (scripts/install_test_services.sh)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no OS user 'postgres' to run PostgreSQL as (we are root)"
    return None


@pytest.fixture(scope="module")
def pg_settings() -> Iterator[Settings]:
    """A real PostgreSQL on a free port, with its own SENTIMENT_HOME under /tmp (the server's OS user
    must be able to enter it: pytest's own tmp folders are 0700)."""
    reason = _postgres_available()
    if reason:
        pytest.skip(reason)
    home = Path(tempfile.mkdtemp(prefix="sentiment-prod-"))
    home.chmod(0o711)
    settings = Settings(
        home=home,
        profile="production",
        postgres_port=free_port(),
        mlflow_artifacts_destination=f"gs://{ARTIFACT_BUCKET}",
    )
    server = postgres.PostgresServer(settings)
    try:
        server.start()
        yield settings
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def embedded_registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An embedded installation's registry, made through a real SQLite MLflow server: two runs with
    params, metrics and an artifact, one model with two versions and two aliases."""
    from mlflow.tracking import MlflowClient

    data = tmp_path_factory.mktemp("embedded-mlflow")
    server = MlflowServer(data_dir=data, port=free_port()).start()
    try:
        client = MlflowClient(server.url)
        experiment = client.create_experiment("sentiment-analysis-pipeline")
        runs = []
        for i in (1, 2):
            run = client.create_run(experiment, run_name=f"run-{i}")
            client.log_param(run.info.run_id, "reg_param", str(0.1 * i))
            client.log_metric(run.info.run_id, "f1", 0.7 + i / 100)
            client.log_text(run.info.run_id, f"weights of run {i}", "model/weights.txt")
            client.set_terminated(run.info.run_id)
            runs.append(run.info.run_id)
        client.create_registered_model(MODEL)
        for run_id in runs:
            client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id)
        client.set_registered_model_alias(MODEL, "production", "2")
        client.set_registered_model_alias(MODEL, "challenger", "1")
    finally:
        server.stop()
    return {"db": data / "mlflow.db", "artifacts": data / "artifacts", "runs": runs}


@pytest.fixture(scope="module")
def artifact_bucket(gcs_emulator: str) -> Iterator[str]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = gcs_emulator  # the MLflow server process inherits it
    storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket(ARTIFACT_BUCKET)
    try:
        yield f"gs://{ARTIFACT_BUCKET}"
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="module")
def migration_output(pg_settings: Settings, embedded_registry: dict[str, Any], artifact_bucket: str) -> str:
    """The embedded registry migrated into the production store (before its server first starts)."""
    env = {**os.environ, "PGPASSFILE": str(postgres.pgpass_file(pg_settings)), "PYTHONPATH": str(ROOT / "code")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentiment_mlops.registry.store_migration",
            "--source",
            f"sqlite:///{embedded_registry['db']}",
            "--source-artifacts",
            str(embedded_registry["artifacts"]),
            "--target",
            postgres.database_uri(pg_settings, MLFLOW_DATABASE),
            "--target-artifacts",
            artifact_bucket,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def production_mlflow_server(pg_settings: Settings, migration_output: str) -> Iterator[MlflowServer]:
    server = MlflowServer(data_dir=pg_settings.mlflow_dir, port=free_port(), settings=pg_settings).start(timeout=240)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def production_mlflow(production_mlflow_server: MlflowServer) -> str:
    return production_mlflow_server.url


def _assert_still_serving(server: MlflowServer) -> None:
    """The server outlived the DAG run; if not, say how it ended and what it logged last."""
    assert server.process is not None
    code = server.process.poll()
    if code is not None:
        tail = server.log_file.read_text(errors="replace").splitlines()[-40:]
        pytest.fail(f"the production MLflow server exited with {code}; its log ends with:\n" + "\n".join(tail))


@pytest.fixture
def as_admin(pg_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = profile.client_env(pg_settings)
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PGPASSFILE"):
        monkeypatch.setenv(key, env[key])
    return env


# --- PostgreSQL --------------------------------------------------------------------------------------


def test_postgres_runs_unprivileged_on_localhost_with_private_secrets(pg_settings: Settings) -> None:
    server = postgres.PostgresServer(pg_settings)
    assert pwd.getpwuid(server.data_dir.stat().st_uid).pw_name == (
        "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    )
    for secret in pg_settings.secrets_dir.iterdir():
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert stat.S_IMODE(pg_settings.secrets_dir.stat().st_mode) == 0o700
    with postgres.connect(pg_settings, AIRFLOW_DATABASE) as conn, conn.cursor() as cur:
        cur.execute("SHOW listen_addresses")
        assert cur.fetchone()[0] == "127.0.0.1"
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone()[0] is False  # the services' role is not a superuser
    # A restart keeps the data and the passwords.
    password = (pg_settings.secrets_dir / "postgres-sentiment.password").read_text()
    server.stop()
    assert not server.running()
    server.start()
    assert (pg_settings.secrets_dir / "postgres-sentiment.password").read_text() == password
    postgres.check_database(pg_settings, MLFLOW_DATABASE)


def test_wrong_password_and_stopped_server_get_clear_errors(pg_settings: Settings, tmp_path: Path) -> None:
    wrong = replace(pg_settings, home=tmp_path)
    (tmp_path / "secrets").mkdir(mode=0o700)
    (tmp_path / "secrets" / "pgpass").write_text(f"127.0.0.1:{pg_settings.postgres_port}:*:sentiment:not-it\n")
    (tmp_path / "secrets" / "pgpass").chmod(0o600)
    with pytest.raises(ServiceError, match="refused the password"):
        postgres.check_database(wrong, MLFLOW_DATABASE)
    stopped = replace(pg_settings, postgres_port=free_port())
    with pytest.raises(ServiceError, match=r"is not running: start it with"):
        postgres.check_database(stopped, MLFLOW_DATABASE)
    # The MLflow server refuses to start on a stopped PostgreSQL, before spawning anything.
    with pytest.raises(ServiceError, match="is not running"):
        MlflowServer(data_dir=tmp_path / "mlflow", port=free_port(), settings=stopped).start()


def test_unreachable_data_folder_is_named(tmp_path: Path) -> None:
    if os.geteuid() != 0 or _postgres_available():
        pytest.skip("needs root and the postgres user (the server then runs as that user)")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    settings = Settings(home=locked / "home", profile="production", postgres_port=free_port())
    with pytest.raises(ServiceError, match=r"cannot enter .*SENTIMENT_POSTGRES_DIR"):
        postgres.PostgresServer(settings).initialize()


def test_airflow_db_migrate_on_postgres(pg_settings: Settings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        **profile.client_env(pg_settings),
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    result = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check = subprocess.run([airflow, "db", "check"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stderr[-2000:]
    with postgres.connect(pg_settings, AIRFLOW_DATABASE) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('dag', 'dag_run', 'task_instance')"
        )
        assert cur.fetchone()[0] == 3
    assert not (tmp_path / "airflow-home" / "airflow.db").exists()  # no SQLite on the side


# --- MLflow: basic-auth, proxied artifacts, the migrated registry ------------------------------------


def test_unauthenticated_and_wrong_clients_are_refused(
    production_mlflow: str, pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentiment_mlops.registry import lookups as registry

    url = f"{production_mlflow}/api/2.0/mlflow/registered-models/search"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=("admin", "wrong"), timeout=10).status_code == 401
    assert requests.get(url, auth=("admin", profile.admin_password(pg_settings)), timeout=10).status_code == 200
    assert requests.get(f"{production_mlflow}/health", timeout=10).status_code == 200  # probes stay open

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    with pytest.raises(registry.MlflowAuthError, match="requires authentication: set MLFLOW_TRACKING_USERNAME"):
        registry.check_tracking_server(production_mlflow)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "stale")
    with pytest.raises(registry.MlflowAuthError, match="refused the credentials of MLFLOW_TRACKING_TOKEN"):
        registry.check_tracking_server(production_mlflow)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(registry.MlflowAuthError, match="refused the credentials of admin"):
        registry.check_tracking_server(production_mlflow)
    # A username and password win over a token, in MLflow's client and so in the check before it: a
    # token left in the environment does not fail valid credentials.
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", profile.admin_password(pg_settings))
    registry.check_tracking_server(production_mlflow)


def test_migration_keeps_every_version_alias_and_run(
    production_mlflow: str,
    embedded_registry: dict[str, Any],
    migration_output: str,
    as_admin: dict[str, str],
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    assert "aliases: migrated-model@challenger=v1, migrated-model@production=v2" in migration_output
    client = MlflowClient(production_mlflow, production_mlflow)
    versions = {v.version: v.run_id for v in client.search_model_versions(f"name='{MODEL}'")}
    assert versions == {"1": embedded_registry["runs"][0], "2": embedded_registry["runs"][1]}
    assert client.get_model_version_by_alias(MODEL, "production").version == "2"
    assert client.get_model_version_by_alias(MODEL, "challenger").version == "1"
    for i, run_id in enumerate(embedded_registry["runs"], start=1):
        run = client.get_run(run_id)
        assert run.data.params == {"reg_param": str(0.1 * i)} and run.data.metrics["f1"] == pytest.approx(0.7 + i / 100)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # served by the production server
        path = client.download_artifacts(run_id, "model/weights.txt", str(tmp_path))
        assert Path(path).read_text() == f"weights of run {i}"
    # The copy is in the bucket, not only in the old folder.
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    blobs = [
        b.name for b in storage.Client(project="test", credentials=AnonymousCredentials()).list_blobs(ARTIFACT_BUCKET)
    ]
    assert any(name.endswith(f"{embedded_registry['runs'][0]}/artifacts/model/weights.txt") for name in blobs), blobs
    # New ids continue after the migrated ones.
    experiment = client.create_experiment("after-migration")
    assert int(experiment) > max(
        int(e.experiment_id) for e in client.search_experiments() if e.name != "after-migration"
    )


def test_migration_refuses_a_store_that_is_in_use(
    production_mlflow: str, pg_settings: Settings, embedded_registry: dict[str, Any], as_admin: dict[str, str]
) -> None:
    from sentiment_mlops.registry import store_migration

    with pytest.raises(store_migration.MigrationError, match="already holds runs"):
        store_migration.copy_rows(
            f"sqlite:///{embedded_registry['db']}", postgres.database_uri(pg_settings, MLFLOW_DATABASE), None
        )


def test_missing_artifact_bucket_is_named(pg_settings: Settings, artifact_bucket: str, tmp_path: Path) -> None:
    missing = replace(pg_settings, mlflow_artifacts_destination="gs://no-such-mlflow-artifacts")
    with pytest.raises(ServiceError, match=r"bucket gs://no-such-mlflow-artifacts does not exist"):
        MlflowServer(data_dir=tmp_path, port=free_port(), settings=missing).start()


# --- Airflow on PostgreSQL: the training and serving DAGs with authenticated MLflow clients ----------

PREDICTIONS_BUCKET = "prod-sentiment-predictions"
BEST_MODEL = "twitter-sentiment-model-best"


@dataclass(frozen=True)
class ProductionAirflow:
    """An Airflow home on the module's PostgreSQL, with the environment `profile shell-env` gives a shell."""

    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        airflow = str(Path(sys.executable).with_name("airflow"))
        return subprocess.run(
            [airflow, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="module")
def production_airflow(
    pg_settings: Settings, production_mlflow: str, artifact_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> ProductionAirflow:
    env = {
        **os.environ,
        **profile.client_env(pg_settings),
        "AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow-home")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SENTIMENT_HOME": str(pg_settings.home),
        "SENTIMENT_PROFILE": "production",
        "MLFLOW_TRACKING_URI": production_mlflow,  # not another module's server left in os.environ
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    env.pop("SENTIMENT_BUCKET_ROOT", None)
    airflow = ProductionAirflow(env)
    assert (migrate := airflow.run("db", "migrate")).returncode == 0, migrate.stderr[-2000:]
    variables = {
        "MLFLOW_TRACKING_URI": production_mlflow,
        "GCS_BUCKET": "prod-sentiment",
        "serving_batch_interval": "5",
    }
    variables_file = Path(env["AIRFLOW_HOME"]) / "variables.json"
    variables_file.write_text(json.dumps(variables))  # one CLI start for all
    imported = airflow.run("variables", "import", str(variables_file))
    assert imported.returncode == 0, imported.stderr[-2000:]
    return airflow


@pytest.fixture(scope="module")
def trained(production_airflow: ProductionAirflow, sample_csv: Path) -> str:
    """The training DAG run once through `airflow dags test`; its output."""
    conf = {"input_path": str(sample_csv), "max_rows": 2000, "models": "lr", "force_promote": True}
    result = production_airflow.run("dags", "test", "sentiment_training_local", "-c", json.dumps(conf), timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def _dag_run_states(settings: Settings, dag_id: str) -> list[str]:
    with postgres.connect(settings, AIRFLOW_DATABASE) as conn, conn.cursor() as cur:
        cur.execute("SELECT state FROM dag_run WHERE dag_id = %s", (dag_id,))
        return [row[0] for row in cur.fetchall()]


@pytest.mark.timeout(3600)  # carries the training when it runs first; Spark on a shared 2-core machine
def test_training_dag_on_the_production_profile_registers_and_serves(
    pg_settings: Settings,
    production_mlflow_server: MlflowServer,
    production_mlflow: str,
    trained: str,
    as_admin: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.online.model import load_model

    assert _dag_run_states(pg_settings, "sentiment_training_local") == ["success"]  # recorded in PostgreSQL
    _assert_still_serving(production_mlflow_server)

    # The online server's environment: MLFLOW_TRACKING_URI (MLflow resolves models:/ URIs against it)
    # and MLflow's own credential variables (as_admin).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", production_mlflow)
    client = MlflowClient(production_mlflow, production_mlflow)
    production = client.get_model_version_by_alias(BEST_MODEL, "production")
    assert production.run_id
    # Served the way the online server loads it: through the server's artifact proxy, from the bucket.
    model = load_model(f"models:/{BEST_MODEL}@production", production_mlflow)
    assert model.predict_one("I love this, what a wonderful day").label in (0, 1)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    blobs = [
        b.name for b in storage.Client(project="test", credentials=AnonymousCredentials()).list_blobs(ARTIFACT_BUCKET)
    ]
    assert any(production.run_id in name for name in blobs)


@pytest.mark.timeout(3600)  # the training it needs, when it runs first, then a streaming job
def test_serving_dags_on_the_production_profile_score_with_the_trained_model(
    pg_settings: Settings,
    production_mlflow_server: MlflowServer,
    production_mlflow: str,
    production_airflow: ProductionAirflow,
    trained: str,
    as_admin: dict[str, str],
) -> None:
    """Deploy (production mode, file source) -> a dropped file scored by the version the training put
    behind @production, loaded by the job through authenticated MLflow -> the management DAG stops it."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.backends.local.jobs import LocalJobController

    production = MlflowClient(production_mlflow, production_mlflow).get_model_version_by_alias(BEST_MODEL, "production")
    # Dropped before the deploy: the stream's first batch takes the files already there.
    drop = pg_settings.home / "buckets" / "prod-sentiment-streaming-input"
    drop.mkdir(parents=True, exist_ok=True)
    (drop / "batch_20261130_120000.csv").write_text("text,label\nI love this product!,\nThis is terrible,\nNot bad\n")
    jobs = LocalJobController(Settings(backend="local", home=pg_settings.home))
    try:
        conf = {"deploy_mode": "production", "source_type": "file", "wait_timeout_seconds": 900}
        deploy = production_airflow.run("dags", "test", "sentiment_model_serving", "-c", json.dumps(conf), timeout=1200)
        _assert_still_serving(production_mlflow_server)
        assert deploy.returncode == 0, (deploy.stdout + deploy.stderr)[-6000:]
        parts = sorted(
            (pg_settings.home / "buckets" / PREDICTIONS_BUCKET / "predictions").glob("date=*/part-*.parquet")
        )
        assert parts, "the deploy waited for the first batch, but no prediction is under predictions/date=*/"
        scored = pd.concat([pd.read_parquet(p) for p in parts])
        assert sorted(scored["text"]) == ["I love this product!", "Not bad", "This is terrible"]
        assert set(scored["prediction"]) <= {0, 1}
        assert set(scored["model_name"]) == {BEST_MODEL} and set(scored["model_version"]) == {production.version}

        stop = production_airflow.run(
            "dags", "test", "sentiment_serving_management", "-c", json.dumps({"stop_all": True}), timeout=600
        )
        assert stop.returncode == 0, (stop.stdout + stop.stderr)[-6000:]
        serving_jobs = jobs.list_jobs(label_filter={"app": "sentiment-serving"})
        assert [job.state for job in serving_jobs] == ["CANCELLED"]
        for dag_id in ("sentiment_model_serving", "sentiment_serving_management"):
            assert _dag_run_states(pg_settings, dag_id) == ["success"]
    finally:  # no streaming job left behind by a failed assertion
        for job in jobs.list_jobs(label_filter={"app": "sentiment-serving"}):
            if job.active:
                jobs.cancel(job.job_id)
