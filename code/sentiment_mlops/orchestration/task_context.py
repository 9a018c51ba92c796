"""What a task takes from its Airflow context: the run's configuration (from the first task's XCom),
the run tag, and which attempt of which task is running (for idempotent job submission). Shared by
the DAG files and the DAG factories."""

from __future__ import annotations

from typing import Any

from sentiment_mlops.core.naming import make_run_tag
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.job_attempts import TaskAttempt


def pulled_config(ti: Any, task_id: str) -> tuple[AirflowConfig, dict[str, Any]]:
    """The configuration the DAG's first task `task_id` read from the Variables (its XCom key
    `config`), and all that task returned. Later tasks pull it instead of reading the Variables again,
    so one DAG run sees one configuration."""
    started = ti.xcom_pull(task_ids=task_id)
    return AirflowConfig.from_dict(started["config"]), started


def run_tag(context: dict[str, Any]) -> str:
    """The DAG run's tag (see core.naming.make_run_tag), from its run_id and logical time."""
    return make_run_tag(context["run_id"], getattr(context["dag_run"], "run_after", None))


def task_attempt(context: dict[str, Any]) -> TaskAttempt:
    """Which task instance is running: DAG id, run id, task id and try number (see job_attempts)."""
    ti = context["ti"]
    return TaskAttempt(dag_id=ti.dag_id, run_id=context.get("run_id") or ti.run_id, task_id=ti.task_id,
                       try_number=int(ti.try_number or 1))  # fmt: skip
