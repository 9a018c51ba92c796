# shellcheck shell=bash
# What ci-cd/train-model.sh, ci-cd/deploy-serving.sh and test_dataproc.sh share: the Dataproc settings
# and their flags, the required-settings check, the interpreter, the job builder's layout and the
# dry-run runner; for the two job scripts also the builder's gcloud command, the entry-script check and
# the code upload. Sourced, not run: the caller sets ROOT (the repository root) and `set -euo pipefail`
# first, then
#   # shellcheck source-path=SCRIPTDIR/..        (the script's folder relative to ROOT)
#   # shellcheck source=ci-cd/common.sh
#   . "$ROOT/ci-cd/common.sh"

PROG="$(basename "$0")"

die() { echo "$PROG: error: $*" >&2; exit 2; }

# The shared settings: environment first, flags (common_option) override.
PROJECT="${GCP_PROJECT_ID:-}"
REGION="${GCP_REGION:-us-central1}"
CLUSTER="${DATAPROC_CLUSTER_NAME:-}"
BUCKET="${GCS_BUCKET:-}"
MLFLOW_URI="${MLFLOW_TRACKING_URI:-}"
DRY_RUN=0
# SENTIMENT_BACKEND=dataproc-serverless: jobs become Dataproc Serverless batches (no cluster), on
# DATAPROC_RUNTIME_VERSION (2.2 = Spark 3.5, 3.0 = Spark 4.0), as DATAPROC_SERVICE_ACCOUNT in
# DATAPROC_SUBNETWORK when set.
SERVERLESS=0
[ "${SENTIMENT_BACKEND:-}" = dataproc-serverless ] && SERVERLESS=1

# value OPTION "$@": the option's value from --opt=value or --opt value.
value() {
  local opt="$1"; shift
  case "$1" in
    *=*) printf '%s' "${1#*=}" ;;
    *) [ $# -ge 2 ] || die "$opt needs a value"; printf '%s' "$2" ;;
  esac
}
# shift count for an option just read by value()
nshift() { case "$1" in *=*) echo 1 ;; *) echo 2 ;; esac; }

# common_option "$@": read one shared option (--project, --region, --cluster, --bucket, --mlflow-uri,
# --dry-run) and set SHIFT to the number of words it took; anything else is an unknown option.
# Call it as a plain command (not in a condition), so a missing value stops the script.
# shellcheck disable=SC2034 # SHIFT is the caller's: common_option "$@"; shift "$SHIFT"
common_option() {
  case "$1" in
    --project|--project=*) PROJECT="$(value --project "$@")" ;;
    --region|--region=*) REGION="$(value --region "$@")" ;;
    --cluster|--cluster=*) CLUSTER="$(value --cluster "$@")" ;;
    --bucket|--bucket=*) BUCKET="$(value --bucket "$@")" ;;
    --mlflow-uri|--mlflow-uri=*) MLFLOW_URI="$(value --mlflow-uri "$@")" ;;
    --dry-run) DRY_RUN=1; SHIFT=1; return 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  SHIFT="$(nshift "$1")"
}

