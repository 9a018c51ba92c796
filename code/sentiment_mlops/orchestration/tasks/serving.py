"""The serving DAG's tasks: the model to serve, the streaming job, its deployment and first batch."""

from __future__ import annotations

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
from sentiment_mlops.orchestration.backends import job_backend, store_for
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.tasks.common import TaskError, dataproc_target, job_arg, serving_paths, tail_text

log = logging.getLogger(__name__)

SERVING_LABEL = {"app": APP_SERVING}
DATAPROC_TERMINAL = frozenset({"DONE", "ERROR", "CANCELLED"})


def model_to_serve(cfg: AirflowConfig, client: Any = None) -> dict:
    """The registry version the serving job will load (name, version, alias, run, URI, model type and
    test accuracy tags); fails when it does not exist."""
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.registry import lookups as registry

    client = client or MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)
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
        extra=extra,
    )
    labels = {
        "source": cfg.serving_source_type,
        "model": label_value(cfg.serving_model_name),
        "run": label_value(run_tag),
    }
    return job_spec.serving_job(
        dataproc_target(cfg),
        args,
        kafka=kafka,
        labels=labels,
        job_id=f"sentiment-serving-{cfg.serving_source_type}-{run_tag}",
    )


def deploy_serving_job(
    cfg: AirflowConfig, job: dict[str, Any], replace_running: bool = False, backend: JobBackend | None = None
) -> dict:
    """test mode: validate and log the exact job, submit nothing. production: submit it, after
    refusing (or, with `replace_running`, cancelling) serving jobs already active, because two
    streams on one checkpoint corrupt it."""
    job_spec.validate_job(job)
    job_json = json.dumps(job, indent=2, sort_keys=True)
    job_id = job["reference"]["job_id"]
    if cfg.serving_deploy_mode != "production":
        log.info(
            "serving_deploy_mode=test: this job would be submitted on the %s backend (nothing submitted):\n%s",
            cfg.backend,
            job_json,
        )
        return {"mode": "test", "submitted": False, "job_id": job_id, "job": job, "replaced": []}
    backend = backend or job_backend(cfg)
    active = backend.list_active(SERVING_LABEL)
    replaced = []
    if active and not replace_running:
        ids = ", ".join(j["job_id"] for j in active)
        raise TaskError(
            f"serving job(s) already active: {ids}. Stop them with the sentiment_serving_management DAG "
            "(param stop_job_id) or trigger with replace_running=true"
        )
    for running in active:
        log.info("cancelling active serving job %s before the new deployment", running["job_id"])
        replaced.append(backend.cancel(running["job_id"])["job_id"])
    log.info("submitting serving job on the %s backend:\n%s", cfg.backend, job_json)
    submitted = backend.submit(job, wait=False)
    return {
        "mode": "production",
        "submitted": True,
        "job_id": submitted["job_id"],
        "state": submitted["state"],
        "driver_output": submitted["driver_output"],
        "job": job,
        "replaced": replaced,
    }


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
    fails with the driver log tail."""
    backend = backend or job_backend(cfg)
    store = store or store_for(cfg)
    paths = serving_paths(cfg)
    deadline = clock() + timeout_s
    started = time.time()
    while True:
        job = backend.get(job_id)
        state = job["state"]
        metrics_uri = job_arg(job, "--metrics-path") or paths["metrics"]
        predictions_uri = join_uri(job_arg(job, "--output-path") or paths["output"], "predictions")
        if state in DATAPROC_TERMINAL:
            raise TaskError(
                f"serving job {job_id} ended {state}: {job['details']}" + tail_text(backend.log_tail(job_id, 50))
            )
        if state == "RUNNING":
            if not require_first_batch:
                return {"job_id": job_id, "state": state, "first_batch": None}
            batch = first_batch_since(
                store, metrics_uri, predictions_uri, _parse_time(job.get("submitted_at")) or started
            )
            if batch is not None:
                log.info("serving job %s is RUNNING; first batch: %s", job_id, batch)
                return {"job_id": job_id, "state": state, "first_batch": batch}
        if clock() >= deadline:
            waited = "its first batch" if state == "RUNNING" else "RUNNING"
            raise TaskError(
                f"serving job {job_id} is {state} and did not reach {waited} within {timeout_s:.0f}s "
                f"(input: {job_arg(job, '--input-path') or job_arg(job, '--kafka-topic')})"
                + tail_text(backend.log_tail(job_id, 50))
            )
        sleep(poll_s)
