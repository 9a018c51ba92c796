#!/usr/bin/env bash
# The jobs' tests on Spark 3.5 (Dataproc image 2.2/2.3, Serverless runtime 2.2): makes .venv-spark35 with
# scripts/bootstrap_spark35.sh, then runs the training job, the file-source stream's parsing, the Spark-free
# model's parity with Spark and the Kafka source choice in it. No Airflow there: only these files run.
# SPARK35=1 ./run_tests.sh runs it after the main suite (the GitHub workflow does). Extra arguments go to pytest.
#   scripts/test_spark35.sh
#   scripts/test_spark35.sh -k parity
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${SPARK35_VENV:-$ROOT/.venv-spark35}"
SPARK35_TESTS=(
  tests/unit/test_spark_versions.py
  tests/integration/test_kafka_source_choice.py
  tests/integration/test_serving_parse.py
  tests/integration/test_spark_free_model.py
  tests/integration/test_training_job.py
)
SPARK35_VENV="$VENV" bash scripts/bootstrap_spark35.sh
echo "[tests] pytest on Spark 3.5 ($VENV)"
PYTHONPATH="$ROOT/code:$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$VENV/bin/python" -m pytest -p no:randomly \
  "${SPARK35_TESTS[@]}" "$@"
