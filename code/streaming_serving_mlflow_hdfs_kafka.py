"""Alias of `streaming_serving_mlflow_hdfs_kafka_optimize.py`, the serving entry script Dataproc runs
(`dataproc_spec.SERVING_ENTRY`): same main, same flags, kept for commands written with this name."""

import sys

from sentiment_mlops.serving.job import main

if __name__ == "__main__":
    sys.exit(main())
