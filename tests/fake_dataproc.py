"""Dataproc's job API in memory behind DataprocHook's methods, strict like the real one: every submit
is validated as a `dataproc_v1.SubmitJobRequest` (and by the project's job validation), a repeated
`request_id` returns the first job, a reused job id raises AlreadyExists, an unknown one NotFound,
and the jobs are real `dataproc_v1.Job` objects."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from google.api_core.exceptions import AlreadyExists, NotFound
from google.cloud import dataproc_v1

from sentiment_mlops import jobs as job_spec

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class FakeDataprocApi:
    """The jobs of one project and region, shared by every hook made in a test."""

    def __init__(self) -> None:
        self.jobs: dict[str, dataproc_v1.Job] = {}
        self.requests: list[dataproc_v1.SubmitJobRequest] = []
        self.by_request_id: dict[str, str] = {}
        self.cancelled: list[str] = []
        self.wait_outcome = "DONE"  # the state wait_for_job leaves a job in

    def set_state(self, job_id: str, state: str) -> None:
        job = self.jobs[job_id]
        job.status = dataproc_v1.JobStatus(state=state, state_start_time=datetime.now(UTC))
        job.status_history.append(job.status)


class FakeDataprocHook:
    """The DataprocHook methods the project and the provider's operator call."""

    api = FakeDataprocApi()
    project_id = None

    def __init__(self, api: FakeDataprocApi | None = None, **_connection: Any) -> None:
        self.api = api or type(self).api

    def submit_job(self, job: Any, project_id: str, region: str, request_id: str | None = None, **_: Any) -> Any:
        request = dataproc_v1.SubmitJobRequest(project_id=project_id, region=region, job=job, request_id=request_id)
        assert request_id is None or REQUEST_ID_RE.match(request_id), f"invalid request_id {request_id!r}"
        if isinstance(job, dict):
            job_spec.validate_job(job)
        self.api.requests.append(request)
        if request_id and request_id in self.api.by_request_id:
            return self.api.jobs[self.api.by_request_id[request_id]]
        job_id = request.job.reference.job_id
        if job_id in self.api.jobs:
            raise AlreadyExists(f"Job projects/{project_id}/regions/{region}/jobs/{job_id} already exists")
        stored = dataproc_v1.Job(request.job)
        stored.driver_output_resource_uri = f"gs://staging/google-cloud-dataproc-metainfo/jobs/{job_id}/driveroutput"
        self.api.jobs[job_id] = stored
        self.api.set_state(job_id, "PENDING")
        self.api.set_state(job_id, "RUNNING")
        if request_id:
            self.api.by_request_id[request_id] = job_id
        return stored

    def get_job(self, job_id: str, project_id: str, region: str, **_: Any) -> dataproc_v1.Job:
        if job_id not in self.api.jobs:
            raise NotFound(f"Job projects/{project_id}/regions/{region}/jobs/{job_id} not found")
        return self.api.jobs[job_id]

    def wait_for_job(self, job_id: str, project_id: str, region: str, **_: Any) -> None:
        if self.get_job(job_id, project_id, region).status.state.name in ("PENDING", "RUNNING"):
            self.api.set_state(job_id, self.api.wait_outcome)

    def cancel_job(self, job_id: str, project_id: str, region: str, **_: Any) -> dataproc_v1.Job:
        job = self.get_job(job_id, project_id, region)
        if job.status.state.name in ("PENDING", "RUNNING"):
            self.api.cancelled.append(job_id)
            self.api.set_state(job_id, "CANCELLED")
        return job

    def get_job_client(self, region: str) -> Any:
        api = self.api

        class Client:
            def list_jobs(self, request: dict) -> list[dataproc_v1.Job]:
                dataproc_v1.ListJobsRequest(**request)
                terms = dict(t.split(" = ") for t in request["filter"].split(" AND "))
                return [
                    job
                    for job in api.jobs.values()
                    if job.status.state.name in ("PENDING", "RUNNING")
                    and all(
                        job.labels.get(k.removeprefix("labels.")) == v for k, v in terms.items() if k != "status.state"
                    )
                ]

        return Client()
