"""Operators the DAG files use (they need the Google provider, so only DAG files import this)."""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.google.cloud.links.dataproc import DataprocJobLink
from airflow.providers.google.cloud.operators import dataproc as provider
from airflow.providers.google.cloud.triggers.dataproc import DataprocSubmitTrigger
from google.api_core.exceptions import AlreadyExists
from google.cloud.dataproc_v1 import JobStatus

from sentiment_mlops.backends.gcp.dataproc_backend import DataprocJobBackend
from sentiment_mlops.orchestration.backends import gcs_store
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.job_attempts import job_for_attempt
from sentiment_mlops.orchestration.task_context import task_attempt
from sentiment_mlops.orchestration.tasks import common


class SentimentTrainingJobOperator(provider.DataprocSubmitJobOperator):
    """DataprocSubmitJobOperator that runs the job through local_jobs when the backend is local.

    One task id per training job whatever the backend (the ids are an interface). On Dataproc the
    provider submits, defers and cancels on kill (`cancel_on_kill`), with two changes for retries
    (the provider's submit operator starts a second job on a retry, apache/airflow#72417): the job id
    and `request_id` are stable per DAG run and task, and an attempt that finds the job of an earlier
    attempt (active or DONE) attaches to it and waits instead of submitting; one that finds it
    failed submits `{id}-t{try}` (see orchestration.job_attempts). `sentiment_config` is the
    AirflowConfig as a dict (templated: it usually comes from an XCom).
    """

    template_fields = (*provider.DataprocSubmitJobOperator.template_fields, "sentiment_config")

    def __init__(self, *, sentiment_config: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sentiment_config = sentiment_config

    def execute(self, context: Any) -> Any:
        cfg = AirflowConfig.from_dict(self.sentiment_config)
        attempt = task_attempt(context)
        if cfg.is_local:
            return common.run_job(cfg, self.job, attempt=attempt)["job_id"]
        self.project_id, self.region = cfg.gcp_project_id, cfg.gcp_region
        self.hook = provider.DataprocHook(gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain)
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

    def _attach(self, context: Any, job_id: str) -> str:
        """What the provider does after its submit, for a job submitted earlier: link, then done,
        failed, or wait for it (deferred in the triggerer when `deferrable`)."""
        DataprocJobLink.persist(context=context, job_id=job_id, region=self.region, project_id=self.project_id)
        self.job_id = job_id  # on_kill cancels it: the job is this task's, whichever attempt submitted it
        state = self.hook.get_job(project_id=self.project_id, region=self.region, job_id=job_id).status.state
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
        self.hook.wait_for_job(job_id=job_id, region=self.region, project_id=self.project_id, timeout=self.wait_timeout)
        return job_id
