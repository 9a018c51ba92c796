#!/usr/bin/env bash
# The main command: the whole flow on the local backend, from a fresh Debian machine.
#   1. set-up: Java 17 if missing, .venv with the packages, a local Airflow (SQLite)
#   2. the MLflow tracking server on 127.0.0.1:$MLFLOW_PORT (SQLite + local artifacts)
#   3. `airflow dags test sentiment_training_local`: LR, RF and LinearSVC on the Sentiment140 sample,
#      logged to MLflow, registered, the best promoted to twitter-sentiment-model-best@production
#   4. a CSV dropped into the streaming input bucket (gs://sentiment-mlops-streaming-input/)
#   5. `airflow dags test sentiment_model_serving` (production mode, file source): the streaming job
#      runs in the background as a local "Dataproc" job (`sentiment-jobs list`); the DAG waits for
#      its first micro-batch (the dropped file), then the predictions are printed
#   6. `airflow dags test sentiment_serving_management` with stop_all: monitoring report, job stopped
# MLflow keeps running for browsing: http://127.0.0.1:$MLFLOW_PORT (stop: airflow/stop_services.sh).
#
# Environment: SENTIMENT_HOME (~/.sentiment-mlops), TRAINING_INPUT (default: the shared 100k sample
# beside the clone, else a 100k sample of the downloaded Sentiment140 archive, see
# sentiment_mlops/backends/local/dataset.py; SENTIMENT140_ARCHIVE_URL for another copy),
# MAX_ROWS (0 = all rows), MLFLOW_PORT (5000), KEEP_SERVING=1 to leave the stream running.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh

export PATH="$ROOT/.venv/bin:$PATH"
export SENTIMENT_HOME="${SENTIMENT_HOME:-$HOME/.sentiment-mlops}"
export SENTIMENT_BACKEND=local
export AIRFLOW_HOME="${AIRFLOW_HOME:-$SENTIMENT_HOME/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/airflow/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
export MLFLOW_PORT="${MLFLOW_PORT:-5000}"
MAX_ROWS="${MAX_ROWS:-0}"
INPUT="${TRAINING_INPUT:-${SENTIMENT140_SAMPLE:-}}"
SHARED_SAMPLE="$ROOT/../shared/data/sentiment140/train_100k.csv"
if [ -z "$INPUT" ] && [ -f "$SHARED_SAMPLE" ]; then
  INPUT="$SHARED_SAMPLE"
elif [ -z "$INPUT" ]; then
  # No sample given and none beside the clone: download Sentiment140 (cached under $SENTIMENT_HOME)
  # and sample 100,000 balanced tweets; offline it stops with one error naming the options.
  printf '\n==> %s\n' "Training data: Sentiment140 sample in $SENTIMENT_HOME/datasets/sentiment140"
  INPUT="$(python -m sentiment_mlops.backends.local.dataset)" || exit 2
fi
[ -f "$INPUT" ] || { echo "ERROR: training data not found: $INPUT (set TRAINING_INPUT)" >&2; exit 2; }

step() { printf '\n==> %s\n' "$*"; }

step "Airflow set-up ($AIRFLOW_HOME)"
bash airflow/setup_local.sh
airflow variables set MLFLOW_TRACKING_URI "http://127.0.0.1:$MLFLOW_PORT" >/dev/null
airflow variables set SENTIMENT_BACKEND local >/dev/null
# A short trigger so the demo file is scored within seconds (default 30 s).
airflow variables set serving_batch_interval "${SERVING_BATCH_INTERVAL:-5}" >/dev/null

step "MLflow tracking server on port $MLFLOW_PORT"
if ! python -m sentiment_mlops.backends.local.mlflow_server status --port "$MLFLOW_PORT"; then
  python -m sentiment_mlops.backends.local.mlflow_server start --port "$MLFLOW_PORT"
fi

step "Training: airflow dags test sentiment_training_local ($INPUT, max_rows=$MAX_ROWS)"
airflow dags test sentiment_training_local \
  -c "{\"input_path\": \"$INPUT\", \"max_rows\": $MAX_ROWS}" >"$SENTIMENT_HOME/training-dag.log" 2>&1 || {
  echo "ERROR: the training DAG failed; last lines of $SENTIMENT_HOME/training-dag.log:" >&2
  tail -n 40 "$SENTIMENT_HOME/training-dag.log" >&2
  exit 1
}
python - <<'PY'
from pathlib import Path
from sentiment_mlops.core.settings import load_settings
reports = sorted(load_settings("local").bucket_root.glob("*-models/training/*/training_report.md"), key=lambda p: p.stat().st_mtime)
print(reports[-1].read_text() if reports else "(no training report found)")
PY

step "Dropping a CSV into the streaming input bucket"
GCS_BUCKET_VAR="$(airflow variables get GCS_BUCKET)"
python -m sentiment_mlops.backends.local.demo drop --gcs-bucket "$GCS_BUCKET_VAR"

step "Serving: airflow dags test sentiment_model_serving (production mode, file source)"
airflow dags test sentiment_model_serving \
  -c '{"deploy_mode": "production", "source_type": "file", "replace_running": true}' \
  >"$SENTIMENT_HOME/serving-dag.log" 2>&1 || {
  echo "ERROR: the serving DAG failed; last lines of $SENTIMENT_HOME/serving-dag.log:" >&2
  tail -n 40 "$SENTIMENT_HOME/serving-dag.log" >&2
  exit 1
}
sentiment-jobs list --filter 'labels.app=sentiment-serving' --state-filter active

step "Predictions for the dropped file"
python -m sentiment_mlops.backends.local.demo show --gcs-bucket "$GCS_BUCKET_VAR"

if [ "${KEEP_SERVING:-0}" = 1 ]; then
  step "The serving job keeps running; stop it with: sentiment-jobs kill JOB_ID"
  exit 0
fi
step "Monitoring report and stop: airflow dags test sentiment_serving_management (stop_all)"
airflow dags test sentiment_serving_management -c '{"stop_all": true}' \
  >"$SENTIMENT_HOME/management-dag.log" 2>&1 || {
  echo "ERROR: the management DAG failed; see $SENTIMENT_HOME/management-dag.log" >&2
  exit 1
}
grep -E "monitoring report|cancel" "$SENTIMENT_HOME/management-dag.log" | sed 's/^.*INFO - //' | tail -n 4 || true
echo
echo "Done. MLflow UI: http://127.0.0.1:$MLFLOW_PORT  (stop it: python -m sentiment_mlops.backends.local.mlflow_server stop --port $MLFLOW_PORT)"
