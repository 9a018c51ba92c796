"""One builder for every Spark job: plain dicts in the Dataproc `Job` shape.

The same dict goes to `DataprocSubmitJobOperator(job=...)` / `JobControllerClient.submit_job`, to the
local runner (spark-submit with `gs://` mapped to folders), and, through :func:`job_to_gcloud_command`,
to the CI scripts. Keeping one builder means a flag or property cannot differ between Airflow, CI and
the local backend.

This module imports neither pyspark nor the Dataproc client at import time: the CI deploy job only
installs google-cloud-dataproc, and Airflow parses DAG files that import this often.

CLI (used by ci-cd/*.sh so the scripts cannot drift from the builder)::

    python -m sentiment_mlops.jobs.dataproc_spec layout --gcs-bucket B
    python -m sentiment_mlops.jobs.dataproc_spec gcloud-command --kind training --project-id P --region R \\
        --cluster C --gcs-bucket B --input gs://... --output gs://... --mlflow-uri http://... [-- EXTRA]
    python -m sentiment_mlops.jobs.dataproc_spec job-json --kind serving ...   # the job dict as JSON
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shlex
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentiment_mlops.core.settings import (  # noqa: F401 - re-exported for the DAGs and scripts
    DEFAULT_EXPERIMENT,
    DEFAULT_KAFKA_INPUT_TOPIC,
    DEFAULT_KAFKA_OUTPUT_TOPIC,
    DEFAULT_REGISTERED_MODEL_NAME,
    DEFAULT_SERVING_MODEL,
)

if TYPE_CHECKING:  # the real import is deferred to validate_job (see module docstring)
    from google.cloud import dataproc_v1

KAFKA_PACKAGE_DEFAULT = "org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.1"
TRAINING_ENTRY = "sentiment_multimodel.py"
SERVING_ENTRY = "streaming_serving_mlflow_hdfs_kafka_optimize.py"
PACKAGE_ZIP = "sentiment_mlops.zip"

APP_TRAINING = "sentiment-training"
APP_SERVING = "sentiment-serving"

# Defaults shared by the CI scripts and the Airflow DAGs (airflow_config holds the same values; a test
# keeps them equal). The serving job reads the registry's "best" model, which training registers as
# `{registered name}-best`.
TRAINING_INPUT_OBJECT = "raw/training.1600000.processed.noemoticon.csv"  # where download_and_upload.py puts it

# Same key as spark_session.BACKEND_CONF (a test checks it); repeated here so building a job does not
# import pyspark.
BACKEND_PROPERTY = "spark.sentiment.backend"
KAFKA_PACKAGE_ENV = "SPARK_KAFKA_PACKAGE"

SOURCE_TYPES = ("file", "kafka")
MODEL_FLAVORS = ("spark", "pyfunc")

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

# Dataproc / GCP naming rules (REST reference of Job, JobReference, Cluster, and GCS bucket names).
# Label rules are written for ASCII; Dataproc also allows other Unicode lowercase letters, which this
# project never needs, so rejecting them is the safer error.
_LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
_MAX_LABELS = 32
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_CLUSTER_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,50}[a-z0-9])?$")
_PROJECT_RE = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # optional legacy domain prefix
_REGION_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_GS_OBJECT_RE = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]/.+$")
_MAX_FAILURES_PER_HOUR = 10
_MAX_FAILURES_TOTAL = 240

_REPEATED_URI_FIELDS = ("python_file_uris", "jar_file_uris", "file_uris", "archive_uris")


@dataclass(frozen=True)
class DataprocTarget:
    """Where a job runs and where its code was uploaded."""

    project_id: str
    region: str
    cluster_name: str
    code_uri: str  # e.g. gs://{GCS_BUCKET}-code/jobs (entry scripts and the package zip)


# --------------------------------------------------------------------------------------------------
# Buckets and URIs


def bucket_names(gcs_bucket: str) -> dict[str, str]:
    """The project's buckets, all derived from one base name (GCS_BUCKET)."""
    base = gcs_bucket.strip()
    if base.startswith("gs://"):
        base = base[len("gs://") :].rstrip("/")
    if not base or "/" in base:
        raise ValueError(f"GCS bucket base name must be a bare bucket name, got {gcs_bucket!r}")
    names = {
        "code": f"{base}-code",
        "raw": f"{base}-raw",
        "models": f"{base}-models",
        "predictions": f"{base}-predictions",
        "checkpoint": f"{base}-checkpoint",
        "streaming_input": f"{base}-streaming-input",
    }
    bad = [n for n in names.values() if not _BUCKET_RE.match(n)]
    if bad:
        raise ValueError(
            f"GCS bucket base name {base!r} gives invalid bucket names {bad} "
            "(lowercase letters, digits, '-', '_', '.', 3-63 characters)"
        )
    return names


