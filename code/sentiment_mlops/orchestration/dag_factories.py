"""What the DAG files share: the arguments every DAG takes (:func:`dag_defaults`: owner, retries and the
failure notification), and the TaskFlow tasks of the training DAGs (sentiment_ml_training_pipeline,
sentiment_training_local).

`training_tasks(dag_id)` builds them for one DAG; the DAG file declares its own tasks (how it trains) and
the chain. Each task is a thin wrapper: the logic lives in sentiment_mlops.orchestration.tasks.training
(and .common). Tasks pull the configuration `start` read from the Variables (`pulled_config`) rather
than take it as an argument, so every graph stays a plain chain. Imported by the DAG files only (it
needs Airflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import task

from sentiment_mlops.orchestration import notifications, task_context
from sentiment_mlops.orchestration.config import AirflowConfig, from_airflow_variables
from sentiment_mlops.orchestration.tasks import common, reports, training

START_TASK = "start"


def dag_defaults(**default_args: Any) -> dict[str, Any]:
    """`@dag(..., **dag_defaults())`: every DAG's default_args: owner, retries (`default_args`
    overrides them) and the on_failure_callback that mails / posts a task's final failure to whoever
    the Connections name (see orchestration.notifications). On the tasks rather than the DAG: a task's
    callback runs in the task's process, which reads Connections and Variables on every deployment
    (and under `airflow dags test`), and it knows the error."""
    return {"default_args": {"owner": "mlops", "retries": 0, "on_failure_callback": notifications.on_failure,
                             **default_args}}  # fmt: skip


def pulled_config(ti: Any, task_id: str = START_TASK) -> tuple[AirflowConfig, dict[str, Any]]:
    """The configuration the training DAG's first task read from the Variables, and all it returned."""
    return task_context.pulled_config(ti, task_id)


def build_training_jobs(
    context: dict[str, Any], dag_id: str, **options: Any
) -> tuple[AirflowConfig, dict[str, Any], dict[str, dict[str, Any]], dict[str, str | None]]:
    """What prepare_environment does in every training DAG: stage the job code, then build this run's
    training jobs from `start`'s input path and run tag and the `max_rows` and `models` params
    (`options`: more tasks.training.build_training_jobs arguments). Returns the config, the staged
    code's URIs, the jobs by variant and their output URIs by variant."""
    cfg, started = pulled_config(context["ti"])
    params = context["params"]
    uploaded = common.prepare_environment(cfg)
    jobs = training.build_training_jobs(
        cfg,
        input_uri=started["input_path"],
        run_tag=started["run_tag"],
        max_rows=int(params["max_rows"]),
        models=params["models"],
        dag_id=dag_id,
        **options,
    )
    outputs = {variant: common.job_arg(job, "--output") for variant, job in jobs.items()}
    return cfg, uploaded, jobs, outputs


@dataclass(frozen=True)
class TrainingTasks:
    """The shared tasks of a training DAG; call one inside the DAG to add it (task id = attribute name)."""

    start: Any
    validate_data: Any
    check_mlflow_connection: Any
    get_best_model_info: Any
    generate_training_report: Any
    send_completion_notification: Any


def _checks(backend_override: str | None) -> tuple[Any, Any, Any]:
    """start (reads the Variables, names the run), validate_data and check_mlflow_connection."""

    @task(multiple_outputs=True)
    def start(**context: Any) -> dict[str, Any]:
        cfg = from_airflow_variables(backend_override=backend_override)  # fails here, naming a bad Variable
        run_tag = task_context.run_tag(context)
        # A run the monitoring DAG triggered says why in its conf; kept with the run's XCom.
        reason = (getattr(context.get("dag_run"), "conf", None) or {}).get("reason")
        return {
            "config": cfg.as_dict(),
            "run_tag": run_tag,
            "input_path": context["params"].get("input_path") or cfg.training_input_path,
            "trigger_reason": reason,
        }

    @task(multiple_outputs=True)
    def validate_data(**context: Any) -> dict[str, Any]:
        cfg, started = pulled_config(context["ti"])
        return common.validate_input(cfg, started["input_path"], min_rows=int(context["params"]["min_rows"]))

    @task
    def check_mlflow_connection(**context: Any) -> dict[str, Any]:
        cfg, _ = pulled_config(context["ti"])
        return common.check_mlflow(cfg)

    return start, validate_data, check_mlflow_connection


def _results(dag_id: str) -> tuple[Any, Any, Any]:
    """get_best_model_info, generate_training_report and send_completion_notification."""

    @task(multiple_outputs=True)
    def get_best_model_info(**context: Any) -> dict[str, Any]:
        cfg, _ = pulled_config(context["ti"])
        outputs = context["ti"].xcom_pull(task_ids="prepare_environment", key="outputs")
        summaries = {v: training.read_training_summary(cfg, uri) for v, uri in outputs.items()}
        return training.best_model_info(cfg, summaries)

    @task
    def generate_training_report(**context: Any) -> dict[str, Any]:
        cfg, started = pulled_config(context["ti"])
        ti = context["ti"]
        outputs = ti.xcom_pull(task_ids="prepare_environment", key="outputs")
        best = ti.xcom_pull(task_ids="get_best_model_info")
        return training.generate_training_report(cfg, started["run_tag"], outputs, best)

    @task
    def send_completion_notification(**context: Any) -> str:
        _, started = pulled_config(context["ti"])
        ti = context["ti"]
        message = reports.completion_message(
            dag_id,
            started["run_tag"],
            ti.xcom_pull(task_ids="validate_data"),
            ti.xcom_pull(task_ids="get_best_model_info"),
            ti.xcom_pull(task_ids="generate_training_report") or {},
        )
        # To the configured channels (email, Slack; none: the task log) and to XCom.
        notifications.send(f"[sentiment-mlops] training run {started['run_tag']} finished", message, context)
        return message

    return get_best_model_info, generate_training_report, send_completion_notification


def training_tasks(dag_id: str, *, backend_override: str | None = None) -> TrainingTasks:
    """The shared training tasks for DAG `dag_id`; `backend_override` makes `start` ignore
    SENTIMENT_BACKEND (the local development DAG passes "local")."""
    start, validate_data, check_mlflow_connection = _checks(backend_override)
    get_best_model_info, generate_training_report, send_completion_notification = _results(dag_id)
    return TrainingTasks(
        start=start,
        validate_data=validate_data,
        check_mlflow_connection=check_mlflow_connection,
        get_best_model_info=get_best_model_info,
        generate_training_report=generate_training_report,
        send_completion_notification=send_completion_notification,
    )
