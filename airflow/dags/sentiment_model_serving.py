"""Deploy the streaming serving job for the registered model (manual trigger).

validate_mlflow -> get_model_to_serve -> deploy_streaming_job -> wait_for_streaming_job -> notify

serving_deploy_mode=test (the default Variable) validates the job and logs the exact Job JSON but
submits nothing; production submits it to Dataproc or to the local spark-submit runner
(SENTIMENT_BACKEND) and waits (deferred, in the triggerer) until it is RUNNING and has written its
first batch. A retried deploy attaches to the job it submitted; replace_running cancels only other
jobs on the same checkpoint and waits for their end before submitting. Every serving
Variable can be overridden for one run in the trigger form.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, chain, dag, task

from sentiment_mlops.orchestration import dag_factories
from sentiment_mlops.orchestration.config import DEPLOY_MODES, SOURCE_TYPES, from_airflow_variables
from sentiment_mlops.orchestration.operators import ServingJobWaitOperator
from sentiment_mlops.orchestration.task_context import pulled_config, run_tag, task_attempt
from sentiment_mlops.orchestration.tasks import reports, serving
from sentiment_mlops.orchestration.tasks.common import check_mlflow

DAG_ID = "sentiment_model_serving"
FIRST_TASK = "validate_mlflow"


@dag(
    dag_id=DAG_ID,
    description="Deploy the Spark Structured Streaming serving job (file or Kafka source) for the MLflow model",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    **dag_factories.dag_defaults(),
    tags=["sentiment", "serving", "streaming"],
    doc_md=__doc__,
    params={
        "deploy_mode": Param(
            None, type=["null", "string"], enum=[None, *DEPLOY_MODES], description="default: serving_deploy_mode"
        ),
        "model_name": Param(None, type=["null", "string"], description="default: serving_model_name"),
        "model_stage": Param(None, type=["null", "string"], description="stage/alias/version; serving_model_stage"),
        "source_type": Param(
            None, type=["null", "string"], enum=[None, *SOURCE_TYPES], description="default: serving_source_type"
        ),
        "input_path": Param(None, type=["null", "string"], description="file source folder; default the bucket's"),
        "max_files_per_trigger": Param(None, type=["null", "integer"], description="file source batch cap"),
        "max_offsets_per_trigger": Param(None, type=["null", "integer"], description="Kafka source batch cap"),
        "starting_offsets": Param(
            None, type=["null", "string"], description="Kafka, first start only: earliest (job default) | latest"
        ),
        "dead_letter_topic": Param(None, type=["null", "string"], description="Kafka topic for quarantined messages"),
        "replace_running": Param(False, type="boolean", description="cancel active serving jobs first"),
        "require_first_batch": Param(True, type="boolean", description="wait for a written batch, not only RUNNING"),
        "wait_timeout_seconds": Param(600, type="integer", minimum=10, description="wait_for_streaming_job limit"),
    },
)
def sentiment_model_serving() -> None:
    @task
    def validate_mlflow(**context: Any) -> dict[str, Any]:
        params = context["params"]
        cfg = from_airflow_variables().with_overrides(
            serving_deploy_mode=params.get("deploy_mode"),
            serving_model_name=params.get("model_name"),
            serving_model_stage=params.get("model_stage"),
            serving_source_type=params.get("source_type"),
        )
        health = check_mlflow(cfg)
        return {"config": cfg.as_dict(), "run_tag": run_tag(context), "mlflow": health}

    @task
    def get_model_to_serve(**context: Any) -> dict[str, Any]:
        cfg, _ = pulled_config(context["ti"], FIRST_TASK)
        return serving.model_to_serve(cfg)

    @task
    def deploy_streaming_job(**context: Any) -> dict[str, Any]:
        cfg, started = pulled_config(context["ti"], FIRST_TASK)
        params = context["params"]
        job = serving.build_serving_job(
            cfg,
            started["run_tag"],
            input_path=params.get("input_path"),
            max_files_per_trigger=params.get("max_files_per_trigger"),
            max_offsets_per_trigger=params.get("max_offsets_per_trigger"),
            starting_offsets=params.get("starting_offsets"),
            dead_letter_topic=params.get("dead_letter_topic"),
        )
        # A retried deploy attaches to the job it submitted before; replace_running never cancels it.
        return serving.deploy_serving_job(
            cfg, job, replace_running=bool(params["replace_running"]), attempt=task_attempt(context)
        )

    @task
    def notify(**context: Any) -> str:
        cfg, _ = pulled_config(context["ti"], FIRST_TASK)
        ti = context["ti"]
        model = ti.xcom_pull(task_ids="get_model_to_serve")
        deployment = ti.xcom_pull(task_ids="deploy_streaming_job")
        waited = ti.xcom_pull(task_ids="wait_for_streaming_job")
        message = reports.serving_message(cfg.backend, cfg.serving_source_type, model, deployment, waited)
        serving.log.info("NOTIFICATION: %s", message)
        return message

    # Deferred: the wait runs in the triggerer (inline under `airflow dags test`), not in a worker slot.
    wait_for_streaming_job = ServingJobWaitOperator(
        task_id="wait_for_streaming_job", config_task_id=FIRST_TASK, deploy_task_id="deploy_streaming_job"
    )
    chain(validate_mlflow(), get_model_to_serve(), deploy_streaming_job(), wait_for_streaming_job, notify())


sentiment_model_serving()
