"""Operators the DAG files use (they need the Google provider, so only DAG files import this)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from airflow.providers.google.cloud.links.dataproc import DATAPROC_BATCH_LINK, DataprocBatchLink, DataprocJobLink
from airflow.providers.google.cloud.operators import dataproc as provider
from airflow.providers.google.cloud.triggers.dataproc import DataprocBatchTrigger, DataprocSubmitTrigger
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from google.api_core.exceptions import AlreadyExists
from google.cloud.dataproc_v1 import JobStatus

from sentiment_mlops.backends.gcp.dataproc_backend import DataprocJobBackend
from sentiment_mlops.backends.gcp.serverless_backend import ENDED_BATCH_STATES, DataprocServerlessJobBackend
from sentiment_mlops.orchestration.backends import gcs_store, serverless_backend
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.job_attempts import TaskAttempt, job_for_attempt
from sentiment_mlops.orchestration.task_context import pulled_config, task_attempt
from sentiment_mlops.orchestration.tasks import common
from sentiment_mlops.orchestration.triggers import ServingJobTrigger


class SentimentTrainingJobOperator(provider.DataprocSubmitJobOperator):
    """DataprocSubmitJobOperator that runs the job through local_jobs when the backend is local.

    One task id per training job whatever the backend (the ids are an interface). On Dataproc the
    provider submits, defers and cancels on kill (`cancel_on_kill`), with two changes for retries
    (the provider's submit operator starts a second job on a retry, apache/airflow#72417): the job id
    and `request_id` are stable per DAG run and task, and an attempt that finds the job of an earlier
    attempt (active or DONE) attaches to it and waits instead of submitting; one that finds it
    failed submits `{id}-t{try}` (see orchestration.job_attempts). `sentiment_config` is the
    AirflowConfig as a dict (templated: it usually comes from an XCom).

    On dataproc-serverless the same job runs as a Dataproc Serverless batch (jobs.serverless), with
    what the provider's DataprocCreateBatchOperator does (a batch id and `request_id`, an existing
    batch attached to, the batch link, DataprocBatchTrigger when deferrable, else the hook's
    wait_for_batch, FAILED / CANCELLED failing the task) and the same retry rules as jobs. That
    operator is not used itself: the backend is known only when the task runs, and on a retry it
    would attach to the failed batch instead of submitting `{id}-t{try}`.
    """

    template_fields = (*provider.DataprocSubmitJobOperator.template_fields, "sentiment_config")

    def __init__(self, *, sentiment_config: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sentiment_config = sentiment_config
        self._batches: DataprocServerlessJobBackend | None = None
        self._batch_id: str | None = None

    def execute(self, context: Any) -> Any:
        cfg = AirflowConfig.from_dict(self.sentiment_config)
        attempt = task_attempt(context)
        if cfg.is_local:
            return common.run_job(cfg, self.job, attempt=attempt)["job_id"]
        self.project_id, self.region = str(cfg.gcp_project_id), cfg.gcp_region
        self.hook = provider.DataprocHook(gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain)
        if cfg.is_serverless:
            return self._execute_batch(context, cfg, attempt)
        backend = DataprocJobBackend(str(self.project_id), self.region, self.hook, gcs_store(self.gcp_conn_id))
        self.job, existing = job_for_attempt(backend.find, self.job, attempt.try_number)
        job_id = self.job["reference"]["job_id"]
        self.request_id = attempt.request_id(job_id)
        if existing is not None:
            self.log.info("attempt %d attaches to job %s (%s)", attempt.try_number, job_id, existing["state"])
            return self._attach(context, job_id)
        try:
            return super().execute(context)
        except AlreadyExists:  # submitted meanwhile (a double click, a lost response): the same job
            self.log.info("job %s exists already: attaching to it", job_id)
            return self._attach(context, job_id)

    def _execute_batch(self, context: Any, cfg: AirflowConfig, attempt: TaskAttempt) -> str:
        """This task's job as a Serverless batch (see the class docstring); returns the batch id."""
        self._batches = batches = serverless_backend(cfg, self.hook)
        job, existing = job_for_attempt(batches.find, self.job, attempt.try_number)
        job_id = job["reference"]["job_id"]
        if existing is None:
            batch = batches.batch_for(job)  # a bad runtime / service account fails here, before any request
            self.log.info("submitting batch %s:\n%s", job_id, json.dumps(batch, indent=2, sort_keys=True))
            summary = batches.submit(job, request_id=attempt.request_id(job_id))
        else:
            self.log.info("attempt %d attaches to batch %s (%s)", attempt.try_number, job_id, existing["batch_state"])
            summary = existing
        self._batch_id = batch_id = summary["job_id"]
        DataprocBatchLink.persist(context=context, project_id=self.project_id, region=self.region, batch_id=batch_id)
        if summary["batch_state"] in ENDED_BATCH_STATES:
            return self._batch_result(batch_id, summary["batch_state"], summary["details"])
        if self.deferrable:
            self.defer(
                trigger=DataprocBatchTrigger(
                    batch_id=batch_id,
                    project_id=self.project_id,
                    region=self.region,
                    gcp_conn_id=self.gcp_conn_id,
                    impersonation_chain=self.impersonation_chain,
                    polling_interval_seconds=self.polling_interval_seconds,
                ),
                method_name="execute_complete",
            )
        hook = self.hook or provider.DataprocHook(gcp_conn_id=self.gcp_conn_id)
        ended = hook.wait_for_batch(
            batch_id=batch_id,
            region=self.region,
            project_id=self.project_id,
            wait_check_interval=max(1, int(self.polling_interval_seconds)),
        )
        return self._batch_result(batch_id, ended.state.name, ended.state_message)

    def _batch_result(self, batch_id: str, state: str, message: str | None) -> str:
        if state == "SUCCEEDED":
            return batch_id
        link = DATAPROC_BATCH_LINK.format(region=self.region, project_id=self.project_id, batch_id=batch_id)
        raise AirflowException(f"Batch {batch_id} ended {state}: {message or 'no state message'}\nDriver logs: {link}")

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        """The end of a deferred wait: a batch's (DataprocBatchTrigger) or a job's (the provider's)."""
        if isinstance(event, dict) and "batch_state" in event:
            return self._batch_result(event["batch_id"], event["batch_state"], event.get("batch_state_message"))
        return super().execute_complete(context, event)

    def on_kill(self) -> None:
        """Cancel this task's batch (`cancel_on_kill`), else what the provider does for its job."""
        if self._batches is not None and self._batch_id and self.cancel_on_kill:
            self._batches.cancel(self._batch_id)
            return
        super().on_kill()

    def _attach(self, context: Any, job_id: str) -> str:
        """What the provider does after its submit, for a job submitted earlier: link, then done,
        failed, or wait for it (deferred in the triggerer when `deferrable`)."""
        DataprocJobLink.persist(context=context, job_id=job_id, region=self.region, project_id=self.project_id)
        self.job_id = job_id  # on_kill cancels it: the job is this task's, whichever attempt submitted it
        hook = self.hook or provider.DataprocHook(gcp_conn_id=self.gcp_conn_id)
        state = hook.get_job(project_id=self.project_id, region=self.region, job_id=job_id).status.state
        if state == JobStatus.State.DONE:
            return job_id
        if state in (JobStatus.State.ERROR, JobStatus.State.CANCELLED):
            raise AirflowException(f"Job {job_id} ended {JobStatus.State(state).name}")
        if self.deferrable:
            self.defer(
                trigger=DataprocSubmitTrigger(
                    job_id=job_id,
                    project_id=self.project_id,
                    region=self.region,
                    gcp_conn_id=self.gcp_conn_id,
                    impersonation_chain=self.impersonation_chain,
                    polling_interval_seconds=self.polling_interval_seconds,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
            )
        hook.wait_for_job(job_id=job_id, region=self.region, project_id=self.project_id, timeout=self.wait_timeout)
        return job_id


class ServingJobWaitOperator(BaseOperator):
    """The serving DAG's wait for its deployed job (RUNNING, first batch written), deferred to
    triggers.ServingJobTrigger so no worker slot is held while it polls. Reads the configuration from
    `config_task_id`'s XCom, the deployment from `deploy_task_id`'s, and the `wait_timeout_seconds`
    and `require_first_batch` params. Returns what tasks.serving.check_serving_job returns, or
    state NOT_SUBMITTED in test mode; fails with the trigger's message."""

    def __init__(self, *, config_task_id: str, deploy_task_id: str, poll_s: float = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_task_id, self.deploy_task_id, self.poll_s = config_task_id, deploy_task_id, poll_s

    def execute(self, context: Any) -> Any:
        cfg, _ = pulled_config(context["ti"], self.config_task_id)
        deployment = context["ti"].xcom_pull(task_ids=self.deploy_task_id)
        if not deployment["submitted"]:
            return {"job_id": deployment["job_id"], "state": "NOT_SUBMITTED", "reason": "serving_deploy_mode=test"}
        params = context["params"]
        timeout_s, now = float(params["wait_timeout_seconds"]), time.time()
        trigger = ServingJobTrigger(
            cfg.as_dict(),
            deployment["job_id"],
            since=now,
            deadline=now + timeout_s,
            timeout_s=timeout_s,
            require_first_batch=bool(params["require_first_batch"]),
            poll_s=self.poll_s,
        )
        # The trigger's own deadline fails the wait with the driver log; this one only guards the triggerer.
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=timeout_s + 300))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event["status"] != "ok":
            raise common.TaskError(event["message"])
        return event["result"]
