"""Serving job management (manual trigger): what runs, how it is doing, what it wrote; stop a job.

list_active_serving_jobs -> job_status_and_metrics -> check_prediction_output
    -> write_monitoring_report -> stop_serving_job

Active jobs are those labelled app=sentiment-serving (Dataproc filter
`status.state = ACTIVE AND labels.app = sentiment-serving`; on dataproc-serverless the pending and
running batches with that label, `state = RUNNING AND labels.app = "sentiment-serving"`; or the local
job records). Stopping a batch cancels the operation that created it. The report
(JSON + Markdown) goes to gs://{GCS_BUCKET}-predictions/monitoring/. Set `stop_job_id` (or
`stop_all`) to cancel serving jobs after the report is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, chain, dag, task

from sentiment_mlops.orchestration import dag_factories
from sentiment_mlops.orchestration.config import from_airflow_variables
from sentiment_mlops.orchestration.task_context import pulled_config
from sentiment_mlops.orchestration.tasks import management

DAG_ID = "sentiment_serving_management"
FIRST_TASK = "list_active_serving_jobs"


@dag(
    dag_id=DAG_ID,
    description="List serving jobs, their last batch metrics and prediction output; write a report; stop jobs",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    **dag_factories.dag_defaults(),
    tags=["sentiment", "serving", "monitoring"],
    doc_md=__doc__,
    params={
        "stop_job_id": Param(None, type=["null", "string"], description="serving job id to cancel after the report"),
        "stop_all": Param(False, type="boolean", description="cancel every active serving job after the report"),
        "max_partitions": Param(3, type="integer", minimum=1, description="latest date partitions to count"),
    },
)
def sentiment_serving_management() -> None:
    @task
    def list_active_serving_jobs() -> dict[str, Any]:
        cfg = from_airflow_variables()
        return {"config": cfg.as_dict(), "jobs": management.list_active_serving_jobs(cfg)}

    @task
    def job_status_and_metrics(**context: Any) -> list[dict[str, Any]]:
        cfg, listed = pulled_config(context["ti"], FIRST_TASK)
        return management.job_status_and_metrics(cfg, [j["job_id"] for j in listed["jobs"]])

    @task
    def check_prediction_output(**context: Any) -> dict[str, Any]:
        cfg, _ = pulled_config(context["ti"], FIRST_TASK)
        return management.check_prediction_output(cfg, max_partitions=int(context["params"]["max_partitions"]))

    @task
    def write_monitoring_report(**context: Any) -> dict[str, Any]:
        cfg, _ = pulled_config(context["ti"], FIRST_TASK)
        ti = context["ti"]
        return management.write_monitoring_report(
            cfg, ti.xcom_pull(task_ids="job_status_and_metrics"), ti.xcom_pull(task_ids="check_prediction_output")
        )

    @task
    def stop_serving_job(**context: Any) -> list[dict[str, Any]]:
        cfg, _ = pulled_config(context["ti"], FIRST_TASK)
        params = context["params"]
        return management.stop_serving_jobs(cfg, job_id=params.get("stop_job_id"), stop_all=bool(params["stop_all"]))

    chain(
        list_active_serving_jobs(),
        job_status_and_metrics(),
        check_prediction_output(),
        write_monitoring_report(),
        stop_serving_job(),
    )


sentiment_serving_management()
