"""What every DAG's tasks share: the task error, the input and MLflow checks, staging the job code,
running a job to its end, and where jobs run and write."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from sentiment_mlops import jobs as job_spec
from sentiment_mlops.core.job_backend import JobBackend
from sentiment_mlops.core.storage import is_gcs_uri, join_uri
from sentiment_mlops.core.store import Store
from sentiment_mlops.orchestration.backends import job_backend, store_for
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.job_attempts import TaskAttempt, job_for_attempt

log = logging.getLogger(__name__)

SAMPLE_BYTES = 1 << 20  # enough lines for a stable bytes-per-row estimate, cheap on GCS


class TaskError(RuntimeError):
    """A failure the task reports as-is (the message is the whole story, log tail included)."""


def dataproc_target(cfg: AirflowConfig) -> job_spec.DataprocTarget:
    """Where jobs run. The local and serverless backends need a target too (same dicts), with a
    placeholder cluster name (a batch drops the placement)."""
    return job_spec.DataprocTarget(
        project_id=cfg.gcp_project_id or "",
        region=cfg.gcp_region,
        cluster_name=cfg.dataproc_cluster_name or ("serverless" if cfg.is_serverless else "local"),
        code_uri=job_spec.default_code_uri(cfg.gcs_bucket),
    )


def serving_paths(cfg: AirflowConfig, source_type: str | None = None) -> dict[str, str]:
    """The builder's serving paths for this config (source type default: the config's), plus where
    predictions and monitoring reports go."""
    paths = job_spec.serving_paths(cfg.gcs_bucket, source_type or cfg.serving_source_type)
    buckets = job_spec.bucket_names(cfg.gcs_bucket)
    return {
        **paths,
        "predictions": join_uri(paths["output"], "predictions"),
        "monitoring": f"gs://{buckets['predictions']}/monitoring",
    }


def _sample_csv(store: Store, input_uri: str) -> tuple[list[tuple[str, int]], bytes]:
    """The input's data files and the first MiB of the first one; fails on no file or no CSV."""
    try:
        files = [f for f in store.list_files(input_uri) if not f[0].endswith((".crc", ".zip"))]
    except (OSError, ValueError) as exc:
        raise TaskError(f"input {input_uri} cannot be listed: {exc}") from exc
    if not files:
        raise TaskError(f"input not found or empty: {input_uri}")
    first_uri, first_size = files[0]
    sample = store.read_bytes(first_uri, 0, min(SAMPLE_BYTES, first_size))
    if not sample or sum(size for _, size in files) == 0:
        raise TaskError(f"input {input_uri} is empty")
    first_line = sample.split(b"\n", 1)[0]
    if b"," not in first_line:
        # Only the shape goes into the error: task errors reach logs, XComs and notifications, and
        # the input's contents (tweets, possibly personal data) must not.
        raise TaskError(
            f"input {first_uri} does not look like CSV: its first line ({len(first_line)} bytes) has no comma"
        )
    return files, sample


def validate_input(cfg: AirflowConfig, input_uri: str, min_rows: int = 100, store: Store | None = None) -> dict:
    """The input exists and is not tiny; size in bytes and an estimated row count (from the mean
    line length of the first MiB, so a 240 MB CSV on GCS costs one ranged read)."""
    store = store or store_for(cfg)
    if not cfg.is_local and not is_gcs_uri(input_uri):
        raise TaskError(f"input {input_uri!r} must be a gs:// URI on the dataproc backend")
    files, sample = _sample_csv(store, input_uri)
    total = sum(size for _, size in files)
    lines = sample.count(b"\n") + (0 if sample.endswith(b"\n") else 1)
    exact = len(files) == 1 and files[0][1] <= SAMPLE_BYTES
    row_estimate = lines if exact else int(round(total / (len(sample) / lines)))
    if row_estimate < min_rows:
        raise TaskError(f"input {input_uri} has about {row_estimate} rows; at least {min_rows} are needed")
    result = {
        "input_path": input_uri,
        "files": len(files),
        "size_bytes": total,
        "size_mb": round(total / 1e6, 2),
        "row_estimate": row_estimate,
        "row_estimate_exact": exact,
    }
    log.info("input %s: %d file(s), %.1f MB, about %d rows", input_uri, len(files), total / 1e6, row_estimate)
    return result


def mlflow_client(cfg: AirflowConfig) -> Any:
    """The tasks' MLflow client. Where the workers have no MLFLOW_TRACKING_* credentials in their
    environment (Cloud Composer) and MLFLOW_CREDENTIALS_SECRET is set, they come from that secret, as
    for the Dataproc jobs."""
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.registry import mlflow_credentials

    have = os.environ.get("MLFLOW_TRACKING_TOKEN") or os.environ.get("MLFLOW_TRACKING_USERNAME")
    if cfg.mlflow_credentials_secret and not have:
        try:
            mlflow_credentials.apply_secret(cfg.mlflow_credentials_secret)
        except (ValueError, RuntimeError) as exc:
            raise TaskError(f"{exc} (Airflow Variable MLFLOW_CREDENTIALS_SECRET)") from exc
    return MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)