# Exit 2 naming every shared setting that is empty.
require_settings() {
  local missing=() list
  [ -n "$PROJECT" ] || missing+=("GCP_PROJECT_ID (--project)")
  [ -n "$CLUSTER" ] || [ "$SERVERLESS" = 1 ] || missing+=("DATAPROC_CLUSTER_NAME (--cluster)")
  [ -n "$BUCKET" ] || missing+=("GCS_BUCKET (--bucket)")
  [ -n "$MLFLOW_URI" ] || missing+=("MLFLOW_TRACKING_URI (--mlflow-uri)")
  [ -n "$REGION" ] || missing+=("GCP_REGION (--region)")
  if [ ${#missing[@]} -gt 0 ]; then
    list="$(printf '%s, ' "${missing[@]}")"
    die "missing required setting(s): ${list%, }"
  fi
}

# PYTHON (default: the repository's .venv, else python3) with the package on PYTHONPATH.
use_python() {
  if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
  fi
  export PYTHONPATH="$ROOT/code${PYTHONPATH:+:$PYTHONPATH}"
}

# read_layout BUCKET [ARG...]: what the job builder derives from the base bucket name (and ARG...:
# --run-tag, --source-type), so the scripts use the DAGs' names and paths: each KEY=VALUE line of
# `python -m sentiment_mlops.jobs.cli layout` as the variable LAYOUT_KEY (LAYOUT_CODE_URI,
# LAYOUT_PACKAGE_ZIP, ...), and the bucket names (BUCKET_*) in the array LAYOUT_BUCKETS, in the
# builder's order. Exit 2 when it fails.
read_layout() {
  local bucket="$1" layout key val
  shift
  layout="$("$PYTHON" -m sentiment_mlops.jobs.cli layout --gcs-bucket "$bucket" "$@")" || exit 2
  LAYOUT_BUCKETS=()
  while IFS='=' read -r key val; do
    if [[ "$key" =~ ^[A-Z][A-Z0-9_]*$ ]]; then printf -v "LAYOUT_$key" '%s' "$val"; fi
    if [[ "$key" == BUCKET_* ]]; then LAYOUT_BUCKETS+=("$val"); fi
  done <<<"$layout"
}

# quote WORD...: the words the way Python's shlex.join prints them (tests compare the two).
quote() {
  local out="" a q="'"
  for a in "$@"; do
    if [[ -n "$a" && "$a" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then out+="$a "; else out+="$q${a//$q/$q\"$q\"$q}$q "; fi
  done
  echo "${out% }"
}

# x COMMAND...: run it, or in dry-run mode print it the way Python's shlex.join would.
x() {
  if [ "$DRY_RUN" = 1 ]; then quote "$@"; else "$@"; fi
}

# The train and deploy scripts: -------------------------------------------------------------------

# builder_command ARG...: the gcloud command line sentiment_mlops.jobs.cli builds for ARG...
# (the builder validates names, labels, URIs, ranges and Kafka settings), into the array SUBMIT;
# exit 2 when the builder rejects them.
builder_command() {
  CMD_FILE="$(mktemp)"
  trap 'rm -f "$CMD_FILE"' EXIT
  local serverless=()
  if [ "$SERVERLESS" = 1 ]; then
    serverless=(--serverless --runtime-version "${DATAPROC_RUNTIME_VERSION:-2.2}")
    [ -z "${DATAPROC_SERVICE_ACCOUNT:-}" ] || serverless+=(--service-account "$DATAPROC_SERVICE_ACCOUNT")
    [ -z "${DATAPROC_SUBNETWORK:-}" ] || serverless+=(--subnetwork "$DATAPROC_SUBNETWORK")
    [ -z "${BATCH_TTL_SECONDS:-}" ] || serverless+=(--ttl-seconds "$BATCH_TTL_SECONDS")
  fi
  "$PYTHON" -m sentiment_mlops.jobs.cli gcloud-command --print0 "${serverless[@]}" "$@" >"$CMD_FILE" || exit 2
  # shellcheck disable=SC2034 # SUBMIT is the caller's
  mapfile -d '' -t SUBMIT <"$CMD_FILE"
}

# check_entry PATH: the job's entry script must exist (a dry run only warns).
check_entry() {
  if [ ! -f "$1" ]; then
    [ "$DRY_RUN" = 1 ] || die "entry script $1 not found"
    echo "$PROG: warning: entry script $1 not found" >&2
  fi
}

# upload_code ENTRY_PATH ZIP_PATH CODE_URI: build the package zip and copy it with the entry script
# to CODE_URI/.
upload_code() {
  x "$PYTHON" -m sentiment_mlops.jobs.packaging "$2"
  x gsutil cp "$1" "$2" "$3/"
}
