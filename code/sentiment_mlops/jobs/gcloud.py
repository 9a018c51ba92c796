"""The `gcloud dataproc jobs submit pyspark` command line that submits the same Job as a job dict.

CI scripts run this command instead of keeping their own flags, so they cannot drift from the builder.
A job field the converter cannot express raises instead of being dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sentiment_mlops.jobs.validation import REPEATED_URI_FIELDS, validate_job

_REGION_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")

# What job_to_gcloud_command can express (section -> fields; an empty set accepts any key).
_GCLOUD_FIELDS: dict[str, set[str]] = {
    "reference": {"project_id", "job_id"},
    "placement": {"cluster_name"},
    "labels": set(),
    "pyspark_job": {"main_python_file_uri", "args", "properties", *REPEATED_URI_FIELDS},
    "scheduling": {"max_failures_per_hour", "max_failures_total"},
}

_LIST_FLAGS = (
    ("--py-files", "python_file_uris"),
    ("--jars", "jar_file_uris"),
    ("--files", "file_uris"),
    ("--archives", "archive_uris"),
)


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


def _check_expressible(job: Mapping[str, Any]) -> None:
    for section, value in job.items():
        if section not in _GCLOUD_FIELDS:
            raise ValueError(f"job field {section!r} has no gcloud flag in this converter")
        allowed = _GCLOUD_FIELDS[section]
        if allowed and isinstance(value, Mapping):
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise ValueError(f"job fields {section}.{unknown} have no gcloud flag in this converter")


def _job_flags(job: Mapping[str, Any]) -> list[str]:
    """Flags for the optional parts of `job`: file lists, properties, labels, scheduling."""
    pj = job["pyspark_job"]
    flags = [f"{flag}={_gcloud_list(list(pj[field]))}" for flag, field in _LIST_FLAGS if pj.get(field)]
    if pj.get("properties"):
        flags.append(f"--properties={_gcloud_list([f'{k}={v}' for k, v in sorted(pj['properties'].items())])}")
    if job.get("labels"):
        flags.append(f"--labels={_gcloud_list([f'{k}={v}' for k, v in sorted(job['labels'].items())])}")
    scheduling = job.get("scheduling") or {}
    if scheduling.get("max_failures_per_hour"):
        flags.append(f"--max-failures-per-hour={int(scheduling['max_failures_per_hour'])}")
    if scheduling.get("max_failures_total"):
        flags.append(f"--max-failures-total={int(scheduling['max_failures_total'])}")
    return flags


def job_to_gcloud_command(
    job: dict[str, Any], region: str, project_id: str | None = None, async_: bool = False
) -> list[str]:
    """The `gcloud dataproc jobs submit pyspark ...` argv (a list of words) that submits the same Job
    as the dict `job` in `region`. Raises ValueError for an invalid job, region or project, or a job
    field gcloud cannot express."""
    validate_job(job)
    if not region or not _REGION_RE.match(region):
        raise ValueError(f"region must be a Dataproc region such as us-central1, got {region!r}")
    _check_expressible(job)
    reference = job.get("reference") or {}
    ref_project = reference.get("project_id")
    if project_id and ref_project and project_id != ref_project:
        raise ValueError(f"project_id {project_id!r} differs from the job's reference.project_id {ref_project!r}")
    project = project_id or ref_project
    pj = job["pyspark_job"]
    cmd = ["gcloud", "dataproc", "jobs", "submit", "pyspark", pj["main_python_file_uri"]]
    cmd += [f"--cluster={job['placement']['cluster_name']}", f"--region={region}"]
    if project:
        cmd.append(f"--project={project}")
    if reference.get("job_id"):
        cmd.append(f"--id={reference['job_id']}")  # hidden but supported flag of `jobs submit`
    cmd += _job_flags(job)
    if async_:
        cmd.append("--async")
    args = list(pj.get("args") or [])
    if args:
        cmd += ["--", *args]
    return cmd
