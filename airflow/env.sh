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
