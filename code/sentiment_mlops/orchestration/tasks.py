"""What the DAG tasks do, as plain functions over an :class:`AirflowConfig`.

The DAG files only declare the flow and call these, so every step is unit-testable without a scheduler.
Both backends go through the same code: a :class:`Store` (local bucket folders or GCS) for files and a
job backend (:mod:`sentiment_mlops.backends.local.jobs` or Dataproc) for Spark jobs; the Dataproc Job dicts
come from :mod:`sentiment_mlops.jobs.dataproc_spec` either way.

Heavy imports (mlflow, pyarrow, the Google clients, Airflow hooks) happen inside the functions:
Airflow imports this module whenever it parses a DAG file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sentiment_mlops.core.settings import DEFAULT_EXPERIMENT, DEFAULT_REGISTERED_MODEL_NAME, Settings, load_settings
from sentiment_mlops.core.storage import is_gcs_uri, join_uri, split_gcs_uri
from sentiment_mlops.jobs import dataproc_spec as dataproc_jobs
from sentiment_mlops.orchestration.config import AirflowConfig

log = logging.getLogger("sentiment_mlops.orchestration.tasks")

CV_EXPERIMENT = f"{DEFAULT_EXPERIMENT}-cv"
PARENT_RUN_NAME = "multimodel-training"  # training_job's parent run
BEST_MODEL_NAME = f"{DEFAULT_REGISTERED_MODEL_NAME}-best"
SERVING_LABEL = {"app": dataproc_jobs.APP_SERVING}
REPORT_NAME = "training_report.md"
SAMPLE_BYTES = 1 << 20  # enough lines for a stable bytes-per-row estimate, cheap on GCS

# The two training runs of the pipeline (issue "Airflow orchestration"): everything, and a cheaper
# cross-validated search on a sample.
TRAINING_VARIANTS: dict[str, dict[str, Any]] = {
    "full": {
        "sample_fraction": 1.0,
        "enable_cv": False,
        "num_features": 32768,
        "mlflow_experiment": DEFAULT_EXPERIMENT,
    },
    "cv": {
        "sample_fraction": 0.3,
        "enable_cv": True,
        "cv_folds": 2,
        "num_features": 16384,
        "mlflow_experiment": CV_EXPERIMENT,
    },
}

DATAPROC_TERMINAL = frozenset({"DONE", "ERROR", "CANCELLED"})


class TaskError(RuntimeError):
    """A failure the task reports as-is (the message is the whole story, log tail included)."""


# --------------------------------------------------------------------------------------------------
# Files: local bucket folders or GCS


class Store(Protocol):
    def list_files(self, uri: str) -> list[tuple[str, int]]: ...
    def read_bytes(self, uri: str, start: int = 0, length: int | None = None) -> bytes: ...
    def write_bytes(self, uri: str, data: bytes) -> str: ...
    def upload_file(self, path: Path, uri: str) -> str: ...
    def open_input(self, uri: str) -> BinaryIO: ...
    def modified(self, uri: str) -> float: ...


class LocalStore:
    """`gs://BUCKET/path` -> `Settings.bucket_root/BUCKET/path`; plain paths as they are."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings("local")

    def path(self, uri: str) -> Path:
        from sentiment_mlops.core.storage import local_path

        return local_path(uri, self.settings)

    def list_files(self, uri: str) -> list[tuple[str, int]]:
        """Files at `uri` (a file, or everything below a folder), skipping hidden and `_`/`.` entries
        the way Spark does (_SUCCESS, .crc files)."""
        root = self.path(uri)
        if root.is_file():
            return [(uri, root.stat().st_size)]
        if not root.is_dir():
            return []
        out = []
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not any(part.startswith((".", "_")) for part in rel.parts):
                out.append((join_uri(uri, rel.as_posix()), path.stat().st_size))
        return out

    def read_bytes(self, uri: str, start: int = 0, length: int | None = None) -> bytes:
        with open(self.path(uri), "rb") as handle:
            handle.seek(start)
            return handle.read() if length is None else handle.read(length)

    def write_bytes(self, uri: str, data: bytes) -> str:
        path = self.path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return uri

    def upload_file(self, path: Path, uri: str) -> str:
        dest = self.path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        return uri

    def open_input(self, uri: str) -> BinaryIO:
        return open(self.path(uri), "rb")

    def modified(self, uri: str) -> float:
        return self.path(uri).stat().st_mtime


