#!/usr/bin/env bash
# One-time (and idempotent) setup of a local Airflow for the sentiment DAGs:
#   - AIRFLOW_HOME (default: $SENTIMENT_HOME/airflow; SENTIMENT_HOME defaults to ~/.sentiment-mlops)
#   - dags_folder = airflow/dags of this repository, no example DAGs
#   - `airflow db migrate` (SQLite metadata DB; PostgreSQL with SENTIMENT_PROFILE=production, which
#     starts the profile's PostgreSQL first)
#   - the google_cloud_default connection (Airflow 3 no longer creates default connections; the
#     Dataproc/GCS hooks use it, with Application Default Credentials unless you edit it)
#   - the Variables of sentiment_mlops.orchestration.config, only where unset (yours are kept)
# Usage: airflow/setup_local.sh     then: airflow/start_services.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=airflow/env.sh
. "$ROOT/airflow/env.sh"

if ! command -v airflow >/dev/null 2>&1; then
  echo "ERROR: airflow not found in $VENV_BIN (run scripts/bootstrap.sh, or set SENTIMENT_VENV_BIN)" >&2
  exit 1
fi

mkdir -p "$AIRFLOW_HOME"
echo "[setup] AIRFLOW_HOME=$AIRFLOW_HOME"
if [ "$SENTIMENT_PROFILE" = "production" ]; then
  use_production_profile
  echo "[setup] production profile: Airflow metadata DB on PostgreSQL, $AIRFLOW__CORE__EXECUTOR"
fi
echo "[setup] dags folder: $AIRFLOW__CORE__DAGS_FOLDER"

echo "[setup] airflow db migrate"
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || {
  echo "ERROR: airflow db migrate failed; see $AIRFLOW_HOME/db-migrate.log" >&2
  tail -n 20 "$AIRFLOW_HOME/db-migrate.log" >&2
  exit 1
}

# The generated airflow.cfg points at $AIRFLOW_HOME/dags and loads examples; make plain `airflow`
# commands (without the exports above) see the same DAGs.
CFG="$AIRFLOW_HOME/airflow.cfg"
if [ -f "$CFG" ]; then
  sed -i -e "s|^dags_folder = .*|dags_folder = $AIRFLOW__CORE__DAGS_FOLDER|" \
    -e "s|^load_examples = .*|load_examples = $AIRFLOW__CORE__LOAD_EXAMPLES|" "$CFG"
fi

if airflow connections get google_cloud_default >/dev/null 2>&1; then
  echo "[setup] connection google_cloud_default exists (kept)"
else
  airflow connections add google_cloud_default \
    --conn-json '{"conn_type": "google_cloud_platform", "description": "Dataproc/GCS hooks; Application Default Credentials"}' \
    >/dev/null
  echo "[setup] connection google_cloud_default created (Application Default Credentials)"
fi

# Defaults come from the Python module so the script and the DAGs cannot disagree. MLFLOW_PORT and
# KAFKA_PORT follow start_services.sh when they are set; MLFLOW_TRACKING_URI and
# KAFKA_BOOTSTRAP_SERVERS (docker-compose: other containers) win over both.
VARS_FILE="$(mktemp "${TMPDIR:-/tmp}/sentiment-vars.XXXXXX.json")"
trap 'rm -f "$VARS_FILE"' EXIT
python - "$VARS_FILE" <<'PY'
import json
import os
import sys

from sentiment_mlops.orchestration.config import LOCAL_DEFAULT_VARIABLES

values = dict(LOCAL_DEFAULT_VARIABLES)
if os.environ.get("MLFLOW_PORT"):
    values["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{os.environ['MLFLOW_PORT']}"
if os.environ.get("KAFKA_PORT"):
    values["kafka_bootstrap_servers"] = f"127.0.0.1:{os.environ['KAFKA_PORT']}"
if os.environ.get("MLFLOW_TRACKING_URI"):
    values["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"]
if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
    values["kafka_bootstrap_servers"] = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
with open(sys.argv[1], "w") as handle:
    json.dump(values, handle, indent=2)
PY
airflow variables import --action-on-existing-key skip "$VARS_FILE" >/dev/null
echo "[setup] Variables set where missing: $(python -c 'import json,sys; print(", ".join(json.load(open(sys.argv[1]))))' "$VARS_FILE")"

cat >"$AIRFLOW_HOME/sentiment.env" <<EOF
# source this file to use the airflow CLI against this installation
export AIRFLOW_HOME="$AIRFLOW_HOME"
export AIRFLOW__CORE__DAGS_FOLDER="$AIRFLOW__CORE__DAGS_FOLDER"
export AIRFLOW__CORE__LOAD_EXAMPLES="$AIRFLOW__CORE__LOAD_EXAMPLES"
export PATH="$VENV_BIN:\$PATH"
export SENTIMENT_PROFILE="$SENTIMENT_PROFILE"
EOF
if [ "$SENTIMENT_PROFILE" = "production" ]; then
  # Paths and `$(cat FILE)` only: the env file holds no password.
  python -m sentiment_mlops.backends.local.profile shell-env >>"$AIRFLOW_HOME/sentiment.env"
fi
echo "[setup] done. Environment for the CLI: source $AIRFLOW_HOME/sentiment.env"
echo "[setup] next: airflow/start_services.sh"
