"""Dataproc Serverless: the same jobs as `dataproc_v1.Batch` (a PySpark batch), built from the job
dicts of :mod:`~sentiment_mlops.jobs.builders`, so a flag or property cannot differ between a cluster
job and a batch; validated against the proto type; and the `gcloud dataproc batches submit pyspark`
command line that submits the same batch (the CI scripts' `--dry-run` prints it).

A batch has no cluster: it names a runtime version (which fixes the Spark version), a service account
and a subnetwork, and a TTL after which Dataproc ends it (the long-running stream needs one longer than
the default 4 hours). Runtime versions and their Spark, as Google documents them: 2.2 -> Spark 3.5
(Python 3.11/3.12), 3.0 -> Spark 4.0. On 3.5 the Kafka source needs the native connector, whose
coordinates :func:`kafka_package_for_runtime` gives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentiment_mlops.jobs.layout import DATAPROC_SPARK, KAFKA_PACKAGE_BY_SPARK
from sentiment_mlops.jobs.validation import REPEATED_URI_FIELDS, _check_labels, build_proto, validate_job

if TYPE_CHECKING:
    from google.cloud import dataproc_v1

RUNTIME_SPARK = DATAPROC_SPARK
DEFAULT_RUNTIME = "2.2"
MIN_TTL_SECONDS = 600
MAX_TTL_SECONDS = 14 * 24 * 3600  # Dataproc's limit: a stream must be redeployed before then
# Batch ids: 4-63 characters, lowercase letters, digits and '-', starting and ending alphanumeric.
_BATCH_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,61}[a-z0-9]$")
_SUBNET_RE = re.compile(r"^(?:projects/[^/]+/regions/[^/]+/subnetworks/)?[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_SA_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$|^\d+-compute@.+$")
_REGION_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
# Cluster-only properties: a batch sizes its executors itself (dynamic allocation), and Serverless
# refuses a fixed executor count with dynamic allocation off only on some runtimes; keep the batch plain.
_CLUSTER_ONLY_PROPERTIES = ("spark.executor.instances", "spark.dynamicAllocation.enabled")


@dataclass(frozen=True)
class ServerlessTarget:
    """Where batches run: project, region, runtime, identity and network (no cluster)."""

    project_id: str
    region: str
    runtime_version: str = DEFAULT_RUNTIME
    service_account: str | None = None
    subnetwork_uri: str | None = None


def kafka_package_for_runtime(runtime_version: str) -> str:
    """The Kafka connector coordinates for the runtime's Spark (Scala 2.12 on 3.5, 2.13 on 4.0)."""
    spark = RUNTIME_SPARK.get(runtime_version)
    if spark is None:
        raise ValueError(f"unknown Serverless runtime {runtime_version!r}; known: {', '.join(sorted(RUNTIME_SPARK))}")
    return KAFKA_PACKAGE_BY_SPARK[spark]


def batch_id_for(job_id: str) -> str:
    """A Dataproc job id as a batch id (lowercase, '_' -> '-'); ValueError when it cannot be one."""
    candidate = job_id.lower().replace("_", "-")
    if not _BATCH_ID_RE.match(candidate):
        raise ValueError(f"{job_id!r} cannot be a batch id: 4-63 lowercase letters, digits and '-'")
    return candidate


def batch_from_job(job: Mapping[str, Any], target: ServerlessTarget, ttl_seconds: int | None = None) -> dict[str, Any]:
    """The `dataproc_v1.Batch` dict running the same PySpark job as the job dict `job` (from
    training_job / serving_job). `ttl_seconds` bounds the batch's life (the stream's; Dataproc's
    default is 4 hours for a batch, and at most 14 days). Validated; raises ValueError listing problems."""
    validate_job(dict(job))
    pj = job["pyspark_job"]
    properties = {k: v for k, v in (pj.get("properties") or {}).items() if k not in _CLUSTER_ONLY_PROPERTIES}
    if "spark.jars.packages" in properties and target.runtime_version in RUNTIME_SPARK:
        # The connector must match the runtime's Spark and Scala, not the builder's default.
        wanted = kafka_package_for_runtime(target.runtime_version)
        packages = [p for p in str(properties["spark.jars.packages"]).split(",") if "spark-sql-kafka" not in p]
        properties["spark.jars.packages"] = ",".join([*packages, wanted])
    execution: dict[str, Any] = {}
    if target.service_account:
        execution["service_account"] = target.service_account
    if target.subnetwork_uri:
        execution["subnetwork_uri"] = target.subnetwork_uri
    if ttl_seconds:
        execution["ttl"] = {"seconds": int(ttl_seconds)}
    batch: dict[str, Any] = {
        "pyspark_batch": {
            "main_python_file_uri": pj["main_python_file_uri"],
            "args": list(pj.get("args") or []),
            **{f: list(pj[f]) for f in REPEATED_URI_FIELDS if pj.get(f)},
        },
        "runtime_config": {"version": target.runtime_version, "properties": properties},
        "labels": dict(job.get("labels") or {}),
    }
    if execution:
        batch["environment_config"] = {"execution_config": execution}
    validate_batch(batch, target)
    return batch


