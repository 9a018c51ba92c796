"""Validation of a job dict against `google.cloud.dataproc_v1.Job`, plus the rules the proto type
does not enforce (required fields, URI schemes, GCP names, labels, scheduling limits).

The Dataproc client is imported inside validate_job, not at module import: the CI deploy job installs
only google-cloud-dataproc, and Airflow parses DAG files that import this package often.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sentiment_mlops.core.naming import JOB_ID_RE

if TYPE_CHECKING:
    from google.cloud import dataproc_v1

# Dataproc / GCP naming rules (REST reference of Job, JobReference, Cluster, and GCS bucket names).
# Label rules are written for ASCII; Dataproc also allows other Unicode lowercase letters, which this
# project never needs, so rejecting them is the safer error.
_LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
_MAX_LABELS = 32
_CLUSTER_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,50}[a-z0-9])?$")
_PROJECT_RE = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # optional legacy domain prefix
_GS_OBJECT_RE = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]/.+$")
_MAX_FAILURES_PER_HOUR = 10
_MAX_FAILURES_TOTAL = 240

REPEATED_URI_FIELDS = ("python_file_uris", "jar_file_uris", "file_uris", "archive_uris")


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


def _check_cluster(cluster: str, problems: list[str]) -> None:
    if not cluster:
        problems.append("placement.cluster_name is required")
    elif not _CLUSTER_RE.match(cluster):
        problems.append(
            f"placement.cluster_name {cluster!r} is invalid: lowercase letters, digits and '-', "
            "starting with a letter, not ending with '-', at most 52 characters"
        )


def _check_pyspark(raw: Any, pj: Any, problems: list[str]) -> None:
    """`raw` is the pyspark_job section of the dict, `pj` the same section as a proto."""
    main = pj.main_python_file_uri
    if not main:
        problems.append("pyspark_job.main_python_file_uri is required")
    elif not _GS_OBJECT_RE.match(main) or not main.endswith(".py"):
        problems.append(f"pyspark_job.main_python_file_uri must be a gs://BUCKET/PATH.py URI, got {main!r}")
    # proto-plus turns a str into a list of characters; catch that in the dict itself.
    for field in ("args", *REPEATED_URI_FIELDS):
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


def _check_reference(reference: Any, problems: list[str]) -> None:
    job_id = reference.job_id
    if job_id and not JOB_ID_RE.match(job_id):
        problems.append(f"reference.job_id {job_id!r} is invalid: 1-100 letters, digits, '_' or '-'")
    project = reference.project_id
    if project and not _PROJECT_RE.match(project):
        problems.append(f"reference.project_id {project!r} is not a valid GCP project id")


def _check_scheduling(scheduling: Any, problems: list[str]) -> None:
    per_hour, total = scheduling.max_failures_per_hour, scheduling.max_failures_total
    if not 0 <= per_hour <= _MAX_FAILURES_PER_HOUR:
        problems.append(f"scheduling.max_failures_per_hour must be 0-{_MAX_FAILURES_PER_HOUR}, got {per_hour}")
    if not 0 <= total <= _MAX_FAILURES_TOTAL:
        problems.append(f"scheduling.max_failures_total must be 0-{_MAX_FAILURES_TOTAL}, got {total}")


_Proto = TypeVar("_Proto")


def build_proto(proto_type: type[_Proto], value: Mapping[str, Any], oneof: str) -> tuple[_Proto, str | None]:
    """`proto_type(**value)` (a dataproc_v1 message) and which member of its `oneof` is set; a ValueError
    naming the type when the dict has unknown fields or wrong types."""
    try:
        proto = proto_type(**value)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a valid dataproc_v1.{proto_type.__name__}: {exc}") from exc
    return proto, proto_type.pb(proto).WhichOneof(oneof)  # type: ignore[attr-defined]


def validate_job(job: dict[str, Any]) -> dataproc_v1.Job:
    """Build the `google.cloud.dataproc_v1.Job` for the dict `job` and return it, after checking what
    the proto type does not: required fields, URIs, names and labels. Raises ValueError listing every
    problem found."""
    from google.cloud import dataproc_v1

    if not isinstance(job, Mapping):
        raise ValueError(f"a Dataproc job must be a dict, got {type(job).__name__}")
    proto, kind = build_proto(dataproc_v1.Job, job, "type_job")
    problems: list[str] = []
    if kind != "pyspark_job":
        problems.append(f"job must be a pyspark_job (found {kind or 'no job type'})")
    _check_cluster(proto.placement.cluster_name, problems)
    if kind == "pyspark_job":
        _check_pyspark(job.get("pyspark_job") or {}, proto.pyspark_job, problems)
    _check_labels(dict(proto.labels), problems)
    if "reference" in job:
        _check_reference(proto.reference, problems)
    if "scheduling" in job:
        _check_scheduling(proto.scheduling, problems)
    if problems:
        raise ValueError("invalid Dataproc job: " + "; ".join(problems))
    return proto
