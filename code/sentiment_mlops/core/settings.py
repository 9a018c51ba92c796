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


def _default_home() -> Path:
    return Path(os.environ.get("SENTIMENT_HOME", Path.home() / ".sentiment-mlops")).expanduser()


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`; tests pass explicit values."""

    backend: str = "local"
    home: Path = field(default_factory=_default_home)
    mlflow_tracking_uri: str = f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; allowed: {', '.join(BACKENDS)}")

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
    """Settings from the environment: SENTIMENT_BACKEND, SENTIMENT_HOME, MLFLOW_TRACKING_URI."""
    return Settings(
        backend=backend or os.environ.get("SENTIMENT_BACKEND", "local"),
        home=_default_home(),
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}"),
    )
