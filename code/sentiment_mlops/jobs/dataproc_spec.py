"""TRANSITIONAL re-export of the job specification, which now lives in modules by concern inside
`sentiment_mlops.jobs` (layout, arguments, builders, validation, gcloud, cli).

It stays only until orchestration (being split in parallel) imports `from sentiment_mlops import jobs`;
delete it then. New code must not import it.
"""

import sys

from sentiment_mlops.core.naming import (
    APP_SERVING,
    APP_TRAINING,
    BACKEND_PROPERTY,
    SOURCE_TYPES,
)
from sentiment_mlops.core.naming import DEFAULT_TRAINING_FILE as TRAINING_INPUT_OBJECT
from sentiment_mlops.core.settings import (
    DEFAULT_EXPERIMENT,
    DEFAULT_KAFKA_INPUT_TOPIC,
    DEFAULT_KAFKA_OUTPUT_TOPIC,
    DEFAULT_REGISTERED_MODEL_NAME,
    DEFAULT_SERVING_MODEL,
)
from sentiment_mlops.jobs import *  # noqa: F403
from sentiment_mlops.jobs import __all__ as _jobs_all
from sentiment_mlops.jobs.cli import build_parser, main

__all__ = [
    *_jobs_all,
    "APP_SERVING",
    "APP_TRAINING",
    "BACKEND_PROPERTY",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_KAFKA_INPUT_TOPIC",
    "DEFAULT_KAFKA_OUTPUT_TOPIC",
    "DEFAULT_REGISTERED_MODEL_NAME",
    "DEFAULT_SERVING_MODEL",
    "SOURCE_TYPES",
    "TRAINING_INPUT_OBJECT",
    "build_parser",
    "main",
]

if __name__ == "__main__":
    sys.exit(main())
