"""The training pipelines' tasks: one Dataproc job per variant, the best model, the training report."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sentiment_mlops import jobs as job_spec
from sentiment_mlops.backends.local.store import LocalStore
from sentiment_mlops.core.naming import label_value
from sentiment_mlops.core.settings import DEFAULT_EXPERIMENT, DEFAULT_REGISTERED_MODEL_NAME, PRODUCTION_ALIAS
from sentiment_mlops.core.storage import join_uri
from sentiment_mlops.core.store import Store
from sentiment_mlops.orchestration.backends import store_for
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.tasks.common import TaskError, dataproc_target, mlflow_client
from sentiment_mlops.orchestration.tasks.reports import training_report_markdown

log = logging.getLogger(__name__)

CV_EXPERIMENT = f"{DEFAULT_EXPERIMENT}-cv"
PARENT_RUN_NAME = "multimodel-training"  # training_job's parent run
BEST_MODEL_NAME = f"{DEFAULT_REGISTERED_MODEL_NAME}-best"
REPORT_NAME = "training_report.md"

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


def training_root(cfg: AirflowConfig, run_tag: str) -> str:
    """`gs://{b}-models/training/{run_tag}`: the run's variant outputs and report go below it."""
    return job_spec.training_paths(cfg.gcs_bucket, run_tag)["output"]


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
        args = job_spec.training_args(
            input=input_uri,
            output=join_uri(training_root(cfg, run_tag), variant),
            mlflow_uri=cfg.mlflow_tracking_uri,
            mlflow_credentials_secret=cfg.mlflow_credentials_secret or "",
            registered_model_name=DEFAULT_REGISTERED_MODEL_NAME,
            max_rows=int(max_rows or 0),
            models=models or "all",
            extra=["--force-promote"] if force_promote else None,
            **settings,
        )
        labels = {"variant": variant, "run": label_value(run_tag)}
        if dag_id:
            labels["airflow-dag"] = label_value(dag_id)
        jobs[variant] = job_spec.training_job(
            dataproc_target(cfg), args, labels=labels, job_id=f"sentiment-training-{variant}-{run_tag}"
        )
    return jobs


def read_training_summary(cfg: AirflowConfig, output_uri: str, store: Store | None = None) -> dict | None:
    """The `training_summary.json` a training job wrote under `output_uri`, or None when there is none."""
    store = store or store_for(cfg)
    try:
        return json.loads(store.read_bytes(join_uri(output_uri, "training_summary.json")))
    except (FileNotFoundError, ValueError):
        return None
    except Exception as exc:  # GCS NotFound and friends
        if type(exc).__name__ == "NotFound":
            return None
        raise


def _mlflow_client(cfg: AirflowConfig) -> Any:
    return mlflow_client(cfg)


def _run_ids_of(summaries: Mapping[str, dict | None]) -> set[str | None]:
    """The MLflow runs (per model, and parents) the summaries of this DAG run name."""
    present = [s for s in summaries.values() if s]
    return {m.get("run_id") for s in present for m in (s.get("models") or {}).values()} | {
        s.get("parent_run_id") for s in present
    }


def _best_from_registry(client: Any, version: Any) -> dict:
    """Best-model info of the registry version the production alias points at."""

    run = client.get_run(version.run_id)
    metrics, tags = run.data.metrics, run.data.tags
    return {
        "source": f"registry {BEST_MODEL_NAME}@{PRODUCTION_ALIAS}",
        "run_id": version.run_id,
        "parent_run_id": tags.get("mlflow.parentRunId"),
        "accuracy": metrics.get("test_accuracy"),
        "auc": metrics.get("test_auc"),
        "model_type": tags.get("model_type") or run.data.params.get("model_type"),
        "registered_model": BEST_MODEL_NAME,
        "version": version.version,
        "model_uri": version.uri,
    }


def _best_from_latest_run(cfg: AirflowConfig, client: Any) -> dict:
    """Best-model info of the newest parent training run of either experiment."""

    experiments = (client.get_experiment_by_name(n) for n in (DEFAULT_EXPERIMENT, CV_EXPERIMENT))
    runs = client.search_runs(
        experiment_ids=[e.experiment_id for e in experiments if e is not None] or ["0"],
        filter_string=f"tags.mlflow.runName = '{PARENT_RUN_NAME}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise TaskError(
            f"no {BEST_MODEL_NAME}@{PRODUCTION_ALIAS} in the registry and no training run in MLflow "
            f"at {cfg.mlflow_tracking_uri}"
        )
    run = runs[0]
    return {
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


def best_model_info(cfg: AirflowConfig, summaries: Mapping[str, dict | None] | None = None, client: Any = None) -> dict:
    """The best model: the version `twitter-sentiment-model-best@production` points at, else the
    latest parent training run. `summaries` (variant -> training_summary.json) mark whether the model
    came from this DAG run (`from_this_run`)."""
    from sentiment_mlops.registry import lookups as registry

    client = client or _mlflow_client(cfg)
    version = registry.resolve_version(client, BEST_MODEL_NAME, PRODUCTION_ALIAS)
    if version is not None and version.run_id:
        info = _best_from_registry(client, version)
    else:
        info = _best_from_latest_run(cfg, client)
    info["from_this_run"] = bool(_run_ids_of(summaries or {}) & {info["run_id"], info["parent_run_id"]})
    log.info(
        "best model: %s %s (accuracy %s, AUC %s) from %s",
        info["model_type"],
        info["model_uri"],
        info["accuracy"],
        info["auc"],
        info["source"],
    )
    return info


def generate_training_report(
    cfg: AirflowConfig,
    run_tag: str,
    outputs: dict[str, str],
    best: dict | None,
    store: Store | None = None,
    client: Any = None,
) -> dict:
    """Write `training_report.md` next to the variant outputs (`outputs`: variant -> output URI) and
    log it to each parent MLflow run. Returns the report's URI (and local path on the local backend),
    the runs it was logged to and the errors of those that failed."""
    store = store or store_for(cfg)
    summaries = {variant: read_training_summary(cfg, uri, store) for variant, uri in outputs.items()}
    if not any(summaries.values()):
        raise TaskError(f"no training_summary.json under {', '.join(outputs.values())}")
    markdown = training_report_markdown(run_tag, summaries, best)
    report_uri = join_uri(training_root(cfg, run_tag), REPORT_NAME)
    store.write_bytes(report_uri, markdown.encode("utf-8"))
    logged, errors = [], []
    client = client or _mlflow_client(cfg)
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
