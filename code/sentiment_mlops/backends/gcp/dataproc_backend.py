"""Dataproc behind the :class:`~sentiment_mlops.core.job_backend.JobBackend` interface.

The hook (Airflow's DataprocHook, or anything with its submit_job / wait_for_job / get_job /
cancel_job / get_job_client methods) comes from the caller: backends never import Airflow.
Driver logs are read from GCS through a :class:`~sentiment_mlops.core.store.Store`.
"""

from __future__ import annotations

from typing import Any

from google.api_core.exceptions import AlreadyExists, NotFound

from sentiment_mlops.core.job_backend import job_summary
from sentiment_mlops.core.store import Store

DRIVER_LOG_TAIL_BYTES = 65536  # the end of the last driveroutput object holds the error


class DataprocJobBackend:
    """Jobs of project `project_id` in `region`, submitted and inspected through `hook`."""

    def __init__(self, project_id: str, region: str, hook: Any, store: Store) -> None:
        self.project_id = project_id
        self.region = region
        self.hook = hook
        self.store = store

    def _where(self) -> dict[str, str]:
        return {"project_id": self.project_id, "region": self.region}

    @staticmethod
    def _summary(job: Any) -> dict[str, Any]:
        status = job.status
        return job_summary(
            job.reference.job_id,
            status.state.name if hasattr(status.state, "name") else str(status.state),
            dict(job.labels),
            list(job.pyspark_job.args),
            job.driver_output_resource_uri,
            status.details,
            submitted_at=(job.status_history[0].state_start_time.isoformat() if job.status_history else None),
        )

    def submit(
        self, job: dict[str, Any], wait: bool = False, timeout: float | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        """Submit with `request_id` (Dataproc returns the first job for a repeated id); a job id that
        exists already (AlreadyExists) is attached to, not resubmitted."""
        attached = False
        try:
            job_id = self.hook.submit_job(job=job, request_id=request_id, **self._where()).reference.job_id
        except AlreadyExists:
            job_id, attached = job["reference"]["job_id"], True
        if wait:
            self.hook.wait_for_job(job_id=job_id, wait_time=30, timeout=timeout, **self._where())
        summary = self.get(job_id)
        return {**summary, "attached": True} if attached else summary

    def get(self, job_id: str) -> dict[str, Any]:
        return self._summary(self.hook.get_job(job_id=job_id, **self._where()))

    def find(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self.get(job_id)
        except NotFound:
            return None

    def list_active(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        terms = ["status.state = ACTIVE", *(f"labels.{k} = {v}" for k, v in sorted(labels.items()))]
        client = self.hook.get_job_client(region=self.region)
        jobs = client.list_jobs(request={**self._where(), "filter": " AND ".join(terms)})
        return [self._summary(j) for j in jobs]

    def cancel(self, job_id: str) -> dict[str, Any]:
        self.hook.cancel_job(job_id=job_id, **self._where())
        return self.get(job_id)

    def log_tail(self, job_id: str, n: int = 50) -> list[str]:
        """The end of the driver output (`driveroutput.NNNNNNNNN` objects in the staging bucket)."""
        try:
            return driver_output_tail(self.store, self.get(job_id)["driver_output"], n)
        except Exception as exc:  # the tail decorates an error message; it must not replace it
            return [f"(driver log unavailable: {exc})"]


def driver_output_tail(store: Store, prefix: str, n: int) -> list[str]:
    """The last `n` lines of the newest `{prefix}.NNNNNNNNN` object: where Dataproc writes a job's
    driver output, and a Serverless batch's (its runtime_info.output_uri); [] when there is none."""
    parts = [f for f in store.list_files(prefix.rsplit("/", 1)[0]) if f[0].startswith(prefix)]
    if not parts:
        return []
    uri, size = sorted(parts)[-1]
    data = store.read_bytes(uri, start=max(0, size - DRIVER_LOG_TAIL_BYTES))
    return data.decode("utf-8", errors="replace").splitlines()[-n:]