def default_code_uri(gcs_bucket: str) -> str:
    """Where CI uploads entry scripts and the package zip: gs://{GCS_BUCKET}-code/jobs."""
    return f"gs://{bucket_names(gcs_bucket)['code']}/jobs"


def training_paths(gcs_bucket: str, run_tag: str) -> dict[str, str]:
    """Default input (the uploaded Sentiment140 CSV) and per-run output folder of a training job."""
    names = bucket_names(gcs_bucket)
    return {
        "input": f"gs://{names['raw']}/{TRAINING_INPUT_OBJECT}",
        "output": f"gs://{names['models']}/training/{run_tag}",
    }


def serving_paths(gcs_bucket: str, source_type: str = "file") -> dict[str, str]:
    """Where the serving job reads, writes and checkpoints. One checkpoint per source type: the
    checkpoint of a file stream cannot resume a Kafka stream."""
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"source_type must be one of {', '.join(SOURCE_TYPES)}, got {source_type!r}")
    names = bucket_names(gcs_bucket)
    output = f"gs://{names['predictions']}/streaming"
    return {
        "output": output,
        "metrics": f"{output}/_metrics/batches",
        "checkpoint": f"gs://{names['checkpoint']}/streaming/{source_type}",
        "input": f"gs://{names['streaming_input']}/incoming",
    }


def kafka_package() -> str:
    """The Kafka connector coordinates; SPARK_KAFKA_PACKAGE overrides them to match the cluster's Spark."""
    return os.environ.get(KAFKA_PACKAGE_ENV) or KAFKA_PACKAGE_DEFAULT


# --------------------------------------------------------------------------------------------------
# Job arguments


def _require(name: str, value: str | None) -> str:
    if value is None or not str(value).strip():
        raise ValueError(f"{name} is required")
    return str(value)


def training_args(
    *,
    input: str,
    output: str,
    mlflow_uri: str,
    mlflow_experiment: str = DEFAULT_EXPERIMENT,
    registered_model_name: str = DEFAULT_REGISTERED_MODEL_NAME,
    num_features: int = 32768,
    sample_fraction: float = 1.0,
    enable_cv: bool = False,
    cv_folds: int = 2,
    enable_caching: bool = True,
    max_rows: int = 0,
    models: str = "all",
    seed: int = 42,
    extra: list[str] | None = None,
) -> list[str]:
    """`--flag=value` arguments of the training job (training_job.build_arg_parser).

    Every value is written out, defaults included, so a job's behaviour is visible in its spec and does
    not change when the job's own defaults do. Range checks repeat training_job.validate_args so a bad
    value fails here, before a cluster is involved.
    """
    if num_features <= 0:
        raise ValueError(f"num_features must be positive, got {num_features}")
    if not 0.0 < sample_fraction <= 1.0:
        raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
    if cv_folds < 2:
        raise ValueError(f"cv_folds must be at least 2, got {cv_folds}")
    if max_rows < 0:
        raise ValueError(f"max_rows must be 0 (all) or positive, got {max_rows}")
    args = [
        f"--input={_require('input', input)}",
        f"--output={_require('output', output)}",
        f"--mlflow-uri={_require('mlflow_uri', mlflow_uri)}",
        f"--mlflow-experiment={_require('mlflow_experiment', mlflow_experiment)}",
        f"--registered-model-name={_require('registered_model_name', registered_model_name)}",
        f"--num-features={int(num_features)}",
        f"--sample-fraction={float(sample_fraction)!r}",
        f"--cv-folds={int(cv_folds)}",
        f"--max-rows={int(max_rows)}",
        f"--models={_require('models', models)}",
        f"--seed={int(seed)}",
    ]
    # store_true flags in the job's parser: present or absent, never "=false".
    if enable_cv:
        args.append("--enable-cv")
    if enable_caching:
        args.append("--enable-caching")
    return args + list(extra or [])


