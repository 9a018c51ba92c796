"""Shared fixtures: one real Spark session, one real MLflow server over HTTP, the shared tweets.

Area-specific fixtures live in their own test modules (or `tests/fixtures_*.py`) to keep this
file small.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = Path(
    os.environ.get("SENTIMENT140_SAMPLE", ROOT.parent / "shared" / "data" / "sentiment140" / "train_100k.csv")
)

# Every test run gets its own home for buckets, MLflow data and job records.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("SENTIMENT_BACKEND", "local")


@pytest.fixture(scope="session")
def sentiment_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sentiment_home")
    os.environ["SENTIMENT_HOME"] = str(home)
    os.environ.pop("SENTIMENT_BUCKET_ROOT", None)
    return home


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    if not SAMPLE_CSV.exists():
        pytest.fail(f"shared Sentiment140 sample missing at {SAMPLE_CSV} (set SENTIMENT140_SAMPLE)")
    return SAMPLE_CSV


@pytest.fixture(scope="session")
def spark(sentiment_home: Path):  # type: ignore[no-untyped-def]
    os.environ.setdefault("SPARK_MASTER", "local[2]")
    from sentiment_mlops.core.spark_session import get_spark

    session = get_spark("sentiment-tests", extra={"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def mlflow_server(sentiment_home: Path) -> Iterator[str]:
    """A real `mlflow server` on SQLite over HTTP on a free port; yields its URL."""
    from sentiment_mlops.backends.local.mlflow_server import MlflowServer, free_port

    server = MlflowServer(data_dir=sentiment_home / "mlflow", port=free_port()).start()
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _forget_the_active_mlflow_experiment() -> Iterator[None]:
    """Tests run in random order against several MLflow servers: an experiment id that one test made
    active on its server must not be used by the next test on another server ("No Experiment with
    id=1 exists"). MLflow keeps it in a module global of its fluent API."""
    yield
    import sys

    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is not None and hasattr(fluent, "_active_experiment_id"):
        fluent._active_experiment_id = None


STRAY_STORES = ("mlflow.db", "mlruns")


@pytest.fixture(autouse=True)
def _no_default_mlflow_store_in_the_working_folder() -> Iterator[None]:
    """An MLflow client with no tracking URI writes ./mlflow.db (MLflow 3's default) where it runs:
    in production that is a registry nobody reads. Fail the test that made one, and remove it."""
    cwd = Path.cwd()
    before = {name for name in STRAY_STORES if (cwd / name).exists()}
    yield
    made = [name for name in STRAY_STORES if (cwd / name).exists() and name not in before]
    for name in made:
        target = cwd / name
        if target.is_file():
            target.unlink()
        else:
            shutil.rmtree(target)
    assert not made, f"the test left {made} in {cwd}: an MLflow client ran without a tracking URI"
