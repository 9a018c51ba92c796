#!/usr/bin/env bash
# Train on Dataproc: build the package zip, upload the entry script and the zip to
# gs://${GCS_BUCKET}-code/jobs/, submit the training job and wait for it (exit status = the job's).
#
# The gcloud command line comes from sentiment_mlops.dataproc_jobs, the builder the Airflow DAG uses,
# so this script cannot submit a different job. Settings come from the environment, flags override.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="$(basename "$0")"

usage() {
  cat <<EOF
Usage: $PROG [options] [-- extra training-job arguments]

Required (flag or environment variable):
  --project ID          GCP_PROJECT_ID
  --cluster NAME        DATAPROC_CLUSTER_NAME
  --bucket NAME         GCS_BUCKET (base name; buckets are NAME-code, NAME-raw, NAME-models, ...)
  --mlflow-uri URL      MLFLOW_TRACKING_URI

Optional:
  --region REGION       GCP_REGION (default us-central1)
  --input URI           TRAINING_INPUT (default gs://NAME-raw/raw/training.1600000.processed.noemoticon.csv)
  --output URI          TRAINING_OUTPUT (default gs://NAME-models/training/JOB_ID)
  --job-id ID           TRAINING_JOB_ID (default sentiment-training-UTCSTAMP)
  --code-uri URI        CODE_URI (default gs://NAME-code/jobs)
  --models LIST         TRAINING_MODELS (lr,rf,svc or all)
  --max-rows N          TRAINING_MAX_ROWS (0 = all)
  --sample-fraction F   TRAINING_SAMPLE_FRACTION
  --num-features N      TRAINING_NUM_FEATURES
  --cv-folds N          TRAINING_CV_FOLDS
  --enable-cv           TRAINING_ENABLE_CV=true
  --experiment NAME     MLFLOW_EXPERIMENT
  --registered-model NAME  REGISTERED_MODEL_NAME
  --dry-run             print the commands instead of running them
  -h, --help            this help
Unset optional job settings take the builder's defaults (sentiment_mlops.dataproc_jobs.training_args).
Environment: PYTHON (interpreter with google-cloud-dataproc; default .venv/bin/python or python3),
BUILD_DIR (default ROOT/build).
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 2; }

PROJECT="${GCP_PROJECT_ID:-}"
REGION="${GCP_REGION:-us-central1}"
CLUSTER="${DATAPROC_CLUSTER_NAME:-}"
BUCKET="${GCS_BUCKET:-}"
MLFLOW_URI="${MLFLOW_TRACKING_URI:-}"
INPUT="${TRAINING_INPUT:-}"
OUTPUT="${TRAINING_OUTPUT:-}"
JOB_ID="${TRAINING_JOB_ID:-}"
CODE_URI="${CODE_URI:-}"
MODELS="${TRAINING_MODELS:-}"
MAX_ROWS="${TRAINING_MAX_ROWS:-}"
SAMPLE_FRACTION="${TRAINING_SAMPLE_FRACTION:-}"
NUM_FEATURES="${TRAINING_NUM_FEATURES:-}"
CV_FOLDS="${TRAINING_CV_FOLDS:-}"
ENABLE_CV="${TRAINING_ENABLE_CV:-}"
EXPERIMENT="${MLFLOW_EXPERIMENT:-}"
REGISTERED_MODEL="${REGISTERED_MODEL_NAME:-}"
DRY_RUN=0
EXTRA=()

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

while [ $# -gt 0 ]; do
  case "$1" in
    --project|--project=*) PROJECT="$(value --project "$@")"; shift "$(nshift "$1")" ;;
    --region|--region=*) REGION="$(value --region "$@")"; shift "$(nshift "$1")" ;;
    --cluster|--cluster=*) CLUSTER="$(value --cluster "$@")"; shift "$(nshift "$1")" ;;
    --bucket|--bucket=*) BUCKET="$(value --bucket "$@")"; shift "$(nshift "$1")" ;;
    --mlflow-uri|--mlflow-uri=*) MLFLOW_URI="$(value --mlflow-uri "$@")"; shift "$(nshift "$1")" ;;
    --input|--input=*) INPUT="$(value --input "$@")"; shift "$(nshift "$1")" ;;
    --output|--output=*) OUTPUT="$(value --output "$@")"; shift "$(nshift "$1")" ;;
    --job-id|--job-id=*) JOB_ID="$(value --job-id "$@")"; shift "$(nshift "$1")" ;;
    --code-uri|--code-uri=*) CODE_URI="$(value --code-uri "$@")"; shift "$(nshift "$1")" ;;
    --models|--models=*) MODELS="$(value --models "$@")"; shift "$(nshift "$1")" ;;
    --max-rows|--max-rows=*) MAX_ROWS="$(value --max-rows "$@")"; shift "$(nshift "$1")" ;;
    --sample-fraction|--sample-fraction=*) SAMPLE_FRACTION="$(value --sample-fraction "$@")"; shift "$(nshift "$1")" ;;
    --num-features|--num-features=*) NUM_FEATURES="$(value --num-features "$@")"; shift "$(nshift "$1")" ;;
    --cv-folds|--cv-folds=*) CV_FOLDS="$(value --cv-folds "$@")"; shift "$(nshift "$1")" ;;
    --experiment|--experiment=*) EXPERIMENT="$(value --experiment "$@")"; shift "$(nshift "$1")" ;;
    --registered-model|--registered-model=*) REGISTERED_MODEL="$(value --registered-model "$@")"; shift "$(nshift "$1")" ;;
    --enable-cv) ENABLE_CV=true; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