def execution_problems(
    runtime_version: str | None,
    service_account: str | None = None,
    subnetwork_uri: str | None = None,
    ttl_seconds: int | None = None,
) -> dict[str, str]:
    """What is wrong with a batch's runtime, identity, network and TTL, by field name
    (runtime_version, service_account, subnetwork_uri, ttl_seconds); empty when nothing is. None: unset."""
    problems: dict[str, str] = {}
    if runtime_version is not None and runtime_version not in RUNTIME_SPARK:
        problems["runtime_version"] = (
            f"runtime_config.version {runtime_version!r} is not one the jobs are tested on ({sorted(RUNTIME_SPARK)})"
        )
    if service_account is not None and not _SA_RE.match(service_account):
        problems["service_account"] = f"service account {service_account!r} is not a service-account e-mail"
    if subnetwork_uri is not None and not _SUBNET_RE.match(subnetwork_uri):
        problems["subnetwork_uri"] = f"subnetwork {subnetwork_uri!r} is not a subnetwork name or URI"
    if ttl_seconds is not None and not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
        problems["ttl_seconds"] = f"ttl must be between 10 minutes and 14 days, got {ttl_seconds}s"
    return problems


def validate_batch(batch: Mapping[str, Any], target: ServerlessTarget | None = None) -> dataproc_v1.Batch:
    """Build the `google.cloud.dataproc_v1.Batch` for `batch` and check what the proto does not."""
    from google.cloud import dataproc_v1

    proto, kind = build_proto(dataproc_v1.Batch, batch, "batch_config")
    problems: list[str] = []
    if kind != "pyspark_batch":
        problems.append(f"batch must be a pyspark_batch (found {kind or 'no batch type'})")
    if not proto.pyspark_batch.main_python_file_uri.startswith("gs://"):
        problems.append("pyspark_batch.main_python_file_uri must be a gs:// URI")
    execution = proto.environment_config.execution_config
    raw_ttl = dataproc_v1.Batch.pb(proto).environment_config.execution_config.ttl  # protobuf Duration
    problems += execution_problems(
        proto.runtime_config.version or None,
        execution.service_account or None,
        execution.subnetwork_uri or None,
        raw_ttl.seconds if raw_ttl.ByteSize() else None,
    ).values()
    _check_labels(dict(proto.labels), problems)
    if target is not None and not _REGION_RE.match(target.region or ""):
        problems.append(f"region must be a Dataproc region such as us-central1, got {target.region!r}")
    if problems:
        raise ValueError("invalid Dataproc batch: " + "; ".join(problems))
    return proto


def batch_to_gcloud_command(
    batch: Mapping[str, Any], target: ServerlessTarget, batch_id: str | None = None, async_: bool = True
) -> list[str]:
    """The `gcloud dataproc batches submit pyspark ...` argv that submits `batch` as `batch_id`."""
    from sentiment_mlops.jobs.gcloud import _gcloud_list

    validate_batch(batch, target)
    pb = batch["pyspark_batch"]
    cmd = [
        "gcloud",
        "dataproc",
        "batches",
        "submit",
        "pyspark",
        pb["main_python_file_uri"],
        f"--region={target.region}",
    ]
    if target.project_id:
        cmd.append(f"--project={target.project_id}")
    if batch_id:
        cmd.append(f"--batch={batch_id_for(batch_id)}")
    cmd.append(f"--version={batch['runtime_config']['version']}")
    for flag, field in (("--py-files", "python_file_uris"), ("--jars", "jar_file_uris"), ("--files", "file_uris"),
                        ("--archives", "archive_uris")):  # fmt: skip
        if pb.get(field):
            cmd.append(f"{flag}={_gcloud_list(list(pb[field]))}")
    properties = batch["runtime_config"].get("properties") or {}
    if properties:
        cmd.append(f"--properties={_gcloud_list([f'{k}={v}' for k, v in sorted(properties.items())])}")
    if batch.get("labels"):
        cmd.append(f"--labels={_gcloud_list([f'{k}={v}' for k, v in sorted(batch['labels'].items())])}")
    execution = (batch.get("environment_config") or {}).get("execution_config") or {}
    if execution.get("service_account"):
        cmd.append(f"--service-account={execution['service_account']}")
    if execution.get("subnetwork_uri"):
        cmd.append(f"--subnet={execution['subnetwork_uri']}")
    if execution.get("ttl"):
        cmd.append(f"--ttl={int(execution['ttl']['seconds'])}s")
    if async_:
        cmd.append("--async")
    if pb.get("args"):
        cmd += ["--", *pb["args"]]
    return cmd
