"""Operators the DAG files use (they need the Google provider, so only DAG files import this)."""

from __future__ import annotations

from typing import Any

from airflow.providers.google.cloud.operators.dataproc import DataprocSubmitJobOperator

from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.task_context import job_for_attempt
from sentiment_mlops.orchestration.tasks import common


class SentimentTrainingJobOperator(DataprocSubmitJobOperator):
    """DataprocSubmitJobOperator that runs the job through local_jobs when the backend is local.

    One task id per training job whatever the backend (the ids are an interface), and on Dataproc
    the provider's own submit/defer/cancel logic, untouched. `sentiment_config` is the
    AirflowConfig as a dict (templated: it usually comes from an XCom).
    """

    template_fields = (*DataprocSubmitJobOperator.template_fields, "sentiment_config")

    def __init__(self, *, sentiment_config: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sentiment_config = sentiment_config

    def execute(self, context: Any) -> Any:
        cfg = AirflowConfig.from_dict(self.sentiment_config)
        self.job = job_for_attempt(self.job, context["ti"].try_number)
        if cfg.is_local:
            return common.run_job(cfg, self.job)["job_id"]
        self.project_id, self.region = cfg.gcp_project_id, cfg.gcp_region
        return super().execute(context)
