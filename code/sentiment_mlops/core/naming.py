"""Names several parts of the project must spell the same way, defined once.

Each value here was once repeated in two modules (the job spec, the local backend, the DAG config),
kept equal only by tests. They live in core because every other subpackage may import core and core
imports nothing else of the package.
"""

from __future__ import annotations

import re

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
