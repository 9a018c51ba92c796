"""Model monitoring (hourly): drift and live accuracy of the served model; alert and retrain.

start -> measure_model -> alert_fired -> notify_alert -> retraining_enabled -> trigger_retraining

measure_model reads the last `monitoring_window_hours` of predictions (gs://{GCS_BUCKET}-predictions/
predictions/date=D/), computes PSI per feature against each model version's reference profile and the
accuracy on labelled rows, logs them to MLflow (experiment `monitoring_experiment`), writes a JSON + PNG
report to gs://{GCS_BUCKET}-predictions/monitoring/model/ and pushes the gauges to
`monitoring_pushgateway_url`. When a threshold is crossed (and no alert fired within
`monitoring_alert_cooldown_hours`), the alert goes to the configured channels and the DAG
`monitoring_retrain_dag_id` is triggered with conf {"reason": ..., "triggered_by": ..., ...}.
Variables and defaults: sentiment_mlops.orchestration.monitoring_config; channels: .notifications.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import chain, dag, task

from sentiment_mlops.orchestration import dag_factories, monitoring_config, notifications
from sentiment_mlops.orchestration.config import AirflowConfig, from_airflow_variables
from sentiment_mlops.orchestration.task_context import run_tag
from sentiment_mlops.orchestration.tasks import monitoring

DAG_ID = "sentiment_model_monitoring"


@dag(
    dag_id=DAG_ID,
    description="Drift (PSI) and live accuracy of the served model; alert and trigger retraining",
    schedule="@hourly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    **dag_factories.dag_defaults(),
    tags=["sentiment", "monitoring", "drift"],
    doc_md=__doc__,
)
def sentiment_model_monitoring() -> None:
    @task
    def start(**context: Any) -> dict[str, Any]:
        cfg, mcfg = from_airflow_variables(), monitoring_config.from_airflow_variables()
        return {"config": cfg.as_dict(), "monitoring": mcfg.as_dict(), "run_tag": run_tag(context)}

    @task
    def measure_model(**context: Any) -> dict[str, Any]:
        started = context["ti"].xcom_pull(task_ids="start")
        mcfg = monitoring_config.MonitoringConfig.from_dict(started["monitoring"])
        return monitoring.run_monitoring(AirflowConfig.from_dict(started["config"]), mcfg, started["run_tag"])

    @task.short_circuit
    def alert_fired(**context: Any) -> bool:
        return bool(context["ti"].xcom_pull(task_ids="measure_model")["alert"]["fire"])

    @task
    def notify_alert(**context: Any) -> dict[str, str]:
        ti = context["ti"]
        retrain = ti.xcom_pull(task_ids="start")["monitoring"]["retrain_dag_id"]
        subject, body = monitoring.alert_message(ti.xcom_pull(task_ids="measure_model"), retrain)
        return notifications.send(subject, body, context)

    @task.short_circuit
    def retraining_enabled(**context: Any) -> bool:
        return bool(context["ti"].xcom_pull(task_ids="start")["monitoring"]["retrain_dag_id"])

    trigger_retraining = TriggerDagRunOperator(
        task_id="trigger_retraining",
        trigger_dag_id="{{ ti.xcom_pull(task_ids='start')['monitoring']['retrain_dag_id'] }}",
        conf={
            "reason": "{{ ti.xcom_pull(task_ids='measure_model')['alert']['reason'] }}",
            "triggered_by": DAG_ID,
            "monitoring_run_id": "{{ run_id }}",
            "monitoring_report": "{{ ti.xcom_pull(task_ids='measure_model')['json_uri'] }}",
        },
        wait_for_completion=False,
    )

    chain(start(), measure_model(), alert_fired(), notify_alert(), retraining_enabled(), trigger_retraining)


sentiment_model_monitoring()
