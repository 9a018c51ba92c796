# shellcheck shell=bash
# The environment that airflow/setup_local.sh, start_services.sh and stop_services.sh share: the venv
# first on PATH and the local Airflow installation. Sourced, not run; the caller sets ROOT (the
# repository root) first:
#   # shellcheck source-path=SCRIPTDIR/..
#   # shellcheck source=airflow/env.sh
#   . "$ROOT/airflow/env.sh"
#
# AIRFLOW_HOME defaults to $SENTIMENT_HOME/airflow (SENTIMENT_HOME: ~/.sentiment-mlops, as in settings.py);
# the DAGs are airflow/dags of this repository, without Airflow's example DAGs; SENTIMENT_VENV_BIN
# (default .venv/bin) is where airflow, python and spark-submit come from.

VENV_BIN="${SENTIMENT_VENV_BIN:-$ROOT/.venv/bin}"
# One home for run_local.sh, these scripts and the jobs: Airflow's state sits beside the buckets.
export SENTIMENT_HOME="${SENTIMENT_HOME:-$HOME/.sentiment-mlops}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$SENTIMENT_HOME/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/airflow/dags}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
# `airflow standalone` spawns `airflow` by name, and local jobs need the venv's spark-submit.
export PATH="$VENV_BIN:$PATH"
# The UI/API listens on this machine only (Airflow's default is every interface).
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"

# The local control plane's profile: "embedded" (SQLite files, MLflow without authentication; the
# default) or "production" (PostgreSQL for Airflow and MLflow, MLflow basic-auth with proxied
# artifacts; see README "Production profile").
export SENTIMENT_PROFILE="${SENTIMENT_PROFILE:-embedded}"

# Production profile: start PostgreSQL (idempotent: initdb and generated passwords on first use; with
# SENTIMENT_POSTGRES_HOST set to another host, such as docker-compose's `postgres`, only write the
# client files) and export what Airflow and the MLflow clients need (PGPASSFILE, Airflow's database
# and LocalExecutor, MLFLOW_TRACKING_USERNAME/_PASSWORD read from their 0600 file).
use_production_profile() {
  case "${SENTIMENT_POSTGRES_HOST:-127.0.0.1}" in
    127.0.0.1 | localhost) python -m sentiment_mlops.backends.local.postgres start ;;
    *) python -m sentiment_mlops.backends.local.profile secrets ;;
  esac
  eval "$(python -m sentiment_mlops.backends.local.profile shell-env)"
}