def check_mlflow(cfg: AirflowConfig) -> dict:
    """`/health` of the tracking server, then one registry call: both must answer."""
    from sentiment_mlops.registry import lookups as registry

    client = mlflow_client(cfg)
    try:
        registry.check_tracking_server(cfg.mlflow_tracking_uri)
        models = client.search_registered_models(max_results=100)
    except registry.MlflowAuthError as exc:
        raise TaskError(f"{exc} (in the environment of the Airflow workers)") from exc
    except registry.MlflowUnreachableError as exc:
        raise TaskError(f"{exc} (Airflow Variable MLFLOW_TRACKING_URI / MLFLOW_VM_IP)") from exc
    except Exception as exc:  # the registry API failing behind a healthy /health
        raise TaskError(f"MLflow at {cfg.mlflow_tracking_uri} answers /health but not the registry: {exc}") from exc
    return {"tracking_uri": cfg.mlflow_tracking_uri, "healthy": True, "registered_models": len(models)}


def code_dir() -> Path:
    """The folder with the job entry scripts: SENTIMENT_CODE_DIR, else `code/` (the parent of the
    package in this repository and in an editable install)."""
    override = os.environ.get("SENTIMENT_CODE_DIR")
    # code/sentiment_mlops/orchestration/tasks/common.py -> code/
    return Path(override) if override else Path(__file__).resolve().parents[3]


def prepare_environment(cfg: AirflowConfig, store: Store | None = None, source_dir: Path | None = None) -> dict:
    """Upload the entry scripts and a fresh package zip to `gs://{GCS_BUCKET}-code/jobs`; on the
    local backend that is a copy into the local bucket folder. Every run uploads, so a job never runs
    yesterday's code."""
    store = store or store_for(cfg)
    source_dir = source_dir or code_dir()
    code_uri = job_spec.default_code_uri(cfg.gcs_bucket)
    uploaded = []
    with tempfile.TemporaryDirectory() as tmp:
        from sentiment_mlops.jobs.packaging import build_package_zip

        files = [source_dir / job_spec.TRAINING_ENTRY, source_dir / job_spec.SERVING_ENTRY]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise TaskError(f"job entry script(s) missing: {', '.join(missing)}")
        files.append(build_package_zip(Path(tmp) / job_spec.PACKAGE_ZIP))
        for path in files:
            uploaded.append(store.upload_file(path, join_uri(code_uri, path.name)))
            log.info("uploaded %s -> %s", path, uploaded[-1])
    return {"code_uri": code_uri, "uploaded": uploaded}


def job_arg(job_or_args: dict[str, Any] | list[str], flag: str) -> str | None:
    """The value of `--flag=value` (or `--flag value`) in a job dict's or a job summary's args."""
    if isinstance(job_or_args, dict):
        args = job_or_args.get("args") or (job_or_args.get("pyspark_job") or {}).get("args") or []
    else:
        args = job_or_args
    for i, arg in enumerate(args):
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def tail_text(lines: list[str]) -> str:
    """Driver log lines as the end of an error message (nothing when there are none)."""
    return ("\n--- driver log (last lines) ---\n" + "\n".join(lines)) if lines else ""


def run_job(
    cfg: AirflowConfig,
    job: dict[str, Any],
    timeout: float | None = None,
    backend: JobBackend | None = None,
    attempt: TaskAttempt | None = None,
) -> dict:
    """Submit `job` and wait for it; a job that does not end DONE fails with its driver log tail.
    With `attempt` (the task instance submitting), a retry attaches to the job an earlier attempt
    started, or resubmits under a new id when that one failed (see orchestration.job_attempts)."""
    backend = backend or job_backend(cfg)
    request_id = None
    if attempt is not None:
        job, existing = job_for_attempt(backend.find, job, attempt.try_number)
        request_id = attempt.request_id(job["reference"]["job_id"])
        if existing is not None:
            log.info("attempt %d attaches to job %s (%s)", attempt.try_number, existing["job_id"], existing["state"])
    job_id = (job.get("reference") or {}).get("job_id", "?")
    log.info("submitting %s on the %s backend:\n%s", job_id, cfg.backend, json.dumps(job, indent=2, sort_keys=True))
    try:
        result = backend.submit(job, wait=True, timeout=timeout, request_id=request_id)
    except Exception as exc:
        tail = backend.log_tail(job_id, 50) if job_id != "?" else []
        raise TaskError(f"job {job_id} failed: {exc}" + tail_text(tail)) from exc
    if result["state"] != "DONE":
        tail = backend.log_tail(result["job_id"], 50)
        raise TaskError(f"job {result['job_id']} ended {result['state']}: {result['details']}" + tail_text(tail))
    log.info("job %s DONE (driver log: %s)", result["job_id"], result["driver_output"])
    return result
