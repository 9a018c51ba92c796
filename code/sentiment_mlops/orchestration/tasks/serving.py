"""The serving DAG's tasks: the model to serve, the streaming job, its deployment and first batch."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sentiment_mlops import jobs as job_spec
from sentiment_mlops.core.job_backend import JobBackend
from sentiment_mlops.core.naming import APP_SERVING, label_value
from sentiment_mlops.core.storage import join_uri
from sentiment_mlops.core.store import Store
from sentiment_mlops.orchestration.backends import job_backend, store_for, submission_for
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.job_attempts import TaskAttempt, attempt_ids, job_for_attempt
from sentiment_mlops.orchestration.tasks.common import (
    TaskError,
    dataproc_target,
    job_arg,
    mlflow_client,
    serving_paths,
    tail_text,
)

log = logging.getLogger(__name__)

SERVING_LABEL = {"app": APP_SERVING}
CHECKPOINT_LABEL = "checkpoint"  # at most one active serving job per value (see checkpoint_label)
DATAPROC_TERMINAL = frozenset({"DONE", "ERROR", "CANCELLED"})
CANCEL_WAIT_S = 600.0  # a replaced job's driver must stop before the new one starts


def model_to_serve(cfg: AirflowConfig, client: Any = None) -> dict:
    """The registry version the serving job will load (name, version, alias, run, URI, model type and
    test accuracy tags); fails when it does not exist."""
    from sentiment_mlops.registry import lookups as registry

    client = client or mlflow_client(cfg)
    resolved = registry.resolve_version(client, cfg.serving_model_name, cfg.serving_model_stage)
    if resolved is None:
        raise TaskError(
            f"model {registry.model_uri(cfg.serving_model_name, cfg.serving_model_stage)} not found in the MLflow "
            f"registry at {cfg.mlflow_tracking_uri}: no such alias, and no version in that stage "
            "(Variables serving_model_name / serving_model_stage); run the training pipeline first"
        )
    tags = dict(client.get_model_version(resolved.name, resolved.version).tags or {})
    return {
        "name": resolved.name,
        "version": resolved.version,
        "alias": resolved.alias,
        "run_id": resolved.run_id,
        "model_uri": resolved.requested_uri,
        "resolved_by": resolved.via,
        "model_type": tags.get("model_type"),
        "test_accuracy": tags.get("test_accuracy"),
    }


def build_serving_job(
    cfg: AirflowConfig,
    run_tag: str,
    input_path: str | None = None,
    max_files_per_trigger: int | None = None,
    max_offsets_per_trigger: int | None = None,
    starting_offsets: str | None = None,
    dead_letter_topic: str | None = None,
) -> dict[str, Any]:
    """The streaming serving job dict for this config's source (file or Kafka) and model; the
    optional arguments are the trigger form's per-run settings (None: the job's defaults)."""
    paths = serving_paths(cfg)
    kafka = cfg.serving_source_type == "kafka"
    extra = []
    if kafka and starting_offsets:
        extra.append(f"--starting-offsets={starting_offsets}")
    if kafka and dead_letter_topic:
        extra.append(f"--dead-letter-topic={dead_letter_topic}")
    args = job_spec.serving_args(
        source_type=cfg.serving_source_type,
        output_path=paths["output"],
        checkpoint=paths["checkpoint"],
        mlflow_uri=cfg.mlflow_tracking_uri,
        model_name=cfg.serving_model_name,
        model_stage=cfg.serving_model_stage,
        input_path=None if kafka else (input_path or paths["input"]),
        kafka_bootstrap=cfg.kafka_bootstrap_servers if kafka else None,
        kafka_topic=cfg.kafka_input_topic if kafka else None,
        batch_interval_seconds=cfg.serving_batch_interval,
        reload_interval_seconds=cfg.serving_reload_interval,
        write_kafka=kafka,
        kafka_output_topic=cfg.kafka_output_topic if kafka else None,
        max_files_per_trigger=max_files_per_trigger,
        max_offsets_per_trigger=max_offsets_per_trigger,
        metrics_path=paths["metrics"],
        metrics_port=cfg.serving_metrics_port,
        metrics_host=cfg.serving_metrics_host,
        pushgateway_url=cfg.serving_pushgateway_url,
        mlflow_credentials_secret=cfg.mlflow_credentials_secret or "",
        challenger_alias=cfg.serving_challenger_alias,
        extra=extra,
    )
    labels = {
        "source": cfg.serving_source_type,
        "model": label_value(cfg.serving_model_name),
        "run": label_value(run_tag),
        CHECKPOINT_LABEL: checkpoint_label(paths["checkpoint"]),
    }
    return job_spec.serving_job(
        dataproc_target(cfg),
        args,
        kafka=kafka,
        labels=labels,
        job_id=f"sentiment-serving-{cfg.serving_source_type}-{run_tag}",
    )


def checkpoint_label(checkpoint_uri: str) -> str:
    """The `checkpoint` label value of a serving job writing `checkpoint_uri`: `ckpt-` and 16 hex
    characters of its hash (a valid Dataproc label value, unlike the URI)."""
    return "ckpt-" + hashlib.sha256(checkpoint_uri.rstrip("/").encode()).hexdigest()[:16]


def _jobs_on_checkpoint(backend: JobBackend, job: dict[str, Any], own_ids: set[str]) -> list[dict]:
    """Active serving jobs writing `job`'s checkpoint (by label; unlabelled jobs of earlier releases
    by their --checkpoint argument), except the deploy's own (`own_ids`)."""
    label = job["labels"][CHECKPOINT_LABEL]
    checkpoint = job_arg(job, "--checkpoint")
    found = {j["job_id"]: j for j in backend.list_active({CHECKPOINT_LABEL: label})}
    for legacy in backend.list_active(SERVING_LABEL):
        if CHECKPOINT_LABEL not in legacy["labels"] and job_arg(legacy["args"], "--checkpoint") == checkpoint:
            found[legacy["job_id"]] = legacy
    return [j for job_id, j in sorted(found.items()) if job_id not in own_ids]


