"""Streaming serving job (Dataproc `main_python_file_uri`; the package ships as a zip in
`python_file_uris`; `dataproc_spec.SERVING_ENTRY`). `streaming_serving_mlflow_hdfs_kafka.py` is an alias
of it. Run `python code/streaming_serving_mlflow_hdfs_kafka_optimize.py --help` for the arguments."""

import sys

from sentiment_mlops.serving.job import main

if __name__ == "__main__":
    sys.exit(main())
