"""Settings shared by every job, DAG and script: one place for backends, roots and defaults.

Every value comes from an environment variable with a documented default; nothing here names a
project, a host outside this machine or a credential.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Where Spark jobs run: spark-submit on this machine, a Dataproc cluster, or Dataproc Serverless batches
# (no cluster). Both Dataproc backends read and write real gs:// URIs.
BACKENDS = ("local", "dataproc", "dataproc-serverless")
SERVERLESS_BACKEND = "dataproc-serverless"
# The local control plane: "embedded" (SQLite files, MLflow without authentication, the default) or
# "production" (PostgreSQL for Airflow and MLflow, MLflow basic-auth with proxied artifacts).
PROFILES = ("embedded", "production")
DEFAULT_POSTGRES_PORT = 5432
# The OS user that runs PostgreSQL (it refuses root); Debian's postgresql package creates `postgres`.
DEFAULT_POSTGRES_OS_USER = "postgres"
# The database role our services log in as, and the databases of the production profile.
POSTGRES_ROLE = "sentiment"
AIRFLOW_DATABASE = "airflow"
MLFLOW_DATABASE = "mlflow"
MLFLOW_AUTH_DATABASE = "mlflow_auth"
MLFLOW_ADMIN_USER = "admin"

DEFAULT_REGISTERED_MODEL_NAME = "twitter-sentiment-model"
DEFAULT_EXPERIMENT = "sentiment-analysis-pipeline"
DEFAULT_MLFLOW_PORT = 5000
PRODUCTION_ALIAS = "production"
# The shadow model the serving job scores beside the served one when the alias exists (see README).
CHALLENGER_ALIAS = "challenger"
DEFAULT_SERVING_MODEL = f"{DEFAULT_REGISTERED_MODEL_NAME}-best"
DEFAULT_KAFKA_INPUT_TOPIC = "tweets"
DEFAULT_KAFKA_OUTPUT_TOPIC = "predictions"
# The local backend's third way to run jobs: a Spark standalone master URL (spark://127.0.0.1:7077 for the
# cluster `python -m sentiment_mlops.backends.local.spark_cluster start` runs). Unset: local[2].
SPARK_MASTER_ENV = "SENTIMENT_SPARK_MASTER"
# Memory of each executor on that cluster; it must fit a worker (the cluster gives each 1g by default).
SPARK_EXECUTOR_MEMORY_ENV = "SENTIMENT_SPARK_EXECUTOR_MEMORY"
DEFAULT_CLUSTER_EXECUTOR_MEMORY = "1g"


def _spark_master() -> str | None:
    return os.environ.get(SPARK_MASTER_ENV, "").strip() or None


def _default_home() -> Path:
    return Path(os.environ.get("SENTIMENT_HOME", Path.home() / ".sentiment-mlops")).expanduser()


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`; tests pass explicit values."""

    backend: str = "local"
    home: Path = field(default_factory=_default_home)
    mlflow_tracking_uri: str = f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}"
    spark_master: str | None = field(default_factory=_spark_master)
    profile: str = "embedded"
    postgres_port: int = DEFAULT_POSTGRES_PORT
    # 127.0.0.1: the server our scripts start; another host (docker-compose's `postgres`, a Cloud SQL
    # Auth Proxy) is a server run elsewhere, which we only connect to.
    postgres_host: str = "127.0.0.1"
    postgres_os_user: str = DEFAULT_POSTGRES_OS_USER
    # Where the production profile's MLflow server keeps artifacts: a local folder (default
    # HOME/mlflow/artifacts) or gs://BUCKET[/prefix]; clients reach them through the server only.
    mlflow_artifacts_destination: str = ""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; allowed: {', '.join(BACKENDS)}")
        if self.spark_master is not None and not self.spark_master.startswith("spark://"):
            raise ValueError(
                f"{SPARK_MASTER_ENV} must be a standalone master URL like spark://127.0.0.1:7077, "
                f"got {self.spark_master!r}"
            )
        if self.profile not in PROFILES:
            raise ValueError(f"unknown SENTIMENT_PROFILE {self.profile!r}; allowed: {', '.join(PROFILES)}")

    @property
    def spark_cluster_dir(self) -> Path:
        """The local standalone cluster's pid files, logs, and its workers' work and scratch folders."""
        return self.home / "spark-cluster"

    @property
    def cluster_executor_memory(self) -> str:
        return os.environ.get(SPARK_EXECUTOR_MEMORY_ENV, "").strip() or DEFAULT_CLUSTER_EXECUTOR_MEMORY

    @property
    def bucket_root(self) -> Path:
        """Where the local backend keeps one folder per bucket (gs://BUCKET -> bucket_root/BUCKET)."""
        return Path(os.environ.get("SENTIMENT_BUCKET_ROOT", self.home / "buckets")).expanduser()

    @property
    def run_dir(self) -> Path:
        """Pid files, logs and job records of local services."""
        return self.home / "run"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def postgres_is_local(self) -> bool:
        return self.postgres_host in ("127.0.0.1", "localhost")

    @property
    def secrets_dir(self) -> Path:
        """Generated passwords (files 0600, folder 0700) of the production profile."""
        return self.home / "secrets"

    @property
    def postgres_dir(self) -> Path:
        """The production profile's PostgreSQL folder (data/ inside, owned by `postgres_os_user`).
        SENTIMENT_POSTGRES_DIR moves it where that user can reach (a home of mode 0700 blocks it)."""
        return Path(os.environ.get("SENTIMENT_POSTGRES_DIR", self.home / "postgres")).expanduser()

    @property
    def artifacts_destination(self) -> str:
        return self.mlflow_artifacts_destination or str(self.mlflow_dir / "artifacts")


def load_settings(backend: str | None = None) -> Settings:
    """Settings from the environment: SENTIMENT_BACKEND, SENTIMENT_HOME, MLFLOW_TRACKING_URI,
    SENTIMENT_SPARK_MASTER,
    SENTIMENT_PROFILE, SENTIMENT_POSTGRES_HOST, SENTIMENT_POSTGRES_PORT, SENTIMENT_POSTGRES_OS_USER,
    SENTIMENT_MLFLOW_ARTIFACTS_DESTINATION."""
    return Settings(
        backend=backend or os.environ.get("SENTIMENT_BACKEND", "local"),
        home=_default_home(),
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}"),
        profile=os.environ.get("SENTIMENT_PROFILE", "embedded") or "embedded",
        postgres_port=int(os.environ.get("SENTIMENT_POSTGRES_PORT", DEFAULT_POSTGRES_PORT)),
        postgres_host=os.environ.get("SENTIMENT_POSTGRES_HOST", "127.0.0.1") or "127.0.0.1",
        postgres_os_user=os.environ.get("SENTIMENT_POSTGRES_OS_USER", DEFAULT_POSTGRES_OS_USER),
        mlflow_artifacts_destination=os.environ.get("SENTIMENT_MLFLOW_ARTIFACTS_DESTINATION", ""),
    )