def serving_args(
    *,
    source_type: str,
    output_path: str,
    checkpoint: str,
    mlflow_uri: str,
    model_name: str,
    model_stage: str = "Production",
    input_path: str | None = None,
    kafka_bootstrap: str | None = None,
    kafka_topic: str | None = None,
    batch_interval_seconds: int = 30,
    reload_interval_seconds: int = 300,
    write_kafka: bool = False,
    kafka_output_bootstrap: str | None = None,
    kafka_output_topic: str | None = None,
    quarantine_path: str | None = None,
    max_files_per_trigger: int | None = None,
    max_offsets_per_trigger: int | None = None,
    model_flavor: str = "spark",
    metrics_path: str | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """`--flag=value` arguments of the streaming serving job. Optional settings left as None are omitted
    so the job's own defaults apply; `--write-kafka` is a presence flag."""
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"source_type must be one of {', '.join(SOURCE_TYPES)}, got {source_type!r}")
    if source_type == "file" and not input_path:
        raise ValueError("input_path is required when source_type is 'file'")
    if source_type == "kafka" and not (kafka_bootstrap and kafka_topic):
        raise ValueError("kafka_bootstrap and kafka_topic are required when source_type is 'kafka'")
    if model_flavor not in MODEL_FLAVORS:
        raise ValueError(f"model_flavor must be one of {', '.join(MODEL_FLAVORS)}, got {model_flavor!r}")
    for name, value in (
        ("batch_interval_seconds", batch_interval_seconds),
        ("reload_interval_seconds", reload_interval_seconds),
    ):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    for name, value in (
        ("max_files_per_trigger", max_files_per_trigger),
        ("max_offsets_per_trigger", max_offsets_per_trigger),
    ):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive when given, got {value}")
    # Predictions go back to the input brokers unless told otherwise.
    out_bootstrap = kafka_output_bootstrap or kafka_bootstrap
    if write_kafka and not (out_bootstrap and kafka_output_topic):
        raise ValueError("write_kafka needs kafka_output_topic and kafka_output_bootstrap (or kafka_bootstrap)")

    args = [
        f"--source-type={source_type}",
        f"--output-path={_require('output_path', output_path)}",
        f"--checkpoint={_require('checkpoint', checkpoint)}",
        f"--mlflow-uri={_require('mlflow_uri', mlflow_uri)}",
        f"--model-name={_require('model_name', model_name)}",
        f"--model-stage={_require('model_stage', model_stage)}",
        f"--model-flavor={model_flavor}",
        f"--batch-interval-seconds={int(batch_interval_seconds)}",
        f"--reload-interval-seconds={int(reload_interval_seconds)}",
    ]
    optional: list[tuple[str, object]] = [
        ("--input-path", input_path),
        ("--kafka-bootstrap", kafka_bootstrap),
        ("--kafka-topic", kafka_topic),
        ("--quarantine-path", quarantine_path),
        ("--max-files-per-trigger", max_files_per_trigger),
        ("--max-offsets-per-trigger", max_offsets_per_trigger),
        ("--metrics-path", metrics_path),
    ]
    if write_kafka:
        args.append("--write-kafka")
        optional += [("--kafka-output-bootstrap", out_bootstrap), ("--kafka-output-topic", kafka_output_topic)]
    args += [f"{flag}={value}" for flag, value in optional if value is not None and value != ""]
    return args + list(extra or [])