class GcsStore:
    """google-cloud-storage through the Airflow connection (GCSHook), objects addressed as gs:// URIs."""

    def __init__(self, gcp_conn_id: str, client: Any = None) -> None:
        self.gcp_conn_id = gcp_conn_id
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from airflow.providers.google.cloud.hooks.gcs import GCSHook

            self._client = GCSHook(gcp_conn_id=self.gcp_conn_id).get_conn()
        return self._client

    def _blob(self, uri: str) -> Any:
        bucket, name = split_gcs_uri(uri)
        return self.client.bucket(bucket).blob(name)

    def list_files(self, uri: str) -> list[tuple[str, int]]:
        bucket, name = split_gcs_uri(uri)
        single = self.client.bucket(bucket).get_blob(name) if name else None
        if single is not None:
            return [(uri, int(single.size or 0))]
        prefix = f"{name.rstrip('/')}/" if name else ""
        out = []
        for blob in self.client.list_blobs(bucket, prefix=prefix):
            rel = blob.name[len(prefix) :]
            if rel and not blob.name.endswith("/") and not any(p.startswith((".", "_")) for p in rel.split("/")):
                out.append((f"gs://{bucket}/{blob.name}", int(blob.size or 0)))
        return out

    def read_bytes(self, uri: str, start: int = 0, length: int | None = None) -> bytes:
        end = None if length is None else start + length - 1  # inclusive in the GCS API
        return bytes(self._blob(uri).download_as_bytes(start=start, end=end))

    def write_bytes(self, uri: str, data: bytes) -> str:
        self._blob(uri).upload_from_string(data)
        return uri

    def upload_file(self, path: Path, uri: str) -> str:
        self._blob(uri).upload_from_filename(str(path))
        return uri

    def open_input(self, uri: str) -> BinaryIO:
        return self._blob(uri).open("rb")  # seekable: pyarrow reads only the Parquet footer

    def modified(self, uri: str) -> float:
        bucket, name = split_gcs_uri(uri)
        blob = self.client.bucket(bucket).get_blob(name)
        return blob.updated.timestamp() if blob is not None and blob.updated else 0.0


def store_for(cfg: AirflowConfig) -> Store:
    return LocalStore(load_settings("local")) if cfg.is_local else GcsStore(cfg.gcp_conn_id)


# --------------------------------------------------------------------------------------------------
# Jobs: local_jobs or Dataproc, one interface returning plain dicts (XCom-friendly)


def _job_summary(
    job_id: str, state: str, labels: dict[str, str], args: list[str], driver_output: str, details: str, **extra: Any
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "state": state,
        "labels": labels,
        "args": args,
        "driver_output": driver_output,
        "details": details,
        **extra,
    }


