#!/usr/bin/env bash
# Train on Dataproc: build the package zip, upload the entry script and the zip to
# gs://${GCS_BUCKET}-code/jobs/, submit the training job and wait for it (exit status = the job's).
#
# The gcloud command line comes from sentiment_mlops.jobs, the builder the Airflow DAG uses,
# so this script cannot submit a different job. Settings come from the environment, flags override.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=ci-cd/common.sh
. "$ROOT/ci-cd/common.sh"

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
Unset optional job settings take the builder's defaults (sentiment_mlops.jobs.arguments.training_args).
Environment: PYTHON (interpreter with google-cloud-dataproc; default .venv/bin/python or python3),
BUILD_DIR (default ROOT/build).
EOF
}

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
EXTRA=()

while [ $# -gt 0 ]; do
  case "$1" in
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
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) common_option "$@"; shift "$SHIFT" ;;  # --project ... --dry-run, else an unknown option
  esac
done

require_settings
use_python

JOB_ID="${JOB_ID:-sentiment-training-$(date -u +%Y%m%d-%H%M%S)}"

# Entry names, code URI and default paths from the builder, so they match the DAGs.
read_layout "$BUCKET" --run-tag "$JOB_ID"
CODE_URI="${CODE_URI:-$LAYOUT_CODE_URI}"
CODE_URI="${CODE_URI%/}"
INPUT="${INPUT:-$LAYOUT_TRAINING_INPUT}"
OUTPUT="${OUTPUT:-$LAYOUT_TRAINING_OUTPUT}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
ZIP_PATH="$BUILD_DIR/$LAYOUT_PACKAGE_ZIP"
ENTRY_PATH="$ROOT/code/$LAYOUT_TRAINING_ENTRY"

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

builder_command "${job_opts[@]}" -- "${EXTRA[@]}"
check_entry "$ENTRY_PATH"

echo "# training job $JOB_ID on cluster $CLUSTER ($REGION), output $OUTPUT" >&2
upload_code "$ENTRY_PATH" "$ZIP_PATH" "$CODE_URI"
x "${SUBMIT[@]}"
[ "$DRY_RUN" = 1 ] || echo "# training job $JOB_ID finished" >&2
