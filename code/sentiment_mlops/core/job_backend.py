"""The job-backend interface the DAG tasks use (local spark-submit runner or Dataproc).

Every method returns plain dicts (see :func:`job_summary`), so results go to XCom as they are and
the tasks cannot tell the backends apart.
"""

from __future__ import annotations

from typing import Any, Protocol


def job_summary(
    job_id: str, state: str, labels: dict[str, str], args: list[str], driver_output: str, details: str, **extra: Any
) -> dict[str, Any]:
    """One job as a dict: id, Dataproc state name, labels, pyspark args, driver output URI, status
    details, plus backend-specific `extra` keys (submitted_at, ended_at)."""
    return {
        "job_id": job_id,
        "state": state,
        "labels": labels,
        "args": args,
        "driver_output": driver_output,
        "details": details,
        **extra,
    }


class JobBackend(Protocol):
    """Submit, inspect and cancel Spark jobs given as Dataproc Job dicts."""

    def submit(
        self, job: dict[str, Any], wait: bool = False, timeout: float | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        """Submit `job`; with `wait`, return once it has ended (or `timeout` seconds passed).
        Idempotent: when a job with this id exists (or `request_id` was seen), the existing job is
        returned (key `attached`: True) and waited for with `wait`; nothing new starts."""
        ...

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's current summary."""
        ...

    def find(self, job_id: str) -> dict[str, Any] | None:
        """The job's current summary, or None when no job has this id."""
        ...

    def list_active(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Summaries of the active jobs carrying all of `labels`."""
        ...

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel the job; its summary afterwards."""
        ...

    def log_tail(self, job_id: str, n: int = 50) -> list[str]:
        """The last `n` lines of the driver output."""
        ...