missing=()
[ -n "$PROJECT" ] || missing+=("GCP_PROJECT_ID (--project)")
[ -n "$CLUSTER" ] || missing+=("DATAPROC_CLUSTER_NAME (--cluster)")
[ -n "$BUCKET" ] || missing+=("GCS_BUCKET (--bucket)")
[ -n "$MLFLOW_URI" ] || missing+=("MLFLOW_TRACKING_URI (--mlflow-uri)")
[ -n "$REGION" ] || missing+=("GCP_REGION (--region)")
if [ ${#missing[@]} -gt 0 ]; then
  list="$(printf '%s, ' "${missing[@]}")"
  die "missing required setting(s): ${list%, }"
fi

if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT/code${PYTHONPATH:+:$PYTHONPATH}"

JOB_ID="${JOB_ID:-sentiment-training-$(date -u +%Y%m%d-%H%M%S)}"

# Entry names, code URI and default paths from the builder (KEY=VALUE lines), so they match the DAGs.
LAYOUT="$("$PYTHON" -m sentiment_mlops.dataproc_jobs layout --gcs-bucket "$BUCKET" --run-tag "$JOB_ID")" || exit 2
while IFS='=' read -r key val; do
  case "$key" in
    CODE_URI) DEFAULT_CODE_URI="$val" ;;
    TRAINING_ENTRY) TRAINING_ENTRY="$val" ;;
    PACKAGE_ZIP) PACKAGE_ZIP="$val" ;;
    TRAINING_INPUT) DEFAULT_INPUT="$val" ;;
    TRAINING_OUTPUT) DEFAULT_OUTPUT="$val" ;;
  esac
done <<<"$LAYOUT"

CODE_URI="${CODE_URI:-$DEFAULT_CODE_URI}"
CODE_URI="${CODE_URI%/}"
INPUT="${INPUT:-$DEFAULT_INPUT}"
OUTPUT="${OUTPUT:-$DEFAULT_OUTPUT}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
ZIP_PATH="$BUILD_DIR/$PACKAGE_ZIP"
ENTRY_PATH="$ROOT/code/$TRAINING_ENTRY"

job_opts=(--kind training --project-id "$PROJECT" --region "$REGION" --cluster "$CLUSTER"
  --code-uri "$CODE_URI" --job-id "$JOB_ID" --label "trigger=${TRAINING_TRIGGER:-manual}"
  --input "$INPUT" --output "$OUTPUT" --mlflow-uri "$MLFLOW_URI")
[ -z "$MODELS" ] || job_opts+=(--models "$MODELS")
[ -z "$MAX_ROWS" ] || job_opts+=(--max-rows "$MAX_ROWS")
[ -z "$SAMPLE_FRACTION" ] || job_opts+=(--sample-fraction "$SAMPLE_FRACTION")
[ -z "$NUM_FEATURES" ] || job_opts+=(--num-features "$NUM_FEATURES")
[ -z "$CV_FOLDS" ] || job_opts+=(--cv-folds "$CV_FOLDS")
[ -z "$EXPERIMENT" ] || job_opts+=(--mlflow-experiment "$EXPERIMENT")
[ -z "$REGISTERED_MODEL" ] || job_opts+=(--registered-model-name "$REGISTERED_MODEL")
case "${ENABLE_CV,,}" in
  true|1|yes) job_opts+=(--enable-cv) ;;
  false|0|no|"") ;;
  *) die "TRAINING_ENABLE_CV must be true or false, got '$ENABLE_CV'" ;;
esac

# The builder validates everything (names, labels, URIs, ranges) and prints the argv NUL-separated.
CMD_FILE="$(mktemp)"
trap 'rm -f "$CMD_FILE"' EXIT
"$PYTHON" -m sentiment_mlops.dataproc_jobs gcloud-command --print0 "${job_opts[@]}" -- "${EXTRA[@]}" >"$CMD_FILE" || exit 2
mapfile -d '' -t SUBMIT <"$CMD_FILE"

# Print a command the way Python's shlex.join does (tests compare the two), or run it.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    local out="" a q="'"
    for a in "$@"; do
      if [[ -n "$a" && "$a" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
        out+="$a "
      else
        out+="$q${a//$q/$q\"$q\"$q}$q "
      fi
    done
    echo "${out% }"
  else
    "$@"
  fi
}

if [ ! -f "$ENTRY_PATH" ]; then
  [ "$DRY_RUN" = 1 ] || die "entry script $ENTRY_PATH not found"
  echo "$PROG: warning: entry script $ENTRY_PATH not found" >&2
fi

echo "# training job $JOB_ID on cluster $CLUSTER ($REGION), output $OUTPUT" >&2
run "$PYTHON" -m sentiment_mlops.package_zip "$ZIP_PATH"
run gsutil cp "$ENTRY_PATH" "$ZIP_PATH" "$CODE_URI/"
run "${SUBMIT[@]}"
[ "$DRY_RUN" = 1 ] || echo "# training job $JOB_ID finished" >&2