# --------------------------------------------------------------------------------------------------
# Jobs


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
    """The common shape; training_job and serving_job are the public entry points."""
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
    """The batch training job; `properties` are merged over TRAINING_PROPERTIES."""
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
    """The long-running streaming job; `properties` are merged over STREAMING_PROPERTIES.

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


# --------------------------------------------------------------------------------------------------
# Validation


def _is_str_list(value: object) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _check_labels(labels: Mapping[str, str], problems: list[str]) -> None:
    if len(labels) > _MAX_LABELS:
        problems.append(f"at most {_MAX_LABELS} labels are allowed, got {len(labels)}")
    for key, value in labels.items():
        if not _LABEL_KEY_RE.match(key):
            problems.append(
                f"label key {key!r} is invalid: 1-63 characters, start with a lowercase letter, "
                "then lowercase letters, digits, '_' or '-'"
            )
        if not _LABEL_VALUE_RE.match(value):
            problems.append(
                f"label value {value!r} (key {key!r}) is invalid: at most 63 lowercase letters, digits, '_' or '-'"
            )


def validate_job(job: dict) -> dataproc_v1.Job:
    """Build the `google.cloud.dataproc_v1.Job` for `job` and check what the proto type does not:
    required fields, URIs, names and labels. Raises ValueError listing every problem found."""
    from google.cloud import dataproc_v1

    if not isinstance(job, Mapping):
        raise ValueError(f"a Dataproc job must be a dict, got {type(job).__name__}")
    try:
        proto = dataproc_v1.Job(**job)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a valid dataproc_v1.Job: {exc}") from exc

    problems: list[str] = []
    kind = dataproc_v1.Job.pb(proto).WhichOneof("type_job")
    if kind != "pyspark_job":
        problems.append(f"job must be a pyspark_job (found {kind or 'no job type'})")

    cluster = proto.placement.cluster_name
    if not cluster:
        problems.append("placement.cluster_name is required")
    elif not _CLUSTER_RE.match(cluster):
        problems.append(
            f"placement.cluster_name {cluster!r} is invalid: lowercase letters, digits and '-', "
            "starting with a letter, not ending with '-', at most 52 characters"
        )

    if kind == "pyspark_job":
        raw = job.get("pyspark_job") or {}
        pj = proto.pyspark_job
        main = pj.main_python_file_uri
        if not main:
            problems.append("pyspark_job.main_python_file_uri is required")
        elif not _GS_OBJECT_RE.match(main) or not main.endswith(".py"):
            problems.append(f"pyspark_job.main_python_file_uri must be a gs://BUCKET/PATH.py URI, got {main!r}")
        # proto-plus turns a str into a list of characters; catch that in the dict itself.
        for field in ("args", *_REPEATED_URI_FIELDS):
            if isinstance(raw, Mapping) and field in raw and not _is_str_list(raw[field]):
                problems.append(f"pyspark_job.{field} must be a list of strings")
        for uri in pj.python_file_uris:
            if not _GS_OBJECT_RE.match(uri) or not uri.endswith((".py", ".zip", ".egg")):
                problems.append(f"pyspark_job.python_file_uris entry must be a gs:// .py/.zip/.egg URI, got {uri!r}")
        for field in ("jar_file_uris", "file_uris", "archive_uris"):
            for uri in getattr(pj, field):
                if not uri.startswith(("gs://", "file://", "hdfs://")):
                    problems.append(f"pyspark_job.{field} entry must be a gs://, file:// or hdfs:// URI, got {uri!r}")
        for key in pj.properties:
            if not key.strip() or key != key.strip():
                problems.append(f"pyspark_job.properties has an invalid key {key!r}")

    _check_labels(dict(proto.labels), problems)

    if "reference" in job:
        job_id = proto.reference.job_id
        if job_id and not _JOB_ID_RE.match(job_id):
            problems.append(f"reference.job_id {job_id!r} is invalid: 1-100 letters, digits, '_' or '-'")
        project = proto.reference.project_id
        if project and not _PROJECT_RE.match(project):
            problems.append(f"reference.project_id {project!r} is not a valid GCP project id")

    if "scheduling" in job:
        per_hour, total = proto.scheduling.max_failures_per_hour, proto.scheduling.max_failures_total
        if not 0 <= per_hour <= _MAX_FAILURES_PER_HOUR:
            problems.append(f"scheduling.max_failures_per_hour must be 0-{_MAX_FAILURES_PER_HOUR}, got {per_hour}")
        if not 0 <= total <= _MAX_FAILURES_TOTAL:
            problems.append(f"scheduling.max_failures_total must be 0-{_MAX_FAILURES_TOTAL}, got {total}")

    if problems:
        raise ValueError("invalid Dataproc job: " + "; ".join(problems))
    return proto


# --------------------------------------------------------------------------------------------------
# gcloud


def _gcloud_list(items: Sequence[str]) -> str:
    """A gcloud list/dict flag value, switching to gcloud's `^DELIM^` syntax (gcloud topic escaping)
    when an item contains a comma, e.g. spark.jars.packages with two packages."""
    joined = ",".join(items)
    if not any("," in item for item in items) and not joined.startswith("^"):
        return joined
    for delim in ("#", "|", "@", "~", ";", "%", "!", "+", "*"):
        if not any(delim in item for item in items):
            return f"^{delim}^" + delim.join(items)
    raise ValueError(f"cannot find a gcloud list delimiter for {items!r}")


# What job_to_gcloud_command can express; anything else raises rather than being dropped silently.
_GCLOUD_FIELDS: dict[str, set[str]] = {
    "reference": {"project_id", "job_id"},
    "placement": {"cluster_name"},
    "labels": set(),
    "pyspark_job": {"main_python_file_uri", "args", "properties", *_REPEATED_URI_FIELDS},
    "scheduling": {"max_failures_per_hour", "max_failures_total"},
}


def job_to_gcloud_command(job: dict, region: str, project_id: str | None = None, async_: bool = False) -> list[str]:
    """The `gcloud dataproc jobs submit pyspark ...` argv that submits the same Job as `job`."""
    validate_job(job)
    if not region or not _REGION_RE.match(region):
        raise ValueError(f"region must be a Dataproc region such as us-central1, got {region!r}")
    for section, value in job.items():
        if section not in _GCLOUD_FIELDS:
            raise ValueError(f"job field {section!r} has no gcloud flag in this converter")
        allowed = _GCLOUD_FIELDS[section]
        if allowed and isinstance(value, Mapping):
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise ValueError(f"job fields {section}.{unknown} have no gcloud flag in this converter")

    reference = job.get("reference") or {}
    ref_project = reference.get("project_id")
    if project_id and ref_project and project_id != ref_project:
        raise ValueError(f"project_id {project_id!r} differs from the job's reference.project_id {ref_project!r}")
    project = project_id or ref_project
    pj = job["pyspark_job"]

    cmd = [
        "gcloud",
        "dataproc",
        "jobs",
        "submit",
        "pyspark",
        pj["main_python_file_uri"],
        f"--cluster={job['placement']['cluster_name']}",
        f"--region={region}",
    ]
    if project:
        cmd.append(f"--project={project}")
    if reference.get("job_id"):
        cmd.append(f"--id={reference['job_id']}")  # hidden but supported flag of `jobs submit`
    for flag, field in (
        ("--py-files", "python_file_uris"),
        ("--jars", "jar_file_uris"),
        ("--files", "file_uris"),
        ("--archives", "archive_uris"),
    ):
        if pj.get(field):
            cmd.append(f"{flag}={_gcloud_list(list(pj[field]))}")
    if pj.get("properties"):
        cmd.append(f"--properties={_gcloud_list([f'{k}={v}' for k, v in sorted(pj['properties'].items())])}")
    if job.get("labels"):
        cmd.append(f"--labels={_gcloud_list([f'{k}={v}' for k, v in sorted(job['labels'].items())])}")
    scheduling = job.get("scheduling") or {}
    if scheduling.get("max_failures_per_hour"):
        cmd.append(f"--max-failures-per-hour={int(scheduling['max_failures_per_hour'])}")
    if scheduling.get("max_failures_total"):
        cmd.append(f"--max-failures-total={int(scheduling['max_failures_total'])}")
    if async_:
        cmd.append("--async")
    args = list(pj.get("args") or [])
    if args:
        cmd += ["--", *args]
    return cmd


# --------------------------------------------------------------------------------------------------
# CLI


def _option_type(annotation: Any) -> type | None:
    """int/float/str/bool from an annotation such as `int | None`; None for anything else (lists)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _option_type(inner[0]) if len(inner) == 1 else None
    return annotation if annotation in (int, float, str, bool) else None


