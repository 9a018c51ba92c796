"""The serving management DAG's tasks: what runs, how it is doing, what it wrote, the monitoring
report, and stopping jobs."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from sentiment_mlops.core.job_backend import JobBackend
from sentiment_mlops.core.naming import APP_SERVING
from sentiment_mlops.core.storage import join_uri
from sentiment_mlops.core.store import Store
from sentiment_mlops.orchestration.backends import job_backend, store_for
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.tasks.common import TaskError, job_arg, serving_paths
from sentiment_mlops.orchestration.tasks.reports import monitoring_markdown
from sentiment_mlops.orchestration.tasks.serving import SERVING_LABEL, read_batch_metrics

log = logging.getLogger(__name__)

# The batch a prediction file belongs to: `date=D/part-<stream>-<batch>-<k>.parquet` (the serving
# job's layout), or the `stream=S/batch_id=N/` folders of output written before it.
BATCH_IN_URI = re.compile(r"/(?:part-(\d{14}-[0-9a-f]+-\d{10})-|((?:stream=[^/]+/)?batch_id=\d+)/)")


def list_active_serving_jobs(cfg: AirflowConfig, backend: JobBackend | None = None) -> list[dict]:
    """Active jobs labelled app=sentiment-serving (Dataproc filter
    `status.state = ACTIVE AND labels.app = sentiment-serving`)."""
    backend = backend or job_backend(cfg)
    jobs = backend.list_active(SERVING_LABEL)
    log.info("%d active serving job(s): %s", len(jobs), ", ".join(j["job_id"] for j in jobs) or "none")
    return jobs


def job_status_and_metrics(
    cfg: AirflowConfig,
    job_ids: list[str],
    backend: JobBackend | None = None,
    store: Store | None = None,
    last: int = 5,
) -> list[dict]:
    """Each job's current state and its newest `last` batch metrics (from the job's own --metrics-path)."""
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


def _partition_counts(store: Store, date: str, files: list[tuple[str, int]]) -> dict:
    """File, batch, row (Parquet footers only) and byte counts of one `date=` partition."""
    import pyarrow.parquet as pq

    rows = 0
    for uri, _size in files:
        with store.open_input(uri) as handle:
            rows += pq.ParquetFile(handle).metadata.num_rows
    batches = {m.group(1) or m.group(2) for u, _ in files if (m := BATCH_IN_URI.search(u))}
    return {"date": date, "files": len(files), "batches": len(batches), "rows": rows, "bytes": sum(s for _, s in files)}


def check_prediction_output(
    cfg: AirflowConfig, predictions_uri: str | None = None, max_partitions: int = 3, store: Store | None = None
) -> dict:
    """The latest `max_partitions` `date=YYYY-MM-DD` partitions under `predictions_uri` (default: the
    config's) with file, batch and row counts."""
    store = store or store_for(cfg)
    predictions_uri = predictions_uri or serving_paths(cfg)["predictions"]
    by_date: dict[str, list[tuple[str, int]]] = {}
    for uri, size in store.list_files(predictions_uri):
        match = re.search(r"/date=(\d{4}-\d{2}-\d{2})/", uri)
        if match and uri.endswith(".parquet"):
            by_date.setdefault(match.group(1), []).append((uri, size))
    partitions = [_partition_counts(store, d, by_date[d]) for d in sorted(by_date, reverse=True)[:max_partitions]]
    result = {
        "predictions_uri": predictions_uri,
        "partitions_total": len(by_date),
        "latest_date": partitions[0]["date"] if partitions else None,
        "partitions": partitions,
        "rows_in_latest_partitions": sum(p["rows"] for p in partitions),
    }
    log.info("prediction output: %s", json.dumps(result))
    return result


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
    cfg: AirflowConfig, job_id: str | None = None, stop_all: bool = False, backend: JobBackend | None = None
) -> list[dict]:
    """Cancel one serving job by id, or all active ones; nothing when neither is asked for."""
    backend = backend or job_backend(cfg)
    if stop_all:
        ids = [j["job_id"] for j in backend.list_active(SERVING_LABEL)]
    elif job_id:
        job = backend.get(job_id)  # fails clearly on an unknown id
        if job["labels"].get("app") != APP_SERVING:
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
