#!/usr/bin/env bash
# Start the local platform in the background: MLflow tracking server, Kafka-protocol broker (Tansu)
# and Airflow standalone (api-server, scheduler, dag-processor, triggerer). Pid and log files go to
# $AIRFLOW_HOME/run; stop everything with airflow/stop_services.sh.
#
# Environment: MLFLOW_PORT (5000), KAFKA_PORT (9092), KAFKA_TOPICS (tweets,predictions),
# AIRFLOW_PORT (8080), AIRFLOW_WORKER_LOG_PORT (8793), AIRFLOW_TRIGGERER_LOG_PORT (8794),
# AIRFLOW_PARALLELISM (4), SKIP_KAFKA=1 to run without the broker.
# SENTIMENT_PROFILE=production first starts PostgreSQL (Airflow's metadata DB and MLflow's stores) and
# runs MLflow with basic-auth and proxied artifacts; SENTIMENT_POSTGRES_PORT (5432),
# SENTIMENT_MLFLOW_ARTIFACTS_DESTINATION (a folder or gs://BUCKET-mlflow-artifacts).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=airflow/env.sh
. "$ROOT/airflow/env.sh"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
# 32 LocalExecutor workers (the default) cost about 1 GB on a small machine; Spark jobs are the
# real work here and run as their own processes.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW_PARALLELISM:-4}"
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
# Task processes reach the API server here; Airflow's default assumes port 8080, so a run on another
# AIRFLOW_PORT would fail every task with "Connection refused".
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW__API__PORT/execution/}"
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${AIRFLOW_WORKER_LOG_PORT:-8793}"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="${AIRFLOW_TRIGGERER_LOG_PORT:-8794}"

MLFLOW_PORT="${MLFLOW_PORT:-5000}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_TOPICS="${KAFKA_TOPICS:-tweets,predictions}"
RUN_DIR="$AIRFLOW_HOME/run"
mkdir -p "$RUN_DIR"

if [ "$SENTIMENT_PROFILE" = "production" ]; then
  # PostgreSQL first; setup is idempotent and migrates Airflow's schema on PostgreSQL.
  MLFLOW_PORT="$MLFLOW_PORT" KAFKA_PORT="$KAFKA_PORT" bash "$ROOT/airflow/setup_local.sh"
  use_production_profile
elif [ ! -f "$AIRFLOW_HOME/airflow.db" ] && [ ! -f "$AIRFLOW_HOME/sentiment.env" ]; then
  echo "[start] $AIRFLOW_HOME is not set up yet: running airflow/setup_local.sh"
  MLFLOW_PORT="$MLFLOW_PORT" KAFKA_PORT="$KAFKA_PORT" bash "$ROOT/airflow/setup_local.sh"
fi

port_open() {
  python - "$1" <<'PY'
import socket
import sys

with socket.socket() as s:
    s.settimeout(0.5)
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

wait_http() {  # URL TIMEOUT_SECONDS
  python - "$1" "$2" <<'PY'
import sys
import time
import urllib.request

url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            if resp.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(2)
sys.exit(1)
PY
}

# --- MLflow -------------------------------------------------------------------------------------
if port_open "$MLFLOW_PORT"; then
  if ! wait_http "http://127.0.0.1:$MLFLOW_PORT/health" 5; then
    echo "ERROR: port $MLFLOW_PORT is taken by something that is not an MLflow server; set MLFLOW_PORT" >&2
    exit 1
  fi
  echo "[start] an MLflow server already answers on port $MLFLOW_PORT: using it"
else
  python -m sentiment_mlops.backends.local.mlflow_server start --port "$MLFLOW_PORT"
fi

# --- Kafka (Tansu) --------------------------------------------------------------------------------
if [ "${SKIP_KAFKA:-0}" = "1" ]; then
  echo "[start] SKIP_KAFKA=1: no broker (serving_source_type=file works without it)"
elif port_open "$KAFKA_PORT"; then
  echo "[start] port $KAFKA_PORT already answers: using the broker there"
else
  python -m sentiment_mlops.backends.local.kafka_broker start --port "$KAFKA_PORT" --topics "$KAFKA_TOPICS"
fi

# --- Airflow standalone ---------------------------------------------------------------------------
PID_FILE="$RUN_DIR/airflow-standalone.pid"
LOG_FILE="$RUN_DIR/airflow-standalone.log"
if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
  echo "[start] Airflow standalone already running (pid $(cat "$PID_FILE"))"
  exit 0
fi
for port in "$AIRFLOW__API__PORT" "$AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT" "$AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"; do
  if port_open "$port"; then
    echo "ERROR: port $port is taken by another program (AIRFLOW_PORT / AIRFLOW_*_LOG_PORT choose others)" >&2
    exit 1
  fi
done
# The standalone log prints the generated admin password and the password file holds it: both 0600
# (umask for everything standalone creates, chmod for files left by an earlier run).
umask 077
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
touch "$LOG_FILE" && chmod 600 "$LOG_FILE"
[ -f "$PASSWORDS" ] && chmod 600 "$PASSWORDS"
# setsid: standalone and all its children form one session/process group that stop_services.sh
# can end as a whole (SIGTERM to standalone alone leaves its children running).
setsid nohup airflow standalone >"$LOG_FILE" 2>&1 </dev/null &
echo $! >"$PID_FILE"
echo "[start] Airflow standalone starting (pid $(cat "$PID_FILE"), log $LOG_FILE)"
if ! wait_http "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" 180; then
  echo "ERROR: Airflow did not answer /api/v2/monitor/health within 180 s; last log lines:" >&2
  tail -n 30 "$LOG_FILE" >&2
  exit 1
fi
echo "[start] Airflow UI: http://127.0.0.1:$AIRFLOW__API__PORT (user admin; password in $PASSWORDS)"
echo "[start] MLflow UI:  http://127.0.0.1:$MLFLOW_PORT"
if [ "$SENTIMENT_PROFILE" = "production" ]; then
  echo "[start] MLflow login: admin, password in $SENTIMENT_HOME/secrets/mlflow-admin.password"
fi
echo "[start] local Spark jobs: sentiment-jobs list (records under \${SENTIMENT_HOME:-~/.sentiment-mlops}/run/jobs)"