class LocalJobBackend:
    def __init__(self, controller: Any = None) -> None:
        from sentiment_mlops.backends.local import jobs as local_jobs

        self.lj = local_jobs
        self.controller = controller or local_jobs.controller()

    def _summary(self, record: Any) -> dict[str, Any]:
        return _job_summary(
            record.job_id,
            record.state,
            record.labels,
            list(record.job.get("pyspark_job", {}).get("args", [])),
            record.driver_output_uri,
            record.details,
            submitted_at=record.submitted_at,
            ended_at=record.ended_at,
        )

    def submit(self, job: dict[str, Any], wait: bool = False, timeout: float | None = None) -> dict[str, Any]:
        return self._summary(self.controller.submit(job, wait=wait, timeout=timeout))

    def get(self, job_id: str) -> dict[str, Any]:
        return self._summary(self.controller.get(job_id))

    def list_active(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return [self._summary(r) for r in self.controller.list_jobs("active", labels)]

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._summary(self.controller.cancel(job_id))

    def log_tail(self, job_id: str, n: int = 50) -> list[str]:
        return self.controller.log_tail(job_id, n)


class DataprocJobBackend:
    """DataprocHook / JobControllerClient, with driver logs read from GCS."""

    def __init__(self, cfg: AirflowConfig, hook: Any = None, store: Store | None = None) -> None:
        self.cfg = cfg
        self._hook = hook
        self.store = store or GcsStore(cfg.gcp_conn_id)

    @property
    def hook(self) -> Any:
        if self._hook is None:
            from airflow.providers.google.cloud.hooks.dataproc import DataprocHook

            self._hook = DataprocHook(gcp_conn_id=self.cfg.gcp_conn_id)
        return self._hook

    def _where(self) -> dict[str, str]:
        return {"project_id": str(self.cfg.gcp_project_id), "region": self.cfg.gcp_region}

    @staticmethod
    def _summary(job: Any) -> dict[str, Any]:
        status = job.status
        return _job_summary(
            job.reference.job_id,
            status.state.name if hasattr(status.state, "name") else str(status.state),
            dict(job.labels),
            list(job.pyspark_job.args),
            job.driver_output_resource_uri,
            status.details,
            submitted_at=(job.status_history[0].state_start_time.isoformat() if job.status_history else None),
        )

    def submit(self, job: dict[str, Any], wait: bool = False, timeout: float | None = None) -> dict[str, Any]:
        submitted = self.hook.submit_job(job=job, **self._where())
        job_id = submitted.reference.job_id
        if wait:
            self.hook.wait_for_job(job_id=job_id, wait_time=30, timeout=timeout, **self._where())
        return self.get(job_id)

    def get(self, job_id: str) -> dict[str, Any]:
        return self._summary(self.hook.get_job(job_id=job_id, **self._where()))

    def list_active(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        terms = ["status.state = ACTIVE", *(f"labels.{k} = {v}" for k, v in sorted(labels.items()))]
        client = self.hook.get_job_client(region=self.cfg.gcp_region)
        jobs = client.list_jobs(request={**self._where(), "filter": " AND ".join(terms)})
        return [self._summary(j) for j in jobs]

    def cancel(self, job_id: str) -> dict[str, Any]:
        self.hook.cancel_job(job_id=job_id, **self._where())
        return self.get(job_id)

    def log_tail(self, job_id: str, n: int = 50) -> list[str]:
        """The end of the driver output (`driveroutput.NNNNNNNNN` objects in the staging bucket)."""
        try:
            prefix = self.get(job_id)["driver_output"]
            parts = [f for f in self.store.list_files(prefix.rsplit("/", 1)[0]) if f[0].startswith(prefix)]
            if not parts:
                return []
            uri, size = sorted(parts)[-1]
            data = self.store.read_bytes(uri, start=max(0, size - 65536))
            return data.decode("utf-8", errors="replace").splitlines()[-n:]
        except Exception as exc:  # the tail decorates an error message; it must not replace it
            return [f"(driver log unavailable: {exc})"]


def job_backend(cfg: AirflowConfig) -> LocalJobBackend | DataprocJobBackend:
    return LocalJobBackend() if cfg.is_local else DataprocJobBackend(cfg)


# --------------------------------------------------------------------------------------------------
# Identifiers


def make_run_tag(run_id: str, when: datetime | None = None) -> str:
    """`20261129-011408-1a2b3c`: sortable, unique per DAG run, valid in job ids, labels and paths."""
    stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{hashlib.sha1(run_id.encode()).hexdigest()[:6]}"


def label_value(text: str) -> str:
    """A Dataproc label value: lower case letters, digits, '_' and '-', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def with_job_id(job: dict[str, Any], job_id: str) -> dict[str, Any]:
    """A copy of `job` with reference.job_id set (a retry needs a fresh id: Dataproc ids are unique)."""
    copy = json.loads(json.dumps(job))
    copy.setdefault("reference", {})["job_id"] = job_id[:100]
    return copy


def dataproc_target(cfg: AirflowConfig) -> dataproc_jobs.DataprocTarget:
    """Where jobs run. The local backend needs a target too (same dicts), with placeholder names."""
    return dataproc_jobs.DataprocTarget(
        project_id=cfg.gcp_project_id or "",
        region=cfg.gcp_region,
        cluster_name=cfg.dataproc_cluster_name or "local",
        code_uri=dataproc_jobs.default_code_uri(cfg.gcs_bucket),
    )


# --------------------------------------------------------------------------------------------------
# Training pipeline


def validate_input(cfg: AirflowConfig, input_uri: str, min_rows: int = 100, store: Store | None = None) -> dict:
    """The input exists and is not tiny; size in bytes and an estimated row count (from the mean
    line length of the first MiB, so a 240 MB CSV on GCS costs one ranged read)."""
    store = store or store_for(cfg)
    if not cfg.is_local and not is_gcs_uri(input_uri):
        raise TaskError(f"input {input_uri!r} must be a gs:// URI on the dataproc backend")
    try:
        files = [f for f in store.list_files(input_uri) if not f[0].endswith((".crc", ".zip"))]
    except (OSError, ValueError) as exc:
        raise TaskError(f"input {input_uri} cannot be listed: {exc}") from exc
    if not files:
        raise TaskError(f"input not found or empty: {input_uri}")
    total = sum(size for _, size in files)
    first_uri, first_size = files[0]
    sample = store.read_bytes(first_uri, 0, min(SAMPLE_BYTES, first_size))
    lines = sample.count(b"\n") + (0 if sample.endswith(b"\n") or not sample else 1)
    if lines == 0 or total == 0:
        raise TaskError(f"input {input_uri} is empty")
    first_line = sample.split(b"\n", 1)[0]
    if b"," not in first_line:
        raise TaskError(f"input {first_uri} does not look like CSV (first line has no comma): {first_line[:120]!r}")
    exact = len(files) == 1 and first_size <= SAMPLE_BYTES
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


def check_mlflow(cfg: AirflowConfig) -> dict:
    """`/health` of the tracking server, then one registry call: both must answer."""
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.registry import lookups as registry

    try:
        registry.check_tracking_server(cfg.mlflow_tracking_uri)
        client = MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)
        models = client.search_registered_models(max_results=100)
    except registry.MlflowUnreachableError as exc:
        raise TaskError(f"{exc} (Airflow Variable MLFLOW_TRACKING_URI / MLFLOW_VM_IP)") from exc
    except Exception as exc:  # the registry API failing behind a healthy /health
        raise TaskError(f"MLflow at {cfg.mlflow_tracking_uri} answers /health but not the registry: {exc}") from exc
    return {"tracking_uri": cfg.mlflow_tracking_uri, "healthy": True, "registered_models": len(models)}


def code_dir() -> Path:
    """The folder with the job entry scripts: SENTIMENT_CODE_DIR, else `code/` (the parent of the
    package in this repository and in an editable install)."""
    override = os.environ.get("SENTIMENT_CODE_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2]


def prepare_environment(cfg: AirflowConfig, store: Store | None = None, source_dir: Path | None = None) -> dict:
    """Upload the entry scripts and a fresh package zip to `gs://{GCS_BUCKET}-code/jobs`; on the
    local backend that is a copy into the local bucket folder. Every run uploads, so a job never runs
    yesterday's code."""
    store = store or store_for(cfg)
    source_dir = source_dir or code_dir()
    code_uri = dataproc_jobs.default_code_uri(cfg.gcs_bucket)
    uploaded = []
    with tempfile.TemporaryDirectory() as tmp:
        from sentiment_mlops.jobs.packaging import build_package_zip

        files = [source_dir / dataproc_jobs.TRAINING_ENTRY, source_dir / dataproc_jobs.SERVING_ENTRY]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise TaskError(f"job entry script(s) missing: {', '.join(missing)}")
        files.append(build_package_zip(Path(tmp) / dataproc_jobs.PACKAGE_ZIP))
        for path in files:
            uploaded.append(store.upload_file(path, join_uri(code_uri, path.name)))
            log.info("uploaded %s -> %s", path, uploaded[-1])
    return {"code_uri": code_uri, "uploaded": uploaded}


def training_root(cfg: AirflowConfig, run_tag: str) -> str:
    return dataproc_jobs.training_paths(cfg.gcs_bucket, run_tag)["output"]


def build_training_jobs(
    cfg: AirflowConfig,
    *,
    input_uri: str,
    run_tag: str,
    variants: Iterable[str] = ("full", "cv"),
    max_rows: int = 0,
    models: str = "all",
    overrides: dict[str, Any] | None = None,
    force_promote: bool = False,
    dag_id: str = "",
) -> dict[str, dict[str, Any]]:
    """One Dataproc Job dict per variant (see TRAINING_VARIANTS); `overrides` (e.g. enable_cv,
    num_features) apply to every variant; `force_promote` skips the promotion gate (small
    development samples never reach its minimum accuracy). Output:
    `gs://{b}-models/training/{run_tag}/{variant}`."""
    jobs = {}
    for variant in variants:
        if variant not in TRAINING_VARIANTS:
            raise ValueError(f"unknown training variant {variant!r}; allowed: {', '.join(TRAINING_VARIANTS)}")
        settings = {**TRAINING_VARIANTS[variant], **{k: v for k, v in (overrides or {}).items() if v is not None}}
        args = dataproc_jobs.training_args(
            input=input_uri,
            output=join_uri(training_root(cfg, run_tag), variant),
            mlflow_uri=cfg.mlflow_tracking_uri,
            registered_model_name=DEFAULT_REGISTERED_MODEL_NAME,
            max_rows=int(max_rows or 0),
            models=models or "all",
            extra=["--force-promote"] if force_promote else None,
            **settings,
        )
        labels = {"variant": variant, "run": label_value(run_tag)}
        if dag_id:
            labels["airflow-dag"] = label_value(dag_id)
        jobs[variant] = dataproc_jobs.training_job(
            dataproc_target(cfg), args, labels=labels, job_id=f"sentiment-training-{variant}-{run_tag}"
        )
    return jobs


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


def run_job(cfg: AirflowConfig, job: dict[str, Any], timeout: float | None = None, backend: Any = None) -> dict:
    """Submit `job` and wait for it; a job that does not end DONE fails with its driver log tail."""
    backend = backend or job_backend(cfg)
    job_id = (job.get("reference") or {}).get("job_id", "?")
    log.info("submitting %s on the %s backend:\n%s", job_id, cfg.backend, json.dumps(job, indent=2, sort_keys=True))
    try:
        result = backend.submit(job, wait=True, timeout=timeout)
    except Exception as exc:
        tail = backend.log_tail(job_id, 50) if job_id != "?" else []
        raise TaskError(f"job {job_id} failed: {exc}" + _tail_text(tail)) from exc
    if result["state"] != "DONE":
        tail = backend.log_tail(result["job_id"], 50)
        raise TaskError(f"job {result['job_id']} ended {result['state']}: {result['details']}" + _tail_text(tail))
    log.info("job %s DONE (driver log: %s)", result["job_id"], result["driver_output"])
    return result


def _tail_text(lines: list[str]) -> str:
    return ("\n--- driver log (last lines) ---\n" + "\n".join(lines)) if lines else ""


def read_training_summary(cfg: AirflowConfig, output_uri: str, store: Store | None = None) -> dict | None:
    store = store or store_for(cfg)
    try:
        return json.loads(store.read_bytes(join_uri(output_uri, "training_summary.json")))
    except (FileNotFoundError, ValueError):
        return None
    except Exception as exc:  # GCS NotFound and friends
        if type(exc).__name__ == "NotFound":
            return None
        raise


def best_model_info(cfg: AirflowConfig, summaries: dict[str, dict] | None = None, client: Any = None) -> dict:
    """The best model: the version `twitter-sentiment-model-best@production` points at, else the
    latest parent training run. `summaries` (variant -> training_summary.json) mark whether the model
    came from this DAG run."""
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.registry import lookups as registry

    client = client or MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)
    this_run_ids = {
        m.get("run_id") for s in (summaries or {}).values() if s for m in (s.get("models") or {}).values()
    } | {s.get("parent_run_id") for s in (summaries or {}).values() if s}
    version = registry.resolve_version(client, BEST_MODEL_NAME, registry.PRODUCTION_ALIAS)
    if version is not None and version.run_id:
        run = client.get_run(version.run_id)
        metrics, tags = run.data.metrics, run.data.tags
        info = {
            "source": f"registry {BEST_MODEL_NAME}@{registry.PRODUCTION_ALIAS}",
            "run_id": version.run_id,
            "parent_run_id": tags.get("mlflow.parentRunId"),
            "accuracy": metrics.get("test_accuracy"),
            "auc": metrics.get("test_auc"),
            "model_type": tags.get("model_type") or run.data.params.get("model_type"),
            "registered_model": BEST_MODEL_NAME,
            "version": version.version,
            "model_uri": version.uri,
        }
    else:
        runs = client.search_runs(
            experiment_ids=[
                e.experiment_id
                for e in (client.get_experiment_by_name(n) for n in (DEFAULT_EXPERIMENT, CV_EXPERIMENT))
                if e is not None
            ]
            or ["0"],
            filter_string=f"tags.mlflow.runName = '{PARENT_RUN_NAME}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            raise TaskError(
                f"no {BEST_MODEL_NAME}@{registry.PRODUCTION_ALIAS} in the registry and no training run in MLflow "
                f"at {cfg.mlflow_tracking_uri}"
            )
        run = runs[0]
        info = {
            "source": "latest parent training run (no production alias yet)",
            "run_id": run.info.run_id,
            "parent_run_id": run.info.run_id,
            "accuracy": run.data.metrics.get("best_test_accuracy"),
            "auc": run.data.metrics.get("best_test_auc"),
            "model_type": run.data.tags.get("best_model"),
            "registered_model": None,
            "version": None,
            "model_uri": f"runs:/{run.info.run_id}",
        }
    info["from_this_run"] = bool(this_run_ids & {info["run_id"], info["parent_run_id"]})
    log.info(
        "best model: %s %s (accuracy %s, AUC %s) from %s",
        info["model_type"],
        info["model_uri"],
        info["accuracy"],
        info["auc"],
        info["source"],
    )
    return info


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def training_report_markdown(run_tag: str, summaries: dict[str, dict | None], best: dict | None) -> str:
    """Metrics table, confusion matrices and the promotion decision of each training variant."""
    lines = [f"# Sentiment training report `{run_tag}`", ""]
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    lines += [f"Generated {generated}.", ""]
    if best:
        lines += [
            "## Best model",
            "",
            "| Model type | Accuracy | AUC | Registered model | Version | MLflow run | From this run |",
            "|---|---|---|---|---|---|---|",
            f"| {best.get('model_type')} | {_fmt(best.get('accuracy'))} | {_fmt(best.get('auc'))} | "
            f"{_fmt(best.get('registered_model'))} | {_fmt(best.get('version'))} | `{best.get('run_id')}` | "
            f"{'yes' if best.get('from_this_run') else 'no'} |",
            "",
            f"Source: {best.get('source')}.",
            "",
        ]
    for variant, summary in summaries.items():
        lines += [f"## Variant `{variant}`", ""]
        if not summary:
            lines += ["No training_summary.json was written (the job failed or was skipped).", ""]
            continue
        split = summary.get("split_counts") or {}
        lines += [
            f"- Input: `{summary.get('input')}`; output: `{summary.get('output')}`",
            f"- Rows: {(summary.get('load_report') or {}).get('rows_usable', '-')} usable; split "
            + ", ".join(f"{k} {v}" for k, v in split.items()),
            f"- MLflow parent run: `{summary.get('parent_run_id')}`; best: **{summary.get('best_model')}**",
        ]
        promotion = summary.get("promotion") or {}
        if promotion:
            verdict = "promoted" if promotion.get("promote") else "kept the current model"
            lines.append(
                f"- Promotion of {promotion.get('registered_model')} v{promotion.get('candidate_version')} "
                f"to @{promotion.get('alias')}: {verdict} ({promotion.get('reason')})"
            )
        lines += [
            "",
            "| Model | Val accuracy | Test accuracy | Test AUC | F1 | Precision | Recall | Fit (s) | Registered |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        models = summary.get("models") or {}
        for key, m in models.items():
            test, val = m.get("test") or {}, m.get("validation") or {}
            lines.append(
                f"| {m.get('display_name', key)} | {_fmt(val.get('accuracy'))} | {_fmt(test.get('accuracy'))} | "
                f"{_fmt(test.get('auc'))} | {_fmt(test.get('f1'))} | {_fmt(test.get('precision'))} | "
                f"{_fmt(test.get('recall'))} | {_fmt(m.get('fit_seconds'), 1)} | "
                f"{m.get('registered_model')} v{m.get('version')} |"
            )
        lines.append("")
        for key, m in models.items():
            matrix = m.get("test_confusion_matrix")
            if not matrix:
                continue
            (tn, fp), (fn, tp) = matrix
            lines += [
                f"Confusion matrix, {m.get('display_name', key)} (test):",
                "",
                "| true \\ predicted | negative | positive |",
                "|---|---|---|",
                f"| negative | {tn} | {fp} |",
                f"| positive | {fn} | {tp} |",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def generate_training_report(
    cfg: AirflowConfig,
    run_tag: str,
    outputs: dict[str, str],
    best: dict | None,
    store: Store | None = None,
    client: Any = None,
) -> dict:
    """Write `training_report.md` next to the variant outputs and log it to each parent MLflow run."""
    store = store or store_for(cfg)
    summaries = {variant: read_training_summary(cfg, uri, store) for variant, uri in outputs.items()}
    if not any(summaries.values()):
        raise TaskError(f"no training_summary.json under {', '.join(outputs.values())}")
    markdown = training_report_markdown(run_tag, summaries, best)
    report_uri = join_uri(training_root(cfg, run_tag), REPORT_NAME)
    store.write_bytes(report_uri, markdown.encode("utf-8"))
    logged, errors = [], []
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)
    for variant, summary in summaries.items():
        if not summary or not summary.get("parent_run_id"):
            continue
        try:
            client.log_text(summary["parent_run_id"], markdown, f"reports/{REPORT_NAME}")
            logged.append(summary["parent_run_id"])
        except Exception as exc:  # e.g. a gs:// artifact root without credentials here: the file is still written
            errors.append(f"{variant}: {exc}")
            log.warning("could not log the report to MLflow run %s: %s", summary["parent_run_id"], exc)
    log.info("training report written to %s\n%s", report_uri, markdown)
    result = {"report_uri": report_uri, "mlflow_runs": logged, "mlflow_errors": errors, "variants": list(summaries)}
    if isinstance(store, LocalStore):
        result["report_path"] = str(store.path(report_uri))
    return result


def completion_message(dag_id: str, run_tag: str, validation: dict | None, best: dict | None, report: dict) -> str:
    parts = [f"{dag_id} run {run_tag} finished."]
    if validation:
        parts.append(f"Input {validation.get('input_path')}: about {validation.get('row_estimate')} rows.")
    if best:
        parts.append(
            f"Best model {best.get('model_type')} accuracy {_fmt(best.get('accuracy'))} AUC {_fmt(best.get('auc'))} "
            f"({best.get('registered_model') or 'not registered'} v{best.get('version') or '-'})."
        )
    parts.append(f"Report: {report.get('report_uri')}")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------------
# Serving


def model_to_serve(cfg: AirflowConfig, client: Any = None) -> dict:
    """The registry version the serving job will load; fails when it does not exist."""
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.registry import lookups as registry

    client = client or MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)
    resolved = registry.resolve_version(client, cfg.serving_model_name, cfg.serving_model_stage)
    if resolved is None:
        raise TaskError(
            f"model {registry.model_uri(cfg.serving_model_name, cfg.serving_model_stage)} not found in the MLflow "
            f"registry at {cfg.mlflow_tracking_uri} (Variables serving_model_name / serving_model_stage); "
            "run the training pipeline first"
        )
    tags = dict(client.get_model_version(resolved.name, resolved.version).tags or {})
    return {
        "name": resolved.name,
        "version": resolved.version,
        "alias": resolved.alias,
        "run_id": resolved.run_id,
        "model_uri": registry.model_uri(cfg.serving_model_name, cfg.serving_model_stage),
        "model_type": tags.get("model_type"),
        "test_accuracy": tags.get("test_accuracy"),
    }


def serving_paths(cfg: AirflowConfig, source_type: str | None = None) -> dict[str, str]:
    """The builder's serving paths for this config, plus where predictions and reports go."""
    paths = dataproc_jobs.serving_paths(cfg.gcs_bucket, source_type or cfg.serving_source_type)
    buckets = dataproc_jobs.bucket_names(cfg.gcs_bucket)
    return {
        **paths,
        "predictions": join_uri(paths["output"], "predictions"),
        "monitoring": f"gs://{buckets['predictions']}/monitoring",
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
    paths = serving_paths(cfg)
    kafka = cfg.serving_source_type == "kafka"
    extra = []
    if kafka and starting_offsets:
        extra.append(f"--starting-offsets={starting_offsets}")
    if kafka and dead_letter_topic:
        extra.append(f"--dead-letter-topic={dead_letter_topic}")
    args = dataproc_jobs.serving_args(
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
    return dataproc_jobs.serving_job(
        dataproc_target(cfg),
        args,
        kafka=kafka,
        labels=labels,
        job_id=f"sentiment-serving-{cfg.serving_source_type}-{run_tag}",
    )


def deploy_serving_job(
    cfg: AirflowConfig, job: dict[str, Any], replace_running: bool = False, backend: Any = None
) -> dict:
    """test mode: validate and log the exact job, submit nothing. production: submit it, after
    refusing (or, with `replace_running`, cancelling) serving jobs already active, because two
    streams on one checkpoint corrupt it."""
    dataproc_jobs.validate_job(job)
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
    """The newest batch records: a folder of `batch-STREAM-NNNNNNNNNN.json` (the serving job's layout, GCS
    has no append) or a JSON-lines file."""
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
    backend: Any = None,
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
    state = "UNKNOWN"
    while True:
        job = backend.get(job_id)
        state = job["state"]
        metrics_uri = job_arg(job, "--metrics-path") or paths["metrics"]
        predictions_uri = join_uri(job_arg(job, "--output-path") or paths["output"], "predictions")
        if state in DATAPROC_TERMINAL:
            raise TaskError(
                f"serving job {job_id} ended {state}: {job['details']}" + _tail_text(backend.log_tail(job_id, 50))
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
                + _tail_text(backend.log_tail(job_id, 50))
            )
        sleep(poll_s)


# --------------------------------------------------------------------------------------------------
# Management


def list_active_serving_jobs(cfg: AirflowConfig, backend: Any = None) -> list[dict]:
    """Active jobs labelled app=sentiment-serving (Dataproc filter
    `status.state = ACTIVE AND labels.app = sentiment-serving`)."""
    backend = backend or job_backend(cfg)
    jobs = backend.list_active(SERVING_LABEL)
    log.info("%d active serving job(s): %s", len(jobs), ", ".join(j["job_id"] for j in jobs) or "none")
    return jobs


def job_status_and_metrics(
    cfg: AirflowConfig, job_ids: list[str], backend: Any = None, store: Store | None = None, last: int = 5
) -> list[dict]:
    """Each job's current state and its newest batch metrics (from the job's own --metrics-path)."""
    backend = backend or job_backend(cfg)
    store = store or store_for(cfg)
    out = []
    for job_id in job_ids:
        job = backend.get(job_id)
        metrics_uri = job_arg(job, "--metrics-path") or join_uri(
            job_arg(job, "--output-path") or serving_paths(cfg)["output"], "_metrics", "batches"
        )
        try:
            recent = read_batch_metrics(store, metrics_uri, last)
        except Exception as exc:  # a report with one unreadable job beats no report
            recent, job["metrics_error"] = [], str(exc)
        job["metrics_path"] = metrics_uri
        job["last_metrics"] = recent[-1] if recent else None
        job["recent_metrics"] = recent
        if recent:
            job["recent_rows_per_s"] = round(sum(float(r.get("rows_per_s") or 0) for r in recent) / len(recent), 1)
        out.append(job)
    return out


def check_prediction_output(
    cfg: AirflowConfig, predictions_uri: str | None = None, max_partitions: int = 3, store: Store | None = None
) -> dict:
    """Latest `date=YYYY-MM-DD` partitions with file, batch and row counts (Parquet footers only)."""
    import pyarrow.parquet as pq

    store = store or store_for(cfg)
    predictions_uri = predictions_uri or serving_paths(cfg)["predictions"]
    by_date: dict[str, list[tuple[str, int]]] = {}
    for uri, size in store.list_files(predictions_uri):
        match = re.search(r"/date=(\d{4}-\d{2}-\d{2})/", uri)
        if match and uri.endswith(".parquet"):
            by_date.setdefault(match.group(1), []).append((uri, size))
    partitions = []
    for date in sorted(by_date, reverse=True)[:max_partitions]:
        rows = 0
        for uri, _size in by_date[date]:
            with store.open_input(uri) as handle:
                rows += pq.ParquetFile(handle).metadata.num_rows
        files = by_date[date]
        batches = {m.group(1) for u, _ in files if (m := re.search(r"/((?:stream=[^/]+/)?batch_id=\d+)/", u))}
        partitions.append(
            {
                "date": date,
                "files": len(files),
                "batches": len(batches),
                "rows": rows,
                "bytes": sum(s for _, s in files),
            }
        )
    result = {
        "predictions_uri": predictions_uri,
        "partitions_total": len(by_date),
        "latest_date": partitions[0]["date"] if partitions else None,
        "partitions": partitions,
        "rows_in_latest_partitions": sum(p["rows"] for p in partitions),
    }
    log.info("prediction output: %s", json.dumps(result))
    return result


def monitoring_markdown(report: dict) -> str:
    lines = [f"# Serving monitoring report {report['generated_at']}", "", f"Backend: {report['backend']}", ""]
    jobs = report.get("jobs") or []
    lines += ["## Serving jobs", ""]
    if not jobs:
        lines += ["No active serving job.", ""]
    else:
        lines += [
            "| Job | State | Last batch | Rows in | Predicted | Quarantined | Rows/s | Latency (s) | Model version |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for job in jobs:
            m = job.get("last_metrics") or {}
            lines.append(
                f"| {job['job_id']} | {job['state']} | {_fmt(m.get('batch_id'))} @ {_fmt(m.get('timestamp'))} | "
                f"{_fmt(m.get('rows_in'))} | {_fmt(m.get('predicted'))} | {_fmt(m.get('quarantined'))} | "
                f"{_fmt(m.get('rows_per_s'))} | {_fmt(m.get('latency_s'))} | {_fmt(m.get('model_version'))} |"
            )
        lines.append("")
    output = report.get("prediction_output") or {}
    lines += ["## Prediction output", "", f"`{output.get('predictions_uri')}`", ""]
    if output.get("partitions"):
        lines += ["| Date | Files | Batches | Rows | Bytes |", "|---|---|---|---|---|"]
        for p in output["partitions"]:
            lines.append(f"| {p['date']} | {p['files']} | {p['batches']} | {p['rows']} | {p['bytes']} |")
    else:
        lines.append("No predictions written yet.")
    return "\n".join(lines).rstrip() + "\n"


def write_monitoring_report(
    cfg: AirflowConfig,
    jobs: list[dict],
    prediction_output: dict,
    store: Store | None = None,
) -> dict:
    """`serving-report-<stamp>.json` and `.md` under `gs://{b}-predictions/monitoring/`. It describes
    the jobs as they run; stop_serving_jobs comes after it and returns what it stopped."""
    store = store or store_for(cfg)
    now = datetime.now(UTC)
    report = {
        "generated_at": now.isoformat(timespec="seconds"),
        "backend": cfg.backend,
        "jobs": jobs,
        "prediction_output": prediction_output,
    }
    base = join_uri(serving_paths(cfg)["monitoring"], f"serving-report-{now.strftime('%Y%m%d-%H%M%S')}")
    json_uri = store.write_bytes(f"{base}.json", json.dumps(report, indent=2, default=str).encode())
    markdown = monitoring_markdown(report)
    md_uri = store.write_bytes(f"{base}.md", markdown.encode())
    log.info("monitoring report %s\n%s", md_uri, markdown)
    return {"json_uri": json_uri, "markdown_uri": md_uri, "active_jobs": len(jobs)}


def stop_serving_jobs(
    cfg: AirflowConfig, job_id: str | None = None, stop_all: bool = False, backend: Any = None
) -> list[dict]:
    """Cancel one serving job by id, or all active ones; nothing when neither is asked for."""
    backend = backend or job_backend(cfg)
    if stop_all:
        ids = [j["job_id"] for j in backend.list_active(SERVING_LABEL)]
    elif job_id:
        job = backend.get(job_id)  # fails clearly on an unknown id
        if job["labels"].get("app") != dataproc_jobs.APP_SERVING:
            raise TaskError(f"job {job_id} is not a serving job (labels {job['labels']}); refusing to stop it")
        ids = [job_id]
    else:
        return []
    stopped = []
    for jid in ids:
        result = backend.cancel(jid)
        log.info("serving job %s: %s", jid, result["state"])
        stopped.append({"job_id": jid, "state": result["state"]})
    return stopped
