"""Dataproc Serverless behind the :class:`~sentiment_mlops.core.job_backend.JobBackend` interface: each
job dict runs as a PySpark `dataproc_v1.Batch` built by :func:`sentiment_mlops.jobs.serverless.batch_from_job`.

The hook (Airflow's DataprocHook, or anything with its create_batch / get_batch / list_batches /
wait_for_batch / get_operations_client methods) comes from the caller: backends never import Airflow.
Summaries carry the Dataproc *job* state names the tasks already use (SUCCEEDED -> DONE, FAILED ->
ERROR, CANCELLING -> CANCEL_STARTED), the batch's own state under `batch_state`, and the batch id as
`job_id` (the job id made a batch id by :func:`~sentiment_mlops.jobs.serverless.batch_id_for`; the
builders' ids already are one, so the two are equal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from google.api_core.exceptions import AlreadyExists, NotFound

from sentiment_mlops.backends.gcp.dataproc_backend import driver_output_tail
from sentiment_mlops.core.job_backend import job_summary
from sentiment_mlops.core.naming import APP_SERVING
from sentiment_mlops.core.store import Store
from sentiment_mlops.jobs.serverless import MAX_TTL_SECONDS, ServerlessTarget, batch_from_job, batch_id_for

# Batch state -> the Dataproc Job state name with the same meaning.
JOB_STATE_OF_BATCH = {
    "STATE_UNSPECIFIED": "STATE_UNSPECIFIED",
    "PENDING": "PENDING",
    "RUNNING": "RUNNING",
    "CANCELLING": "CANCEL_STARTED",
    "CANCELLED": "CANCELLED",
    "SUCCEEDED": "DONE",
    "FAILED": "ERROR",
}
ACTIVE_BATCH_STATES = ("PENDING", "RUNNING")
ENDED_BATCH_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
# A training batch's TTL: the training task's execution_timeout (6 h), past which the task has failed
# anyway. Without one, Dataproc ends a batch on runtime 2.1+ after 4 hours, shorter than a full run.
TRAINING_TTL_SECONDS = 6 * 3600


def batch_for_job(
    job: dict[str, Any],
    target: ServerlessTarget,
    stream_ttl_seconds: int = MAX_TTL_SECONDS,
    training_ttl_seconds: int = TRAINING_TTL_SECONDS,
) -> dict[str, Any]:
    """The validated Batch dict that runs the job dict `job` on `target`, with the stream's TTL for a
    serving job (label app=sentiment-serving) and the training TTL otherwise. ValueError naming each
    problem."""
    serving = (job.get("labels") or {}).get("app") == APP_SERVING
    return batch_from_job(job, target, ttl_seconds=stream_ttl_seconds if serving else training_ttl_seconds)


class DataprocServerlessJobBackend:
    """Batches of `target` (project, region, runtime, service account, subnetwork), through `hook`.

    Serving jobs (label app=sentiment-serving) get `stream_ttl_seconds`, others `training_ttl_seconds`.
    `poll_s`, `sleep` and `clock` pace a wait with a timeout.
    """

    def __init__(
        self,
        target: ServerlessTarget,
        hook: Any,
        store: Store,
        stream_ttl_seconds: int = MAX_TTL_SECONDS,
        training_ttl_seconds: int = TRAINING_TTL_SECONDS,
        poll_s: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.hook = hook
        self.store = store
        self.stream_ttl_seconds = stream_ttl_seconds
        self.training_ttl_seconds = training_ttl_seconds
        self.poll_s, self.sleep, self.clock = poll_s, sleep, clock

    def _where(self) -> dict[str, str]:
        return {"project_id": self.target.project_id, "region": self.target.region}

    def batch_for(self, job: dict[str, Any]) -> dict[str, Any]:
        """The validated Batch dict that runs `job` (ValueError naming each problem: nothing is sent)."""
        return batch_for_job(job, self.target, self.stream_ttl_seconds, self.training_ttl_seconds)

    @staticmethod
    def _summary(batch: Any) -> dict[str, Any]:
        state = batch.state.name if hasattr(batch.state, "name") else str(batch.state)
        created = batch.create_time
        return job_summary(
            batch.name.rsplit("/", 1)[-1],
            JOB_STATE_OF_BATCH.get(state, state),
            dict(batch.labels),
            list(batch.pyspark_batch.args),
            batch.runtime_info.output_uri,
            batch.state_message,
            submitted_at=created.isoformat() if created else None,
            batch_state=state,
        )

    def submit(
        self, job: dict[str, Any], wait: bool = False, timeout: float | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        """Create the batch `batch_id_for(job id)` with `request_id` (Dataproc returns the first
        operation for a repeated id); a batch id that exists already is attached to, not recreated."""
        batch_id = batch_id_for(job["reference"]["job_id"])
        batch = self.batch_for(job)
        attached = False
        try:
            self.hook.create_batch(batch=batch, batch_id=batch_id, request_id=request_id, **self._where())
        except AlreadyExists:
            attached = True
        summary = self._wait(batch_id, timeout) if wait else self.get(batch_id)
        return {**summary, "attached": True} if attached else summary

    def _wait(self, batch_id: str, timeout: float | None) -> dict[str, Any]:
        """The summary once the batch has ended. The hook's wait_for_batch has no overall deadline
        (its timeout bounds each request), so a `timeout` polls here instead."""
        if timeout is None:
            wait_s = max(1, int(self.poll_s))
            ended = self.hook.wait_for_batch(batch_id=batch_id, wait_check_interval=wait_s, **self._where())
            return self._summary(ended)
        deadline = self.clock() + timeout
        while True:
            summary = self.get(batch_id)
            if summary["batch_state"] in ENDED_BATCH_STATES:
                return summary
            if self.clock() >= deadline:
                raise TimeoutError(f"batch {batch_id} is still {summary['batch_state']} after {timeout:.0f}s")
            self.sleep(self.poll_s)

    def get(self, job_id: str) -> dict[str, Any]:
        return self._summary(self.hook.get_batch(batch_id=batch_id_for(job_id), **self._where()))

    def find(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self.get(job_id)
        except (NotFound, ValueError):  # ValueError: not even a possible batch id
            return None

    def list_active(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Pending and running batches with all `labels`: one ListBatches call per state, each with the
        filter form the API documents (`state = RUNNING AND labels.k = "v"`)."""
        terms = [f'labels.{key} = "{value}"' for key, value in sorted(labels.items())]
        found: list[dict[str, Any]] = []
        for state in ACTIVE_BATCH_STATES:
            query = " AND ".join([f"state = {state}", *terms])
            found += [self._summary(b) for b in self.hook.list_batches(filter=query, **self._where())]
        return found

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a pending or running batch. The Batch API has no cancel method: like `gcloud dataproc
        batches cancel`, this cancels the long-running operation that created the batch (its
        `operation` field). Returns at once, usually CANCEL_STARTED; the driver stops afterwards."""
        batch = self.hook.get_batch(batch_id=batch_id_for(job_id), **self._where())
        if batch.state.name in ACTIVE_BATCH_STATES:
            self.hook.get_operations_client(self.target.region).cancel_operation(name=batch.operation)
        return self.get(job_id)

    def log_tail(self, job_id: str, n: int = 50) -> list[str]:
        """The end of the driver output, read from the batch's `runtime_info.output_uri` (the
        `driveroutput.NNNNNNNNN` objects `gcloud dataproc batches wait` streams). When there is none
        (not started yet, or the runtime wrote no output there) it returns the batch's state message
        and where the logs are: the batch page and Cloud Logging (monitored resource
        cloud_dataproc_batch), which this backend does not read."""
        try:
            found = self.find(job_id)
            if found is None:
                return []
            lines = driver_output_tail(self.store, found["driver_output"], n) if found["driver_output"] else []
            return lines or self._log_pointer(found)
        except Exception as exc:  # the tail decorates an error message; it must not replace it
            return [f"(driver log unavailable: {exc})"]

    def _log_pointer(self, found: dict[str, Any]) -> list[str]:
        project, region, batch_id = self.target.project_id, self.target.region, found["job_id"]
        return [
            f"(no driver output at {found['driver_output'] or 'runtime_info.output_uri (not set yet)'}; "
            f"batch {batch_id} is {found['batch_state']}: {found['details'] or 'no state message'})",
            f"(logs: https://console.cloud.google.com/dataproc/batches/{region}/{batch_id}?project={project} , or "
            f'Cloud Logging resource.type="cloud_dataproc_batch" resource.labels.batch_id="{batch_id}")',
        ]
