#!/usr/bin/env bash
# Stop what start_services.sh started: Airflow standalone (the whole session: api-server, scheduler,
# dag-processor, triggerer, workers, log servers), the Kafka broker and the MLflow server; then check
# that ports 8080, 8793, 8794, 5000 and 9092 (or the configured ones) are free. With
# SENTIMENT_PROFILE=production it stops the profile's PostgreSQL too.
# Local Spark jobs (serving streams) keep running: stop them with `sentiment-jobs kill JOB_ID`, or
# pass --jobs to cancel every active one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=airflow/env.sh
. "$ROOT/airflow/env.sh"

MLFLOW_PORT="${MLFLOW_PORT:-5000}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
WORKER_LOG_PORT="${AIRFLOW_WORKER_LOG_PORT:-8793}"
TRIGGERER_LOG_PORT="${AIRFLOW_TRIGGERER_LOG_PORT:-8794}"
RUN_DIR="$AIRFLOW_HOME/run"
PID_FILE="$RUN_DIR/airflow-standalone.pid"
STOP_JOBS=0
for arg in "$@"; do
  case "$arg" in
    --jobs) STOP_JOBS=1 ;;
    *)
      echo "usage: $0 [--jobs]" >&2
      exit 2
      ;;
  esac
done

session_pids() {  # live processes whose session id is $1
  ps -eo pid=,sid=,stat= | awk -v sid="$1" '$2 == sid && $3 !~ /^Z/ {print $1}'
}

stop_session() {  # SID NAME: SIGTERM the session, SIGKILL after 20 s (the scheduler ignores SIGTERM)
  local sid="$1" name="$2" pids waited=0
  pids="$(session_pids "$sid")"
  if [ -z "$pids" ]; then
    echo "[stop] $name: not running"
    return 0
  fi
  # shellcheck disable=SC2086 # word splitting of the pid list is intended
  kill -TERM $pids 2>/dev/null || true
  while [ -n "$(session_pids "$sid")" ] && [ "$waited" -lt 20 ]; do
    sleep 1
    waited=$((waited + 1))
  done
  pids="$(session_pids "$sid")"
  if [ -n "$pids" ]; then
    echo "[stop] $name: SIGKILL to $(echo "$pids" | wc -w) process(es) still running after ${waited}s"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 1
  fi
  echo "[stop] $name: stopped"
}

if [ "$STOP_JOBS" = "1" ]; then
  python - <<'PY'
from sentiment_mlops.backends.local import jobs as local_jobs

for record in local_jobs.list_jobs("active"):
    print(f"[stop] cancelling local job {record.job_id}: {local_jobs.cancel(record.job_id).state}")
PY
fi

# --- Airflow: started with setsid, so its pid is the session id of everything it spawned ---------
if [ -f "$PID_FILE" ]; then
  stop_session "$(cat "$PID_FILE")" "Airflow standalone"
  rm -f "$PID_FILE"
else
  echo "[stop] Airflow standalone: no pid file ($PID_FILE)"
fi

# --- Kafka and MLflow through their own CLIs (they know their pid files) ----------------------------
python -m sentiment_mlops.backends.local.kafka_broker stop --port "$KAFKA_PORT" || echo "[stop] Kafka: stop reported an error"
python -m sentiment_mlops.backends.local.mlflow_server stop --port "$MLFLOW_PORT" || echo "[stop] MLflow: stop reported an error"
# PostgreSQL (production profile) last: Airflow and MLflow above were its clients.
if [ "$SENTIMENT_PROFILE" = "production" ]; then
  python -m sentiment_mlops.backends.local.postgres stop || echo "[stop] PostgreSQL: stop reported an error"
fi

# --- Ports ----------------------------------------------------------------------------------------
busy="$(
  python - "$AIRFLOW_PORT" "$WORKER_LOG_PORT" "$TRIGGERER_LOG_PORT" "$MLFLOW_PORT" "$KAFKA_PORT" <<'PY'
import socket
import sys
import time

ports = [int(p) for p in sys.argv[1:]]
deadline = time.monotonic() + 15  # sockets of just-killed servers take a moment to close
while True:
    busy = []
    for port in ports:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(str(port))
    if not busy or time.monotonic() > deadline:
        print(" ".join(busy))
        break
    time.sleep(1)
PY
)"
if [ -n "$busy" ]; then
  echo "ERROR: port(s) still in use: $busy (another program, or a service not started by start_services.sh)" >&2
  exit 1
fi
echo "[stop] ports $AIRFLOW_PORT $WORKER_LOG_PORT $TRIGGERER_LOG_PORT $MLFLOW_PORT $KAFKA_PORT are free"
active="$(sentiment-jobs list --state-filter active 2>/dev/null | tail -n +2 | wc -l)"
if [ "$active" -gt 0 ]; then
  echo "[stop] note: $active local Spark job(s) still active (sentiment-jobs list --state-filter active)"
fi
