"""The job dicts in the Dataproc `Job` shape, with the Spark properties every job runs with.

The same dict goes to `DataprocSubmitJobOperator(job=...)` / `JobControllerClient.submit_job`, to the
local runner (spark-submit with `gs://` mapped to folders), and, through `gcloud.job_to_gcloud_command`,
to the CI scripts. One builder means a flag or property cannot differ between Airflow, CI and the
local backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sentiment_mlops.core.naming import APP_SERVING, APP_TRAINING, BACKEND_PROPERTY
from sentiment_mlops.jobs.layout import PACKAGE_ZIP, SERVING_ENTRY, TRAINING_ENTRY, kafka_package
from sentiment_mlops.jobs.validation import validate_job

# Long tweets make Java's regex engine recurse deeply inside the text-cleaning stages; the local
# defaults in spark_session use the same stack size.
_JAVA_STACK = "-Xss16m"

TRAINING_PROPERTIES: dict[str, str] = {
    BACKEND_PROPERTY: "dataproc",
    "spark.driver.memory": "4g",
    "spark.executor.memory": "4g",
    # collect() of metrics/ROC samples and broadcast of the IDF vector stay well below this.
    "spark.driver.maxResultSize": "2g",
    "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    "spark.kryoserializer.buffer.max": "512m",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.driver.extraJavaOptions": _JAVA_STACK,
    "spark.executor.extraJavaOptions": _JAVA_STACK,
}

STREAMING_PROPERTIES: dict[str, str] = {
    BACKEND_PROPERTY: "dataproc",
    "spark.streaming.stopGracefullyOnShutdown": "true",
    # A stream holds its executors forever; dynamic allocation would only churn them between
    # micro-batches and lose the cached model broadcast.
    "spark.dynamicAllocation.enabled": "false",
    "spark.executor.instances": "2",
    "spark.driver.memory": "4g",
    "spark.executor.memory": "4g",
    "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    # Micro-batches are small; the default 200 shuffle partitions would mostly schedule empty tasks.
    # Note that a streaming query keeps the value it started with in its checkpoint.
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.streaming.metricsEnabled": "true",
    "spark.driver.extraJavaOptions": _JAVA_STACK,
    "spark.executor.extraJavaOptions": _JAVA_STACK,
}


@dataclass(frozen=True)
class DataprocTarget:
    """Where a job runs and where its code was uploaded."""

    project_id: str
    region: str
    cluster_name: str
    code_uri: str  # e.g. gs://{GCS_BUCKET}-code/jobs (entry scripts and the package zip)


def _merge_packages(current: str | None, package: str) -> str:
    parts = [p.strip() for p in (current or "").split(",") if p.strip()]
    if package not in parts:
        parts.append(package)
    return ",".join(parts)


def pyspark_job(
    target: DataprocTarget,
    main_python_file_uri: str,
    args: Sequence[str],
    *,
    app: str,
    properties: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    job_id: str | None = None,
    max_failures_per_hour: int | None = None,
) -> dict[str, Any]:
    """The common shape of a PySpark job dict, validated; training_job and serving_job are the
    public entry points. Raises ValueError when the result is not a valid Dataproc job."""
    if isinstance(args, str):  # a str is a Sequence too and would become one argument per character
        raise ValueError("args must be a list of strings, not a string")
    reference: dict[str, str] = {"project_id": target.project_id}
    if job_id:
        reference["job_id"] = job_id
    # The app label is how the deploy script and the local runner find serving jobs, so callers
    # cannot override it.
    job: dict[str, Any] = {
        "reference": reference,
        "placement": {"cluster_name": target.cluster_name},
        "labels": {**dict(labels or {}), "app": app},
        "pyspark_job": {
            "main_python_file_uri": main_python_file_uri,
            "python_file_uris": [f"{target.code_uri.rstrip('/')}/{PACKAGE_ZIP}"],
            "args": [str(a) for a in args],
            "properties": dict(properties),
        },
    }
    if max_failures_per_hour:
        job["scheduling"] = {"max_failures_per_hour": int(max_failures_per_hour)}
    validate_job(job)
    return job


def training_job(
    target: DataprocTarget,
    args: list[str],
    *,
    labels: dict[str, str] | None = None,
    job_id: str | None = None,
    properties: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The batch training job dict for `args` (see arguments.training_args); `properties` are merged
    over TRAINING_PROPERTIES."""
    return pyspark_job(
        target,
        f"{target.code_uri.rstrip('/')}/{TRAINING_ENTRY}",
        args,
        app=APP_TRAINING,
        properties={**TRAINING_PROPERTIES, **(properties or {})},
        labels=labels,
        job_id=job_id,
    )


def serving_job(
    target: DataprocTarget,
    args: list[str],
    *,
    kafka: bool = False,
    labels: dict[str, str] | None = None,
    job_id: str | None = None,
    properties: dict[str, str] | None = None,
    max_failures_per_hour: int | None = None,
) -> dict[str, Any]:
    """The long-running streaming job dict for `args` (see arguments.serving_args); `properties` are
    merged over STREAMING_PROPERTIES.

    kafka=True adds the Kafka connector to spark.jars.packages (kept alongside packages the caller
    lists). max_failures_per_hour makes it a Dataproc restartable job: the driver restarts from its
    checkpoint after a crash.
    """
    props = {**STREAMING_PROPERTIES, **(properties or {})}
    if kafka:
        props["spark.jars.packages"] = _merge_packages(props.get("spark.jars.packages"), kafka_package())
    return pyspark_job(
        target,
        f"{target.code_uri.rstrip('/')}/{SERVING_ENTRY}",
        args,
        app=APP_SERVING,
        properties=props,
        labels=labels,
        job_id=job_id,
        max_failures_per_hour=max_failures_per_hour,
    )
