"""Dataproc's job and batch APIs in memory behind DataprocHook's methods, strict like the real ones:
every submit is validated as a `dataproc_v1.SubmitJobRequest` / `CreateBatchRequest` (and by the
project's job / batch validation), a repeated `request_id` returns the first job / operation, a reused
id raises AlreadyExists, an unknown one NotFound, a batch filter outside the documented form
InvalidArgument, and the jobs and batches are real `dataproc_v1.Job` / `dataproc_v1.Batch` objects."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from google.api_core.exceptions import AlreadyExists, InvalidArgument, NotFound
from google.cloud import dataproc_v1
from google.longrunning import operations_pb2

from sentiment_mlops import jobs as job_spec
from sentiment_mlops.jobs.serverless import validate_batch

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# CreateBatchRequest.batch_id: 4-63 characters of /[a-z][0-9]-/ (the API reference).
BATCH_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,61}[a-z0-9]$")
# The ListBatches filter terms this project sends: `state = X` and `labels.KEY = "VALUE"`, joined by AND.
_STATE_TERM = re.compile(r"^state = (PENDING|RUNNING|CANCELLING|CANCELLED|SUCCEEDED|FAILED)$")
_LABEL_TERM = re.compile(r'^labels\.([a-z][a-z0-9_-]{0,62}) = "([a-z0-9_-]{0,63})"$')


class FakeDataprocApi:
    """The jobs of one project and region, shared by every hook made in a test."""

    def __init__(self) -> None:
        self.jobs: dict[str, dataproc_v1.Job] = {}
        self.requests: list[dataproc_v1.SubmitJobRequest] = []
        self.by_request_id: dict[str, str] = {}
        self.cancelled: list[str] = []
        self.wait_outcome = "DONE"  # the state wait_for_job leaves a job in
        self.batches: dict[str, dataproc_v1.Batch] = {}
        self.batch_requests: list[dataproc_v1.CreateBatchRequest] = []
        self.batch_by_request_id: dict[str, str] = {}
        self.list_filters: list[str] = []
        self.cancelled_batches: list[str] = []
        self.batch_wait_outcome = "SUCCEEDED"  # the state wait_for_batch leaves a batch in
        self.cancelling_reads = 1  # reads of a cancelled batch that still see CANCELLING
        self._cancelling: dict[str, int] = {}

    def set_state(self, job_id: str, state: str) -> None:
        job = self.jobs[job_id]
        job.status = dataproc_v1.JobStatus(state=state, state_start_time=datetime.now(UTC))
        job.status_history.append(job.status)

    def set_batch_state(self, batch_id: str, state: str, message: str = "") -> None:
        batch = self.batches[batch_id]
        now = datetime.now(UTC)
        if batch.state.name != "STATE_UNSPECIFIED":
            history = dataproc_v1.Batch.StateHistory(
                state=batch.state, state_message=batch.state_message, state_start_time=batch.state_time
            )
            batch.state_history.append(history)
        batch.state, batch.state_message, batch.state_time = state, message, now


class FakeOperation:
    """What create_batch returns: a long-running operation whose metadata names the batch."""

    def __init__(self, api: FakeDataprocApi, batch: dataproc_v1.Batch) -> None:
        self.api, self.batch_id = api, batch.name.rsplit("/", 1)[-1]
        self.operation = operations_pb2.Operation(name=batch.operation)
        self.metadata = dataproc_v1.BatchOperationMetadata(batch=batch.name, batch_uuid=batch.uuid)

    def cancel(self) -> None:
        if self.api.batches[self.batch_id].state.name in ("PENDING", "RUNNING"):
            self.api.cancelled_batches.append(self.batch_id)
            self.api.set_batch_state(self.batch_id, "CANCELLING")


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

    # -- Dataproc Serverless batches -----------------------------------------------------------------

    def create_batch(
        self,
        region: str,
        project_id: str,
        batch: Any,
        batch_id: str | None = None,
        request_id: str | None = None,
        **_: Any,
    ) -> FakeOperation:
        parent = f"projects/{project_id}/regions/{region}"  # as DataprocHook.create_batch builds it
        request = dataproc_v1.CreateBatchRequest(
            parent=parent, batch=batch, batch_id=batch_id or "", request_id=request_id or ""
        )
        assert batch_id and BATCH_ID_RE.match(batch_id), f"invalid batch_id {batch_id!r}"
        assert request_id is None or REQUEST_ID_RE.match(request_id), f"invalid request_id {request_id!r}"
        validate_batch(dict(batch) if isinstance(batch, dict) else dataproc_v1.Batch.to_dict(batch))
        self.api.batch_requests.append(request)
        if request_id and request_id in self.api.batch_by_request_id:
            return FakeOperation(self.api, self.api.batches[self.api.batch_by_request_id[request_id]])
        if batch_id in self.api.batches:
            raise AlreadyExists(f"Batch projects/{project_id}/locations/{region}/batches/{batch_id} already exists")
        stored = dataproc_v1.Batch(request.batch)
        batch_uuid = str(uuid.uuid4())
        stored.name = f"projects/{project_id}/locations/{region}/batches/{batch_id}"
        stored.uuid = batch_uuid
        stored.operation = f"projects/{project_id}/regions/{region}/operations/{batch_uuid}"
        stored.create_time = datetime.now(UTC)
        metainfo = f"gs://staging/google-cloud-dataproc-metainfo/{batch_uuid}/jobs/srvls-batch-{batch_uuid}"
        stored.runtime_info = dataproc_v1.RuntimeInfo(output_uri=f"{metainfo}/driveroutput")
        self.api.batches[batch_id] = stored
        self.api.set_batch_state(batch_id, "PENDING")
        self.api.set_batch_state(batch_id, "RUNNING")
        if request_id:
            self.api.batch_by_request_id[request_id] = batch_id
        return FakeOperation(self.api, stored)

    def get_batch(self, batch_id: str, region: str, project_id: str, **_: Any) -> dataproc_v1.Batch:
        dataproc_v1.GetBatchRequest(name=f"projects/{project_id}/locations/{region}/batches/{batch_id}")
        if batch_id not in self.api.batches:
            raise NotFound(f"Batch projects/{project_id}/locations/{region}/batches/{batch_id} not found")
        batch = self.api.batches[batch_id]
        if batch.state.name == "CANCELLING":  # the driver stops a little after the cancel
            seen = self.api._cancelling.get(batch_id, 0)
            if seen >= self.api.cancelling_reads:
                self.api.set_batch_state(batch_id, "CANCELLED", "Batch was cancelled.")
            self.api._cancelling[batch_id] = seen + 1
        return batch

    def list_batches(self, region: str, project_id: str, filter: str | None = None, **_: Any) -> list[Any]:  # noqa: A002
        dataproc_v1.ListBatchesRequest(parent=f"projects/{project_id}/regions/{region}", filter=filter or "")
        self.api.list_filters.append(filter or "")
        states: set[str] = set()
        labels: dict[str, str] = {}
        for term in (filter or "").split(" AND ") if filter else []:
            if m := _STATE_TERM.match(term):
                states.add(m.group(1))
            elif m := _LABEL_TERM.match(term):
                labels[m.group(1)] = m.group(2)
            else:
                raise InvalidArgument(f"unsupported filter term {term!r} in {filter!r}")
        return [
            b
            for b in self.api.batches.values()
            if (not states or b.state.name in states) and all(b.labels.get(k) == v for k, v in labels.items())
        ]

    def wait_for_batch(self, batch_id: str, region: str, project_id: str, **_: Any) -> dataproc_v1.Batch:
        batch = self.get_batch(batch_id, region, project_id)
        if batch.state.name in ("PENDING", "RUNNING"):
            self.api.set_batch_state(batch_id, self.api.batch_wait_outcome)
        return batch

    def get_operations_client(self, region: str | None) -> Any:
        api = self.api

        class Operations:
            def cancel_operation(self, name: str, **_: Any) -> None:
                operations_pb2.CancelOperationRequest(name=name)
                matches = [b for b in api.batches.values() if b.operation == name]
                if not matches:
                    raise NotFound(f"Operation {name} not found")
                FakeOperation(api, matches[0]).cancel()

        return Operations()
