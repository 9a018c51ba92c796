"""Deferred waits: the serving DAG's wait for its streaming job runs in the triggerer, not in a worker
slot (a first batch can take minutes), like the provider's Dataproc sensors in deferrable mode.

The trigger polls with the same check as the blocking wait (tasks.serving.check_serving_job), in a
thread: the backends and stores are synchronous clients. Its arguments are plain values (the
configuration as a dict, an absolute deadline), so a triggerer restart resumes the same wait.
Killing the task does not cancel the serving job: the job is what the deploy delivered and is meant
to outlive the DAG run (stop it with the sentiment_serving_management DAG).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.tasks.common import TaskError
from sentiment_mlops.orchestration.tasks.serving import check_serving_job


class ServingJobTrigger(BaseTrigger):
    """Fires once serving job `job_id` is RUNNING with a batch written after `since` (epoch s; or only
    RUNNING without `require_first_batch`), or as an error when it ended or `deadline` (epoch s)
    passed. The event: {"status": "ok", "result": ...} or {"status": "error", "message": ...}."""

    def __init__(
        self,
        config: dict[str, Any],
        job_id: str,
        since: float,
        deadline: float,
        timeout_s: float,
        require_first_batch: bool = True,
        poll_s: float = 10,
    ) -> None:
        super().__init__()
        self.config, self.job_id, self.since, self.deadline = config, job_id, since, deadline
        self.timeout_s, self.require_first_batch, self.poll_s = timeout_s, require_first_batch, poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "config": self.config,
                "job_id": self.job_id,
                "since": self.since,
                "deadline": self.deadline,
                "timeout_s": self.timeout_s,
                "require_first_batch": self.require_first_batch,
                "poll_s": self.poll_s,
            },
        )

    def _check(self) -> dict | None:
        timed_out = self.timeout_s if time.time() >= self.deadline else None
        cfg = AirflowConfig.from_dict(self.config)
        return check_serving_job(cfg, self.job_id, self.since, self.require_first_batch, timed_out)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                result = await asyncio.to_thread(self._check)
            except TaskError as exc:
                yield TriggerEvent({"status": "error", "message": str(exc)})
                return
            if result is not None:
                yield TriggerEvent({"status": "ok", "result": result})
                return
            await asyncio.sleep(self.poll_s)
