"""Names the orchestration gives to runs, jobs and labels, and the default bucket base name.

Pure string functions: the DAG tasks use them, and so can a backend or a CLI without importing Airflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

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
    copy = json.loads(json.dumps(job))
    copy.setdefault("reference", {})["job_id"] = job_id[:100]
    return copy
