"""The store and job backend for an :class:`AirflowConfig`: where the Airflow hooks are made.

Backends take plain values and client objects; this module is the one place that turns the Airflow
connection (`gcp_conn_id`) into GCSHook / DataprocHook clients for them. The hooks are imported in the
functions: Airflow parses the DAG files, which import the tasks, often.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sentiment_mlops.core.job_backend import JobBackend
from sentiment_mlops.core.settings import load_settings
from sentiment_mlops.core.store import Store
from sentiment_mlops.jobs.serverless import ServerlessTarget
from sentiment_mlops.orchestration.config import AirflowConfig

if TYPE_CHECKING:
    from sentiment_mlops.backends.gcp.gcs_store import GcsStore
    from sentiment_mlops.backends.gcp.serverless_backend import DataprocServerlessJobBackend


def gcs_store(gcp_conn_id: str) -> GcsStore:
    """A GcsStore whose storage client comes from the Airflow connection `gcp_conn_id` on first use."""
    from sentiment_mlops.backends.gcp.gcs_store import GcsStore

    def connect() -> Any:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        return GCSHook(gcp_conn_id=gcp_conn_id).get_conn()

    return GcsStore(connect=connect)


def store_for(cfg: AirflowConfig) -> Store:
    """Local bucket folders on the local backend, GCS through the Airflow connection on both Dataproc
    backends."""
    if cfg.is_local:
        from sentiment_mlops.backends.local.store import LocalStore

        return LocalStore(load_settings("local"))
    return gcs_store(cfg.gcp_conn_id)


def serverless_target(cfg: AirflowConfig) -> ServerlessTarget:
    """Where batches run on dataproc-serverless: project, region, runtime, service account, subnetwork."""
    return ServerlessTarget(
        project_id=str(cfg.gcp_project_id or ""),
        region=cfg.gcp_region,
        runtime_version=cfg.dataproc_runtime_version,
        service_account=cfg.dataproc_service_account,
        subnetwork_uri=cfg.dataproc_subnetwork,
    )


def serverless_backend(cfg: AirflowConfig, hook: Any) -> DataprocServerlessJobBackend:
    """Dataproc Serverless batches through `hook` (a DataprocHook), driver logs read through GCS."""
    from sentiment_mlops.backends.gcp.serverless_backend import DataprocServerlessJobBackend

    return DataprocServerlessJobBackend(
        serverless_target(cfg),
        hook=hook,
        store=gcs_store(cfg.gcp_conn_id),
        stream_ttl_seconds=cfg.dataproc_stream_ttl_seconds,
    )


def submission_for(cfg: AirflowConfig, job: dict[str, Any]) -> dict[str, Any]:
    """What the backend submits for the job dict `job`: the job itself, or on dataproc-serverless the
    validated Batch dict (a bad runtime, service account, subnetwork or TTL fails here, with the reason,
    before any request)."""
    if not cfg.is_serverless:
        return job
    from sentiment_mlops.backends.gcp.serverless_backend import batch_for_job

    return batch_for_job(job, serverless_target(cfg), stream_ttl_seconds=cfg.dataproc_stream_ttl_seconds)


def job_backend(cfg: AirflowConfig) -> JobBackend:
    """The local spark-submit runner, or Dataproc (cluster jobs, or Serverless batches) through a
    DataprocHook on the Airflow connection (driver logs read through GCS)."""
    if cfg.is_local:
        from sentiment_mlops.backends.local.job_backend import LocalJobBackend

        return LocalJobBackend()
    from airflow.providers.google.cloud.hooks.dataproc import DataprocHook

    hook = DataprocHook(gcp_conn_id=cfg.gcp_conn_id)
    if cfg.is_serverless:
        return serverless_backend(cfg, hook)

    from sentiment_mlops.backends.gcp.dataproc_backend import DataprocJobBackend

    return DataprocJobBackend(
        project_id=str(cfg.gcp_project_id),
        region=cfg.gcp_region,
        hook=hook,
        store=gcs_store(cfg.gcp_conn_id),
    )
