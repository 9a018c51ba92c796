"""Development training on the local backend only (spark-submit on this machine), whatever
SENTIMENT_BACKEND says: the same job builder, MLflow registry and report as the weekly pipeline,
one training job, with small-data knobs in the trigger form.

start -> validate_data -> check_mlflow_connection -> prepare_environment -> train_models
      -> get_best_model_info -> generate_training_report -> end

`input_path` may be a local path or a gs:// URI (mapped to the local bucket folders).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, chain, dag, task

from sentiment_mlops.orchestration import dag_factories
from sentiment_mlops.orchestration.task_context import task_attempt
from sentiment_mlops.orchestration.tasks.common import run_job

DAG_ID = "sentiment_training_local"


@dag(
    dag_id=DAG_ID,
    description="Local (spark-submit) multi-model training for development, with small-data parameters",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=4),
    **dag_factories.dag_defaults(),
    tags=["sentiment", "training", "local"],
    doc_md=__doc__,
    params={
        "input_path": Param(
            None, type=["null", "string"], description="training CSV (local path or gs://); default TRAINING_INPUT_PATH"
        ),
        "max_rows": Param(20000, type="integer", minimum=0, description="random subset of at most N rows (0 = all)"),
        "models": Param("all", type="string", description="comma list of lr, rf, svc (or all)"),
        "enable_cv": Param(False, type="boolean", description="cross-validate (the pipeline's cv variant)"),
        "sample_fraction": Param(None, type=["null", "number"], description="fraction of rows (default: variant's)"),
        "num_features": Param(None, type=["null", "integer"], description="HashingTF size (default: variant's)"),
        "force_promote": Param(
            False, type="boolean", description="promote the best model to @production whatever the accuracy gate says"
        ),
        "min_rows": Param(100, type="integer", minimum=1, description="validate_data fails below this row estimate"),
        "timeout_minutes": Param(120, type="integer", minimum=1, description="cancel the training job after this"),
    },
)
def sentiment_training_local() -> None:
    shared = dag_factories.training_tasks(DAG_ID, backend_override="local")

    @task(multiple_outputs=True)
    def prepare_environment(**context: Any) -> dict[str, Any]:
        params = context["params"]
        variant = "cv" if params["enable_cv"] else "full"
        _, uploaded, jobs, outputs = dag_factories.build_training_jobs(
            context,
            DAG_ID,
            variants=(variant,),
            overrides={"sample_fraction": params.get("sample_fraction"), "num_features": params.get("num_features")},
            force_promote=bool(params["force_promote"]),
        )
        return {**uploaded, "job": jobs[variant], "outputs": outputs}

    @task
    def train_models(**context: Any) -> dict[str, Any]:
        cfg, _ = dag_factories.pulled_config(context["ti"])
        job = context["ti"].xcom_pull(task_ids="prepare_environment", key="job")
        # A retry attaches to the job an earlier attempt started (or resubmits it if it failed).
        timeout = 60.0 * int(context["params"]["timeout_minutes"])
        return run_job(cfg, job, timeout=timeout, attempt=task_attempt(context))

    chain(
        shared.start(),
        shared.validate_data(),
        shared.check_mlflow_connection(),
        prepare_environment(),
        train_models(),
        shared.get_best_model_info(),
        shared.generate_training_report(),
        EmptyOperator(task_id="end"),
    )


sentiment_training_local()
