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

from sentiment_mlops import dag_tasks
from sentiment_mlops.airflow_config import AirflowConfig, from_airflow_variables

DAG_ID = "sentiment_training_local"


def _config(ti: Any) -> tuple[AirflowConfig, dict[str, Any]]:
    started = ti.xcom_pull(task_ids="start")
    return AirflowConfig.from_dict(started["config"]), started


@dag(
    dag_id=DAG_ID,
    description="Local (spark-submit) multi-model training for development, with small-data parameters",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=4),
    default_args={"owner": "mlops", "retries": 0},
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
    @task(multiple_outputs=True)
    def start(**context: Any) -> dict[str, Any]:
        cfg = from_airflow_variables(backend_override="local")
        run_tag = dag_tasks.make_run_tag(context["run_id"], getattr(context["dag_run"], "run_after", None))
        return {
            "config": cfg.as_dict(),
            "run_tag": run_tag,
            "input_path": context["params"].get("input_path") or cfg.training_input_path,
        }

    @task(multiple_outputs=True)
    def validate_data(**context: Any) -> dict[str, Any]:
        cfg, started = _config(context["ti"])
        return dag_tasks.validate_input(cfg, started["input_path"], min_rows=int(context["params"]["min_rows"]))

    @task
    def check_mlflow_connection(**context: Any) -> dict[str, Any]:
        cfg, _ = _config(context["ti"])
        return dag_tasks.check_mlflow(cfg)

    @task(multiple_outputs=True)
    def prepare_environment(**context: Any) -> dict[str, Any]:
        cfg, started = _config(context["ti"])
        params = context["params"]
        uploaded = dag_tasks.prepare_environment(cfg)
        variant = "cv" if params["enable_cv"] else "full"
        jobs = dag_tasks.build_training_jobs(
            cfg,
            input_uri=started["input_path"],
            run_tag=started["run_tag"],
            variants=(variant,),
            max_rows=int(params["max_rows"]),
            models=params["models"],
            overrides={"sample_fraction": params.get("sample_fraction"), "num_features": params.get("num_features")},
            force_promote=bool(params["force_promote"]),
            dag_id=DAG_ID,
        )
        return {**uploaded, "job": jobs[variant], "outputs": {variant: dag_tasks.job_arg(jobs[variant], "--output")}}

    @task
    def train_models(**context: Any) -> dict[str, Any]:
        cfg, _ = _config(context["ti"])
        job = context["ti"].xcom_pull(task_ids="prepare_environment", key="job")
        job = dag_tasks.with_job_id(job, f"{job['reference']['job_id']}-t{context['ti'].try_number}")
        return dag_tasks.run_job(cfg, job, timeout=60.0 * int(context["params"]["timeout_minutes"]))

    @task(multiple_outputs=True)
    def get_best_model_info(**context: Any) -> dict[str, Any]:
        cfg, _ = _config(context["ti"])
        outputs = context["ti"].xcom_pull(task_ids="prepare_environment", key="outputs")
        summaries = {v: dag_tasks.read_training_summary(cfg, uri) for v, uri in outputs.items()}
        return dag_tasks.best_model_info(cfg, summaries)

    @task
    def generate_training_report(**context: Any) -> dict[str, Any]:
        cfg, started = _config(context["ti"])
        ti = context["ti"]
        outputs = ti.xcom_pull(task_ids="prepare_environment", key="outputs")
        return dag_tasks.generate_training_report(
            cfg, started["run_tag"], outputs, ti.xcom_pull(task_ids="get_best_model_info")
        )

    chain(
        start(),
        validate_data(),
        check_mlflow_connection(),
        prepare_environment(),
        train_models(),
        get_best_model_info(),
        generate_training_report(),
        EmptyOperator(task_id="end"),
    )


sentiment_training_local()