def cancel_and_wait(
    backend: JobBackend,
    job_id: str,
    timeout_s: float = CANCEL_WAIT_S,
    poll_s: float = 5,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Cancel `job_id` and return its summary once it has ended: on Dataproc a cancel returns while
    the driver still runs, and two drivers on one checkpoint delete each other's batch output.
    Fails (TaskError) when it has not ended within `timeout_s`."""
    job = backend.cancel(job_id)
    deadline = clock() + timeout_s
    while job["state"] not in DATAPROC_TERMINAL:
        if clock() >= deadline:
            raise TaskError(f"serving job {job_id} is still {job['state']} {timeout_s:.0f}s after its cancel")
        sleep(poll_s)
        job = backend.get(job_id)
    return job


def _deployed(job: dict[str, Any], submitted: dict[str, Any], replaced: list[str]) -> dict:
    return {
        "mode": "production",
        "submitted": True,
        "attached": bool(submitted.get("attached")),
        "job_id": submitted["job_id"],
        "state": submitted["state"],
        "driver_output": submitted["driver_output"],
        "job": job,
        "replaced": replaced,
    }


def deploy_serving_job(
    cfg: AirflowConfig,
    job: dict[str, Any],
    replace_running: bool = False,
    backend: JobBackend | None = None,
    attempt: TaskAttempt | None = None,
    **cancel_wait: Any,
) -> dict:
    """test mode: validate and log the exact job, submit nothing. production: submit it, after
    refusing (or, with `replace_running`, cancelling and waiting for the end of) the active serving
    jobs on its checkpoint, because two streams on one checkpoint corrupt it. With `attempt`, a
    retried deploy whose job is alive attaches to it (never cancels it) and a failed one is
    resubmitted under a new id (orchestration.job_attempts). `cancel_wait`: cancel_and_wait's
    timeout_s / poll_s / sleep / clock."""
    job_spec.validate_job(job)
    try:
        submission = submission_for(cfg, job)  # on dataproc-serverless the Batch, checked before any request
    except ValueError as exc:
        raise TaskError(f"serving job {job['reference']['job_id']} cannot be submitted: {exc}") from exc
    job_id = job["reference"]["job_id"]
    if cfg.serving_deploy_mode != "production":
        log.info(
            "serving_deploy_mode=test: this would be submitted on the %s backend (nothing submitted):\n%s",
            cfg.backend,
            json.dumps(submission, indent=2, sort_keys=True),
        )
        return {"mode": "test", "submitted": False, "job_id": job_id, "job": job, "replaced": []}
    backend = backend or job_backend(cfg)
    try_number = attempt.try_number if attempt else 1
    job, existing = job_for_attempt(backend.find, job, try_number)
    if existing is not None:
        log.info(
            "serving job %s of an earlier attempt is %s: attached, nothing cancelled",
            existing["job_id"],
            existing["state"],
        )
        return _deployed(job, {**existing, "attached": True}, [])
    others = _jobs_on_checkpoint(backend, job, set(attempt_ids(job_id, try_number)))
    if others and not replace_running:
        raise TaskError(
            f"serving job(s) already active on this checkpoint: {', '.join(j['job_id'] for j in others)}. Stop "
            "them with the sentiment_serving_management DAG (param stop_job_id) or trigger with replace_running=true"
        )
    replaced = []
    for running in others:
        log.info("cancelling serving job %s on the same checkpoint before the new deployment", running["job_id"])
        replaced.append(cancel_and_wait(backend, running["job_id"], **cancel_wait)["job_id"])
    log.info("submitting serving job on the %s backend:\n%s", cfg.backend, json.dumps(job, indent=2, sort_keys=True))
    request_id = attempt.request_id(job["reference"]["job_id"]) if attempt else None
    return _deployed(job, backend.submit(job, wait=False, request_id=request_id), replaced)


def read_batch_metrics(store: Store, metrics_uri: str, last: int = 5) -> list[dict]:
    """The newest `last` batch records: a folder of `batch-STREAM-NNNNNNNNNN.json` (the serving job's
    layout, GCS has no append) or a JSON-lines file."""
    files = [f for f in store.list_files(metrics_uri) if f[0].endswith((".json", ".jsonl"))]
    records: list[dict] = []
    for uri, _size in sorted(files)[-last:] if len(files) > 1 else files:
        for line in store.read_bytes(uri).decode("utf-8", errors="replace").splitlines():
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line being written
    records.sort(key=lambda r: (str(r.get("timestamp", "")), r.get("batch_id", 0)))
    return records[-last:]


def _parse_time(value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except (TypeError, ValueError):
        return 0.0


def first_batch_since(store: Store, metrics_uri: str, predictions_uri: str, since: float) -> dict | None:
    """A batch written after `since` (epoch s): a metrics record, else a new predictions file."""
    for record in reversed(read_batch_metrics(store, metrics_uri, last=3)):
        if _parse_time(record.get("timestamp")) >= since - 1:
            return {"kind": "metrics", **record}
    for uri, size in store.list_files(predictions_uri):
        if uri.endswith(".parquet") and store.modified(uri) >= since - 1:
            return {"kind": "predictions", "file": uri, "bytes": size}
    return None


def check_serving_job(
    cfg: AirflowConfig,
    job_id: str,
    since: float,
    require_first_batch: bool = True,
    timed_out_after: float | None = None,
    backend: JobBackend | None = None,
    store: Store | None = None,
) -> dict | None:
    """One look at a deployed serving job: its result once it is RUNNING and (with
    `require_first_batch`) has written a batch after `since` (epoch s, used when the job has no
    submit time); None to look again. A job that ended, or one not there yet when the wait's
    timeout (`timed_out_after` seconds) has passed, fails
    (TaskError, with the driver log tail). One poll of wait_for_serving_job and of the trigger."""
    backend = backend or job_backend(cfg)
    job = backend.get(job_id)
    state = job["state"]
    if state in DATAPROC_TERMINAL:
        raise TaskError(
            f"serving job {job_id} ended {state}: {job['details']}" + tail_text(backend.log_tail(job_id, 50))
        )
    if state == "RUNNING":
        if not require_first_batch:
            return {"job_id": job_id, "state": state, "first_batch": None}
        paths = serving_paths(cfg)
        metrics_uri = job_arg(job, "--metrics-path") or paths["metrics"]
        predictions_uri = join_uri(job_arg(job, "--output-path") or paths["output"], "predictions")
        submitted = _parse_time(job.get("submitted_at")) or since
        batch = first_batch_since(store or store_for(cfg), metrics_uri, predictions_uri, submitted)
        if batch is not None:
            log.info("serving job %s is RUNNING; first batch: %s", job_id, batch)
            return {"job_id": job_id, "state": state, "first_batch": batch}
    if timed_out_after is not None:
        waited = "its first batch" if state == "RUNNING" else "RUNNING"
        raise TaskError(
            f"serving job {job_id} is {state} and did not reach {waited} within {timed_out_after:.0f}s "
            f"(input: {job_arg(job, '--input-path') or job_arg(job, '--kafka-topic')})"
            + tail_text(backend.log_tail(job_id, 50))
        )
    return None


def wait_for_serving_job(
    cfg: AirflowConfig,
    job_id: str,
    timeout_s: float = 600,
    poll_s: float = 10,
    require_first_batch: bool = True,
    backend: JobBackend | None = None,
    store: Store | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Until the job is RUNNING and has written its first batch; a job that ends, or a timeout,
    fails with the driver log tail. Blocks (the DAG defers to triggers.ServingJobTrigger instead)."""
    backend = backend or job_backend(cfg)
    store = store or store_for(cfg)
    deadline = clock() + timeout_s
    started = time.time()
    while True:
        timed_out = timeout_s if clock() >= deadline else None
        result = check_serving_job(cfg, job_id, started, require_first_batch, timed_out, backend, store)
        if result is not None:
            return result
        sleep(poll_s)
