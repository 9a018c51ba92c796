"""Weekly multi-model training: full dataset and a cross-validated sample, on Dataproc or locally.

start -> validate_data -> check_mlflow_connection -> prepare_environment
      -> [train_models_full_dataset, train_models_with_cv] -> get_best_model_info
      -> generate_training_report -> send_completion_notification -> end

The backend comes from the Airflow Variable SENTIMENT_BACKEND (local | dataproc | dataproc-serverless);
see sentiment_mlops.orchestration.config for every Variable. The two training tasks are
DataprocSubmitJobOperator (deferrable) on Dataproc, submit the same jobs as Dataproc Serverless batches
(deferred on DataprocBatchTrigger) on dataproc-serverless, and run the very same Job dicts with the
local spark-submit runner (sentiment_mlops.backends.local.jobs) on the local backend
(sentiment_mlops.orchestration.operators.SentimentTrainingJobOperator).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, chain, dag, task

from sentiment_mlops.orchestration import dag_factories
from sentiment_mlops.orchestration.config import GCP_CONN_ID
from sentiment_mlops.orchestration.operators import SentimentTrainingJobOperator

DAG_ID = "sentiment_ml_training_pipeline"


@dag(
    dag_id=DAG_ID,
    description="Train LR / RF / LinearSVC on Sentiment140 (full data and CV sample), register, promote, report",
    schedule="0 3 * * 0",  # Sundays 03:00 UTC; trigger by hand any time
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=8),
    **dag_factories.dag_defaults(),
    tags=["sentiment", "training", "mlflow", "dataproc"],
    doc_md=__doc__,
    params={
        "input_path": Param(
            None, type=["null", "string"], description="training CSV (gs:// or local); default TRAINING_INPUT_PATH"
        ),
        "max_rows": Param(0, type="integer", minimum=0, description="random subset of at most N rows (0 = all)"),
        "models": Param("all", type="string", description="comma list of lr, rf, svc (or all)"),
        "min_rows": Param(100, type="integer", minimum=1, description="validate_data fails below this row estimate"),
    },
)
def sentiment_ml_training_pipeline() -> None:
    shared = dag_factories.training_tasks(DAG_ID)

    @task(multiple_outputs=True)
    def prepare_environment(**context: Any) -> dict[str, Any]:
        cfg, uploaded, jobs, outputs = dag_factories.build_training_jobs(context, DAG_ID)
        return {
            **uploaded,
            "job_full": jobs["full"],
            "job_cv": jobs["cv"],
            "outputs": outputs,
            "config": cfg.as_dict(),
            "gcp_region": cfg.gcp_region,
            "gcp_project_id": cfg.gcp_project_id or "",
        }

    prepared = prepare_environment()
    training = [
        SentimentTrainingJobOperator(
            task_id=task_id,
            job=prepared[job_key],
            region=prepared["gcp_region"],
            project_id=prepared["gcp_project_id"],
            sentiment_config=prepared["config"],
            gcp_conn_id=GCP_CONN_ID,
            # Training runs for an hour or more on the full data: wait in the triggerer, not a worker slot.
            deferrable=True,
            polling_interval_seconds=60,
            execution_timeout=timedelta(hours=6),
        )
        for task_id, job_key in (("train_models_full_dataset", "job_full"), ("train_models_with_cv", "job_cv"))
    ]
    chain(
        shared.start(),
        shared.validate_data(),
        shared.check_mlflow_connection(),
        prepared,
        training,
        shared.get_best_model_info(),
        shared.generate_training_report(),
        shared.send_completion_notification(),
        EmptyOperator(task_id="end"),
    )


sentiment_ml_training_pipeline()
