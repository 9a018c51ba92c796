#!/usr/bin/env bash
# A second virtualenv, .venv-spark35, with pyspark 3.5 and the jobs' own packages (no Airflow), to run
# the training job, the streaming job's file source and the Spark-free model's parity tests on the Spark
# that Dataproc image 2.2/2.3 and Serverless runtime 2.2 ship. Safe to run again.
#   scripts/bootstrap_spark35.sh
#   PYTHONPATH=code .venv-spark35/bin/python -m pytest -p no:randomly \
#     tests/integration/test_training_job.py tests/integration/test_spark_free_model.py
# The Kafka source needs Spark 4 here (its Python data-source reader); on 3.5 the job picks the native
# connector, which Dataproc adds with --packages (README, "Spark versions").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SPARK35_VENV:-$ROOT/.venv-spark35}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "[bootstrap-spark35] ERROR: Python 3.11 or newer is needed; found $("$PYTHON" --version 2>&1)." >&2
  exit 2
fi
if ! command -v java >/dev/null 2>&1; then
  echo "[bootstrap-spark35] ERROR: no java on PATH; run scripts/bootstrap.sh first (it installs OpenJDK 17)" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap-spark35] creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q -r "$ROOT/requirements-spark35.txt"
echo "[bootstrap-spark35] $("$VENV/bin/python" -c 'import pyspark, sys; print(f"pyspark {pyspark.__version__} on Python {sys.version.split()[0]}")') in $VENV"
