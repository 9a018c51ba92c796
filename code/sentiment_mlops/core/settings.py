"""Settings shared by every job, DAG and script: one place for backends, roots and defaults.

Every value comes from an environment variable with a documented default; nothing here names a
project, a host outside this machine or a credential.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("local", "dataproc")

DEFAULT_REGISTERED_MODEL_NAME = "twitter-sentiment-model"
DEFAULT_EXPERIMENT = "sentiment-analysis-pipeline"
DEFAULT_MLFLOW_PORT = 5000
PRODUCTION_ALIAS = "production"
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

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; allowed: {', '.join(BACKENDS)}")
        if self.spark_master is not None and not self.spark_master.startswith("spark://"):
            raise ValueError(
                f"{SPARK_MASTER_ENV} must be a standalone master URL like spark://127.0.0.1:7077, "
                f"got {self.spark_master!r}"
            )

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


def load_settings(backend: str | None = None) -> Settings:
    """Settings from the environment: SENTIMENT_BACKEND, SENTIMENT_HOME, MLFLOW_TRACKING_URI,
    SENTIMENT_SPARK_MASTER."""
    return Settings(
        backend=backend or os.environ.get("SENTIMENT_BACKEND", "local"),
        home=_default_home(),
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}"),
    )