def _function_options(func: Callable[..., Any]) -> dict[str, tuple[type, bool]]:
    """keyword name -> (type, required) for the scalar keyword-only parameters of `func`."""
    hints = typing.get_type_hints(func)
    out: dict[str, tuple[type, bool]] = {}
    for name, param in inspect.signature(func).parameters.items():
        opt_type = _option_type(hints.get(name))
        if param.kind is inspect.Parameter.KEYWORD_ONLY and opt_type is not None:
            out[name] = (opt_type, param.default is inspect.Parameter.empty)
    return out


_ARG_BUILDERS: dict[str, Callable[..., list[str]]] = {"training": training_args, "serving": serving_args}


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sentiment_mlops.jobs.dataproc_spec",
        description="Dataproc job specs from the one builder (used by ci-cd/*.sh).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    layout = sub.add_parser("layout", help="print entry names, URIs, bucket names and defaults as KEY=VALUE lines")
    layout.add_argument("--gcs-bucket", required=True)
    layout.add_argument("--source-type", default="file", help="serving source type for the serving paths")
    layout.add_argument("--run-tag", default="RUN_TAG", help="run tag for the training output folder")

    job_opts = argparse.ArgumentParser(add_help=False)
    job_opts.add_argument("--kind", choices=sorted(_ARG_BUILDERS), required=True)
    job_opts.add_argument("--project-id", required=True)
    job_opts.add_argument("--region", required=True)
    job_opts.add_argument("--cluster", required=True)
    job_opts.add_argument("--gcs-bucket", help="base bucket name; code URI defaults to gs://BUCKET-code/jobs")
    job_opts.add_argument("--code-uri", help="where entry scripts and the zip are (overrides --gcs-bucket)")
    job_opts.add_argument("--job-id")
    job_opts.add_argument("--label", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    job_opts.add_argument("--property", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    job_opts.add_argument(
        "--kafka", action="store_true", help="serving: add the Kafka connector (implied by kafka use)"
    )
    job_opts.add_argument("--max-failures-per-hour", type=int, help="serving: restart the driver after failures")
    # The job's own arguments, generated from training_args/serving_args so the CLI cannot lag behind.
    # SUPPRESS keeps unset options out of the namespace: the builder's defaults then apply.
    seen: dict[str, type] = {}
    for func in _ARG_BUILDERS.values():
        for name, (opt_type, _required) in _function_options(func).items():
            if name in seen:
                continue
            seen[name] = opt_type
            flag = "--" + name.replace("_", "-")
            if opt_type is bool:
                job_opts.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
            else:
                job_opts.add_argument(flag, dest=name, type=opt_type, default=argparse.SUPPRESS)

    gcmd = sub.add_parser("gcloud-command", parents=[job_opts], help="print the gcloud submit command")
    gcmd.add_argument("--async", dest="async_", action="store_true")
    gcmd.add_argument("--print0", action="store_true", help="NUL-separated argv (for bash mapfile) instead of shell")
    sub.add_parser("job-json", parents=[job_opts], help="print the job dict as JSON")
    return parser


def _job_from_cli(ns: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    builder = _ARG_BUILDERS[ns.kind]
    accepted = _function_options(builder)
    all_options = {n for f in _ARG_BUILDERS.values() for n in _function_options(f)}
    given = {name: getattr(ns, name) for name in all_options if hasattr(ns, name)}
    wrong = sorted(n for n in given if n not in accepted)
    if wrong:
        flags = ", ".join("--" + n.replace("_", "-") for n in wrong)
        raise ValueError(f"{flags} do(es) not apply to --kind {ns.kind}")
    missing = sorted(n for n, (_t, required) in accepted.items() if required and n not in given)
    if missing:
        raise ValueError(f"--kind {ns.kind} needs " + ", ".join("--" + n.replace("_", "-") for n in missing))
    job_args = builder(**given, extra=extra)
    if ns.code_uri:
        code_uri = ns.code_uri.rstrip("/")
    elif ns.gcs_bucket:
        code_uri = default_code_uri(ns.gcs_bucket)
    else:
        raise ValueError("give --gcs-bucket or --code-uri")
    target = DataprocTarget(ns.project_id, ns.region, ns.cluster, code_uri)
    labels, properties = dict(ns.label), dict(ns.property)
    if ns.kind == "training":
        if ns.kafka or ns.max_failures_per_hour:
            raise ValueError("--kafka and --max-failures-per-hour apply to --kind serving only")
        return training_job(target, job_args, labels=labels, job_id=ns.job_id, properties=properties)
    kafka = ns.kafka or given.get("source_type") == "kafka" or bool(given.get("write_kafka"))
    return serving_job(
        target,
        job_args,
        kafka=kafka,
        labels=labels,
        job_id=ns.job_id,
        properties=properties,
        max_failures_per_hour=ns.max_failures_per_hour,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` goes to the job verbatim (split here: argparse would treat such words as
    # positionals and reject or reinterpret them).
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    ns = _build_parser().parse_args(argv)
    try:
        if ns.command == "layout":
            names = bucket_names(ns.gcs_bucket)
            lines = {
                "CODE_URI": default_code_uri(ns.gcs_bucket),
                "TRAINING_ENTRY": TRAINING_ENTRY,
                "SERVING_ENTRY": SERVING_ENTRY,
                "PACKAGE_ZIP": PACKAGE_ZIP,
                "APP_TRAINING": APP_TRAINING,
                "APP_SERVING": APP_SERVING,
                "DEFAULT_SERVING_MODEL": DEFAULT_SERVING_MODEL,
                "DEFAULT_KAFKA_INPUT_TOPIC": DEFAULT_KAFKA_INPUT_TOPIC,
                "DEFAULT_KAFKA_OUTPUT_TOPIC": DEFAULT_KAFKA_OUTPUT_TOPIC,
                **{
                    f"TRAINING_{key.upper()}": value for key, value in training_paths(ns.gcs_bucket, ns.run_tag).items()
                },
                **{
                    f"SERVING_{key.upper()}": value
                    for key, value in serving_paths(ns.gcs_bucket, ns.source_type).items()
                },
                **{f"BUCKET_{key.upper()}": value for key, value in names.items()},
            }
            print("\n".join(f"{k}={v}" for k, v in lines.items()))
            return 0
        job = _job_from_cli(ns, extra)
        if ns.command == "job-json":
            print(json.dumps(job, indent=2, sort_keys=True))
            return 0
        cmd = job_to_gcloud_command(job, ns.region, ns.project_id, async_=ns.async_)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ns.print0:
        sys.stdout.write("".join(f"{part}\0" for part in cmd))
    else:
        print(shlex.join(cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
