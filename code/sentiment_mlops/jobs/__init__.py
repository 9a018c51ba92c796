"""The Dataproc job specification: the contract between orchestration and the backends.

One job dict (the Dataproc `Job` shape) serves Airflow, the CI scripts and the local runner.

Modules by concern:
    layout      entry script names, bucket names and default gs:// URIs
    arguments   the jobs' own `--flag=value` arguments (training_args, serving_args)
    builders    the job dicts and their Spark properties (training_job, serving_job)
    validation  checks against google.cloud.dataproc_v1.Job (validate_job)
    gcloud      the equivalent `gcloud dataproc jobs submit pyspark` command line
    cli         `python -m sentiment_mlops.jobs.cli` (layout, gcloud-command, job-json)
    packaging   the package zip shipped with every job

Callers write `from sentiment_mlops import jobs` and use the names below. Neither cli nor packaging is
imported here: both run as `python -m`, and a module imported by its package before it runs as
__main__ makes runpy warn.
"""

from sentiment_mlops.jobs.arguments import MODEL_FLAVORS, serving_args, training_args
from sentiment_mlops.jobs.builders import (
    STREAMING_PROPERTIES,
    TRAINING_PROPERTIES,
    DataprocTarget,
    pyspark_job,
    serving_job,
    training_job,
)
from sentiment_mlops.jobs.gcloud import job_to_gcloud_command
from sentiment_mlops.jobs.layout import (
    IMAGE_VERSION_ENV,
    KAFKA_PACKAGE_DEFAULT,
    KAFKA_PACKAGE_ENV,
    PACKAGE_ZIP,
    SERVING_ENTRY,
    TRAINING_ENTRY,
    bucket_names,
    default_code_uri,
    kafka_package,
    kafka_package_for_version,
    serving_paths,
    training_paths,
)
from sentiment_mlops.jobs.validation import validate_job

__all__ = [
    "KAFKA_PACKAGE_DEFAULT",
    "KAFKA_PACKAGE_ENV",
    "IMAGE_VERSION_ENV",
    "MODEL_FLAVORS",
    "PACKAGE_ZIP",
    "SERVING_ENTRY",
    "STREAMING_PROPERTIES",
    "TRAINING_ENTRY",
    "TRAINING_PROPERTIES",
    "DataprocTarget",
    "bucket_names",
    "default_code_uri",
    "job_to_gcloud_command",
    "kafka_package",
    "kafka_package_for_version",
    "pyspark_job",
    "serving_args",
    "serving_job",
    "serving_paths",
    "training_args",
    "training_job",
    "training_paths",
    "validate_job",
]
