"""What a task takes from its Airflow context: the run's configuration (from the first task's XCom),
the run tag, and the job id of this attempt. Shared by the DAG files and the DAG factories."""

from __future__ import annotations

from typing import Any

from sentiment_mlops.core.naming import make_run_tag, with_job_id
from sentiment_mlops.orchestration.config import AirflowConfig


def pulled_config(ti: Any, task_id: str) -> tuple[AirflowConfig, dict[str, Any]]:
    """The configuration the DAG's first task `task_id` read from the Variables (its XCom key
    `config`), and all that task returned. Later tasks pull it instead of reading the Variables again,
    so one DAG run sees one configuration."""
    started = ti.xcom_pull(task_ids=task_id)
    return AirflowConfig.from_dict(started["config"]), started


def run_tag(context: dict[str, Any]) -> str:
    """The DAG run's tag (see core.naming.make_run_tag), from its run_id and logical time."""
    return make_run_tag(context["run_id"], getattr(context["dag_run"], "run_after", None))


def job_for_attempt(job: dict[str, Any], try_number: int) -> dict[str, Any]:
    """`job` with `-t<try_number>` added to its id: Dataproc job ids are unique, so a retry needs a fresh one."""
    return with_job_id(job, f"{job['reference']['job_id']}-t{try_number}")
