"""The local spark-submit runner (:mod:`sentiment_mlops.backends.local.jobs`) behind the
:class:`~sentiment_mlops.core.job_backend.JobBackend` interface."""

from __future__ import annotations

from typing import Any

from sentiment_mlops.backends.local import jobs as local_jobs
from sentiment_mlops.core.job_backend import job_summary


class LocalJobBackend:
    """Jobs run by a local_jobs controller (default: this machine's), returned as plain dicts."""

    def __init__(self, controller: Any = None) -> None:
        self.controller = controller or local_jobs.controller()

    @staticmethod
    def _summary(record: Any) -> dict[str, Any]:
        summary = job_summary(
            record.job_id,
            record.state,
            record.labels,
            list(record.job.get("pyspark_job", {}).get("args", [])),
            record.driver_output_uri,
            record.details,
            submitted_at=record.submitted_at,
            ended_at=record.ended_at,
        )
        if getattr(record, "attached", False):
            summary["attached"] = True
        return summary

    def submit(
        self, job: dict[str, Any], wait: bool = False, timeout: float | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        return self._summary(self.controller.submit(job, wait=wait, timeout=timeout, request_id=request_id))

    def get(self, job_id: str) -> dict[str, Any]:
        return self._summary(self.controller.get(job_id))

    def find(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self.get(job_id)
        except local_jobs.JobNotFoundError:
            return None

    def list_active(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return [self._summary(r) for r in self.controller.list_jobs("active", labels)]

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._summary(self.controller.cancel(job_id))

    def log_tail(self, job_id: str, n: int = 50) -> list[str]:
        return self.controller.log_tail(job_id, n)
