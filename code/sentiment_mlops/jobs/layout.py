"""Where the jobs' code and data live on GCS: entry script names, bucket names and default URIs.

Every bucket derives from one base name (the GCS_BUCKET Variable), so CI, Airflow and the local
backend find the same objects from that one setting.
"""

from __future__ import annotations

import os
import re

from sentiment_mlops.core.naming import BUCKET_SUFFIXES, DEFAULT_TRAINING_FILE, SOURCE_TYPES

TRAINING_ENTRY = "sentiment_multimodel.py"
SERVING_ENTRY = "streaming_serving_mlflow_hdfs_kafka_optimize.py"
PACKAGE_ZIP = "sentiment_mlops.zip"

KAFKA_PACKAGE_DEFAULT = "org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.1"
KAFKA_PACKAGE_ENV = "SPARK_KAFKA_PACKAGE"
IMAGE_VERSION_ENV = "DATAPROC_IMAGE_VERSION"
# The Spark line of each Dataproc image and Serverless runtime version the jobs are tested on (Google's
# version lists), and the Kafka connector built for it: Scala 2.12 on Spark 3.5, 2.13 on Spark 4.
DATAPROC_SPARK = {"2.2": "3.5", "2.3": "3.5", "3.0": "4.0"}
KAFKA_PACKAGE_BY_SPARK = {
    "3.5": "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.3",
    "4.0": KAFKA_PACKAGE_DEFAULT,
}

# GCS bucket names: 3-63 lowercase letters, digits, '-', '_', '.', starting and ending alphanumeric.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def bucket_names(gcs_bucket: str) -> dict[str, str]:
    """The project's buckets derived from the base name `gcs_bucket` (a bare name or `gs://name`).

    Returns kind -> bucket name (code, raw, models, predictions, checkpoint, streaming_input); raises
    ValueError when the base or a derived name breaks the GCS naming rules.
    """
    base = gcs_bucket.strip()
    if base.startswith("gs://"):
        base = base[len("gs://") :].rstrip("/")
    if not base or "/" in base:
        raise ValueError(f"GCS bucket base name must be a bare bucket name, got {gcs_bucket!r}")
    names = {kind: f"{base}{suffix}" for kind, suffix in BUCKET_SUFFIXES.items()}
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
    """Default `input` (the uploaded Sentiment140 CSV) and per-run `output` folder of a training job."""
    names = bucket_names(gcs_bucket)
    return {
        "input": f"gs://{names['raw']}/{DEFAULT_TRAINING_FILE}",
        "output": f"gs://{names['models']}/training/{run_tag}",
    }


def serving_paths(gcs_bucket: str, source_type: str = "file") -> dict[str, str]:
    """Where the serving job reads, writes and checkpoints: keys output, metrics, checkpoint, input.

    The output is the predictions bucket's root, so predictions land in
    `gs://{b}-predictions/predictions/date=YYYY-MM-DD/` with `quarantine/`, `_metrics/` and the
    management DAG's `monitoring/` beside them, as the original project's documents show. The input
    is the streaming-input bucket's root, where those documents drop files (`gsutil cp x.csv
    gs://{b}-streaming-input/`); subfolders are read too. Nothing of the job's own lives in that
    bucket (the checkpoint has a bucket of its own), so the root holds only users' drops.
    One checkpoint per source type: the checkpoint of a file stream cannot resume a Kafka stream.
    """
    check_source_type(source_type)
    names = bucket_names(gcs_bucket)
    output = f"gs://{names['predictions']}"
    return {
        "output": output,
        "metrics": f"{output}/_metrics/batches",
        "checkpoint": f"gs://{names['checkpoint']}/streaming/{source_type}",
        "input": f"gs://{names['streaming_input']}",
    }


def check_source_type(source_type: str) -> None:
    """Raise ValueError unless `source_type` is one of SOURCE_TYPES."""
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"source_type must be one of {', '.join(SOURCE_TYPES)}, got {source_type!r}")


def kafka_package_for_version(version: str) -> str:
    """The Kafka connector for the Spark of a Dataproc image or Serverless runtime version: `2.2`,
    `2.2-debian12` or `2.2.61-ubuntu22` (the image's major.minor decides); ValueError for another."""
    line = re.match(r"^\s*(\d+\.\d+)(?:[.-].*)?$", version or "")
    spark = DATAPROC_SPARK.get(line.group(1)) if line else None
    if spark is None:
        raise ValueError(
            f"unknown Dataproc image or runtime version {version!r}; known: {', '.join(sorted(DATAPROC_SPARK))}"
        )
    return KAFKA_PACKAGE_BY_SPARK[spark]


def kafka_package() -> str:
    """The Kafka connector coordinates for cluster jobs: SPARK_KAFKA_PACKAGE when set, else the connector of
    the cluster's image named by DATAPROC_IMAGE_VERSION (2.2/2.3: Spark 3.5, 3.0: Spark 4.0), else Spark 4's."""
    explicit = os.environ.get(KAFKA_PACKAGE_ENV)
    if explicit:
        return explicit
    image = os.environ.get(IMAGE_VERSION_ENV)
    return kafka_package_for_version(image) if image else KAFKA_PACKAGE_DEFAULT
