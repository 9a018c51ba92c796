"""Which Spark saved a model, and whether a job on another Spark may serve it.

Spark ML reads models written by the same or an older release; a model written by a newer minor release
can carry stages or parameters the older reader does not know, and fails late (mid-stream) or, worse,
loads with defaults. The training job records its Spark version (the `spark_version` tag on its runs
and registry versions; MLflow writes `pyspark_version` into the model's MLmodel too), and the serving
job refuses a model from a newer major.minor than it runs, with one clear line. Patch releases of one
minor line share the persistence format, so 3.5.6 serves a model saved by 3.5.7.

Pure Python (no pyspark import): the versions are passed in as strings.
"""

from __future__ import annotations

import re

SPARK_VERSION_TAG = "spark_version"


class SparkVersionMismatch(RuntimeError):
    """A model saved by a newer Spark than the job's."""


def major_minor(version: str) -> tuple[int, int]:
    """`4.0.1` / `3.5.6-dataproc` / `4.1.0.dev1` -> (4, 0) / (3, 5) / (4, 1); ValueError otherwise."""
    match = re.match(r"^\s*(\d+)\.(\d+)", version or "")
    if not match:
        raise ValueError(f"not a Spark version: {version!r}")
    return int(match.group(1)), int(match.group(2))


def check_servable(model: str, saved_by: str | None, running: str) -> None:
    """Raise SparkVersionMismatch when `saved_by` (the Spark that saved `model`, e.g. `models:/m/3`) is a
    newer major.minor than `running`. An unknown `saved_by` (a model from before versions were recorded)
    passes: the smoke check that follows still loads and scores it."""
    if not saved_by:
        return
    try:
        saved, have = major_minor(saved_by), major_minor(running)
    except ValueError:
        return  # an unparseable record says nothing; do not block serving on it
    if saved > have:
        raise SparkVersionMismatch(
            f"{model} was saved by Spark {saved_by}, newer than this job's Spark {running}: Spark ML cannot "
            f"read models from a later release. Serve it from a job on Spark >= {saved[0]}.{saved[1]} (a newer "
            f"Dataproc image or runtime) or retrain it on Spark {have[0]}.{have[1]}"
        )
