"""Names several parts of the project must spell the same way, defined once: constants (buckets,
labels, job ids, source types) and the names orchestration gives to runs and jobs.

Each value here was once repeated in two modules (the job spec, the local backend, the DAG config),
kept equal only by tests. They live in core because every other subpackage may import core and core
imports nothing else of the package. The functions are pure string functions: DAG tasks use them, and so
can a backend or a CLI without importing Airflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

# Spark property telling a job which backend launched it (read by core.spark_session, set by the
# Dataproc job builder and the local runner).
BACKEND_PROPERTY = "spark.sentiment.backend"

# Dataproc job ids: letters, digits, underscores, hyphens; at most 100 characters. The local backend
# accepts the same ids so a job spec moves between backends unchanged.
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")

# Where the serving job reads from.
SOURCE_TYPES = ("file", "kafka")

# Object of the Sentiment140 CSV in the raw bucket (where download_and_upload.py puts it).
DEFAULT_TRAINING_FILE = "raw/training.1600000.processed.noemoticon.csv"

# The `app` label of every job: how the deploy script and the local runner find serving jobs.
APP_TRAINING = "sentiment-training"
APP_SERVING = "sentiment-serving"

# Bucket kind -> suffix appended to the base name GCS_BUCKET ({b}-code, {b}-raw, ...).
BUCKET_SUFFIXES: dict[str, str] = {
    "code": "-code",
    "raw": "-raw",
    "models": "-models",
    "predictions": "-predictions",
    "checkpoint": "-checkpoint",
    "streaming_input": "-streaming-input",
}

# The GCS_BUCKET Variable's default: the prefix of every bucket ({b}-code, {b}-raw, ...). Here rather
# than in the Airflow config so the local demo CLI can default to it without importing orchestration.
DEFAULT_BUCKET = "sentiment-mlops"


def make_run_tag(run_id: str, when: datetime | None = None) -> str:
    """`20261129-011408-1a2b3c` from an Airflow `run_id` and its time (default now): sortable, unique
    per DAG run, valid in job ids, labels and paths."""
    stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{hashlib.sha1(run_id.encode()).hexdigest()[:6]}"


def label_value(text: str) -> str:
    """`text` as a Dataproc label value: lower case letters, digits, '_' and '-', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def with_job_id(job: dict[str, Any], job_id: str) -> dict[str, Any]:
    """A deep copy of the job dict `job` with reference.job_id set to `job_id` (cut to 100 characters).
    A retry needs a fresh id: Dataproc job ids are unique."""
    copy: dict[str, Any] = json.loads(json.dumps(job))
    copy.setdefault("reference", {})["job_id"] = job_id[:100]
    return copy
