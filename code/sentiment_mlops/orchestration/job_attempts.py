"""One job per DAG run and task, whatever retries, double clicks or a killed worker do.

Decisions (issue "Operations that a retry, a double click or a hostile request cannot break"):

- The job id is the builder's id, stable per DAG run and task (`sentiment-training-full-{run_tag}`);
  the try number is not part of it, so a retry finds the job an earlier attempt submitted.
- `request_id` (Dataproc: at most 40 of [a-zA-Z0-9_-]) is a hash of (dag_id, run_id, task_id, job id):
  Dataproc ignores a second SubmitJobRequest with the same id and returns the first job, so a
  submission retried by the client or by Airflow never starts a second job.
- A retry looks at the newest job of the task (`{id}-tN` for N = try number down to 2, then `{id}`):
  * active or DONE: attach to it (wait for it when the task waits); nothing is submitted;
  * ERROR or CANCELLED: submit `{id}-t{try_number}`: Dataproc refuses a job id it has seen, even
    after the job failed, so re-running a failed job needs a new id; the try number only appears then;
  * none: submit `{id}` (the first attempt died before submitting).
- A submission that still meets an existing id (two clicks racing) attaches instead of failing:
  the backends return the existing job (`attached: True`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sentiment_mlops.core.naming import with_job_id

FAILED_STATES = frozenset({"ERROR", "CANCELLED"})
REQUEST_ID_LENGTH = 40  # Dataproc's limit


@dataclass(frozen=True)
class TaskAttempt:
    """Which task instance submits: the DAG run and task a job belongs to, and the attempt number."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int = 1

    def request_id(self, job_id: str) -> str:
        """The submit request id for `job_id` from this task: the same for every attempt that submits
        the same job id, 40 hex characters."""
        key = "\n".join((self.dag_id, self.run_id, self.task_id, job_id))
        return hashlib.sha256(key.encode()).hexdigest()[:REQUEST_ID_LENGTH]


def attempt_ids(base_id: str, try_number: int) -> list[str]:
    """The ids attempts up to `try_number` may have used, newest first: `{id}-tN` ... `{id}-t2`, `{id}`."""
    return [f"{base_id}-t{n}" for n in range(max(try_number, 1), 1, -1)] + [base_id]


def retry_job_id(base_id: str, try_number: int) -> str:
    """The id a retry submits under when the earlier job failed: `{id}-t{try_number}` (100 characters at most)."""
    suffix = f"-t{try_number}"
    return base_id[: 100 - len(suffix)] + suffix


def job_for_attempt(
    find: Callable[[str], dict[str, Any] | None], job: dict[str, Any], try_number: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The job dict this attempt submits (or attaches to), and the existing job to attach to (None:
    submit). `find(job_id)` returns a job summary or None when there is no such job."""
    base_id = job["reference"]["job_id"]
    for job_id in attempt_ids(base_id, try_number):
        found = find(job_id)
        if found is None:
            continue
        if found["state"] not in FAILED_STATES:
            return with_job_id(job, job_id), found
        new_id = retry_job_id(base_id, try_number)
        if new_id == job_id:
            raise RuntimeError(f"job {job_id} of this attempt already ended {found['state']}; retry the task")
        return with_job_id(job, new_id), None
    return job, None
