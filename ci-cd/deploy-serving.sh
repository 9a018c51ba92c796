#!/usr/bin/env bash
# Deploy the streaming serving job on Dataproc: build the package zip, upload the entry script and
# the zip to gs://${GCS_BUCKET}-code/jobs/, stop the serving job already running on the cluster (two
# streams on one checkpoint would conflict), submit the new one with --async and print its id.
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
Usage: $PROG [options] [-- extra serving-job arguments]

Required (flag or environment variable):
  --project ID            GCP_PROJECT_ID
  --cluster NAME          DATAPROC_CLUSTER_NAME
  --bucket NAME           GCS_BUCKET (base name; buckets are NAME-code, NAME-predictions, ...)
  --mlflow-uri URL        MLFLOW_TRACKING_URI

Optional:
  --region REGION         GCP_REGION (default us-central1)
  --source-type file|kafka  SERVING_SOURCE_TYPE (default file)
  --input-path URI        SERVING_INPUT_PATH (file source; default the bucket root gs://NAME-streaming-input)
  --kafka-bootstrap HOSTS KAFKA_BOOTSTRAP_SERVERS (required for the kafka source)
  --kafka-topic TOPIC     KAFKA_INPUT_TOPIC (kafka source; default tweets)
  --write-kafka [true|false]  SERVING_WRITE_KAFKA (true for the kafka source; KAFKA_OUTPUT_TOPIC
                          default predictions, KAFKA_OUTPUT_BOOTSTRAP default the input brokers)
  --output-path URI       SERVING_OUTPUT_PATH (default gs://NAME-predictions: predictions/date=D/ in it)
  --checkpoint URI        SERVING_CHECKPOINT (default gs://NAME-checkpoint/streaming/SOURCE_TYPE)
  --model-name NAME       SERVING_MODEL_NAME (default twitter-sentiment-model-best)
  --model-stage STAGE     SERVING_MODEL_STAGE
  --challenger-alias ALIAS  SERVING_CHALLENGER_ALIAS (shadow challenger scored beside the served model
                          while the alias exists; default challenger, none: off)
  --job-id ID             SERVING_JOB_ID (default sentiment-serving-SOURCE_TYPE-UTCSTAMP)
  --code-uri URI          CODE_URI (default gs://NAME-code/jobs)
  --keep-existing [true|false]  SERVING_KEEP_EXISTING=true: do not stop running serving jobs
  --dry-run               print the commands instead of running them
  -h, --help              this help
More job settings by environment: SERVING_MODEL_FLAVOR, SERVING_BATCH_INTERVAL, SERVING_RELOAD_INTERVAL,
SERVING_QUARANTINE_PATH, SERVING_MAX_FILES_PER_TRIGGER, SERVING_MAX_OFFSETS_PER_TRIGGER,
SERVING_METRICS_PATH, SERVING_MAX_FAILURES_PER_HOUR (Dataproc driver restarts), SPARK_KAFKA_PACKAGE,
DATAPROC_IMAGE_VERSION (the cluster's image, e.g. 2.2: picks the Kafka connector for its Spark).
Unset job settings take the builder's defaults (sentiment_mlops.jobs.arguments.serving_args).
Environment: PYTHON (interpreter with google-cloud-dataproc; default .venv/bin/python or python3),
BUILD_DIR (default ROOT/build).
EOF
}

SOURCE_TYPE="${SERVING_SOURCE_TYPE:-file}"
INPUT_PATH="${SERVING_INPUT_PATH:-}"
KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-}"
KAFKA_TOPIC="${KAFKA_INPUT_TOPIC:-}"
WRITE_KAFKA="${SERVING_WRITE_KAFKA:-}"
KAFKA_OUT_BOOTSTRAP="${KAFKA_OUTPUT_BOOTSTRAP:-}"
KAFKA_OUT_TOPIC="${KAFKA_OUTPUT_TOPIC:-}"
OUTPUT_PATH="${SERVING_OUTPUT_PATH:-}"
CHECKPOINT="${SERVING_CHECKPOINT:-}"
MODEL_NAME="${SERVING_MODEL_NAME:-}"
MODEL_STAGE="${SERVING_MODEL_STAGE:-}"
CHALLENGER_ALIAS="${SERVING_CHALLENGER_ALIAS:-}"
JOB_ID="${SERVING_JOB_ID:-}"
CODE_URI="${CODE_URI:-}"
KEEP_EXISTING="${SERVING_KEEP_EXISTING:-false}"
EXTRA=()

# A boolean flag alone means true; `--flag true|false` and `--flag=false` set it (the original
# project's scripts pass `--write-kafka true`).
is_bool_word() { case "${1,,}" in true|false|yes|no|1|0) return 0 ;; *) return 1 ;; esac; }
flag_value() {
  case "$1" in
    *=*) echo "${1#*=}" ;;
    *) if [ $# -gt 1 ] && is_bool_word "$2"; then echo "$2"; else echo true; fi ;;
  esac
}
flag_shift() {
  case "$1" in
    *=*) echo 1 ;;
    *) if [ $# -gt 1 ] && is_bool_word "$2"; then echo 2; else echo 1; fi ;;
  esac
}

while [ $# -gt 0 ]; do
  case "$1" in
    --source-type|--source-type=*) SOURCE_TYPE="$(value --source-type "$@")"; shift "$(nshift "$1")" ;;
    --input-path|--input-path=*) INPUT_PATH="$(value --input-path "$@")"; shift "$(nshift "$1")" ;;
    --kafka-bootstrap|--kafka-bootstrap=*) KAFKA_BOOTSTRAP="$(value --kafka-bootstrap "$@")"; shift "$(nshift "$1")" ;;
    --kafka-topic|--kafka-topic=*) KAFKA_TOPIC="$(value --kafka-topic "$@")"; shift "$(nshift "$1")" ;;
    --output-path|--output-path=*) OUTPUT_PATH="$(value --output-path "$@")"; shift "$(nshift "$1")" ;;
    --checkpoint|--checkpoint=*) CHECKPOINT="$(value --checkpoint "$@")"; shift "$(nshift "$1")" ;;
    --model-name|--model-name=*) MODEL_NAME="$(value --model-name "$@")"; shift "$(nshift "$1")" ;;
    --model-stage|--model-stage=*) MODEL_STAGE="$(value --model-stage "$@")"; shift "$(nshift "$1")" ;;
    --challenger-alias|--challenger-alias=*) CHALLENGER_ALIAS="$(value --challenger-alias "$@")"; shift "$(nshift "$1")" ;;
    --job-id|--job-id=*) JOB_ID="$(value --job-id "$@")"; shift "$(nshift "$1")" ;;
    --code-uri|--code-uri=*) CODE_URI="$(value --code-uri "$@")"; shift "$(nshift "$1")" ;;
    --write-kafka|--write-kafka=*) WRITE_KAFKA="$(flag_value "$@")"; shift "$(flag_shift "$@")" ;;
    --keep-existing|--keep-existing=*) KEEP_EXISTING="$(flag_value "$@")"; shift "$(flag_shift "$@")" ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) common_option "$@"; shift "$SHIFT" ;;  # --project ... --dry-run, else an unknown option
  esac
done

require_settings
use_python

is_true() {
  case "${1,,}" in
    true|1|yes) return 0 ;;
    false|0|no|"") return 1 ;;
    *) die "expected true or false, got '$1'" ;;
  esac
}

# Entry names, code URI, default paths, model and topics from the builder, so they match the serving
# DAG's; the checkpoint is per source type.
read_layout "$BUCKET" --source-type "$SOURCE_TYPE"
CODE_URI="${CODE_URI:-$LAYOUT_CODE_URI}"
CODE_URI="${CODE_URI%/}"
JOB_ID="${JOB_ID:-sentiment-serving-$SOURCE_TYPE-$(date -u +%Y%m%d-%H%M%S)}"
OUTPUT_PATH="${OUTPUT_PATH:-$LAYOUT_SERVING_OUTPUT}"
CHECKPOINT="${CHECKPOINT:-$LAYOUT_SERVING_CHECKPOINT}"
METRICS_PATH="${SERVING_METRICS_PATH:-$LAYOUT_SERVING_METRICS}"
MODEL_NAME="${MODEL_NAME:-$LAYOUT_DEFAULT_SERVING_MODEL}"
if [ "$SOURCE_TYPE" = kafka ]; then
  # Like the serving DAG: a Kafka stream reads the input topic and writes predictions back to Kafka.
  KAFKA_TOPIC="${KAFKA_TOPIC:-$LAYOUT_DEFAULT_KAFKA_INPUT_TOPIC}"
  WRITE_KAFKA="${WRITE_KAFKA:-true}"
else
  INPUT_PATH="${INPUT_PATH:-$LAYOUT_SERVING_INPUT}"
fi
if is_true "$WRITE_KAFKA"; then KAFKA_OUT_TOPIC="${KAFKA_OUT_TOPIC:-$LAYOUT_DEFAULT_KAFKA_OUTPUT_TOPIC}"; fi
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
ZIP_PATH="$BUILD_DIR/$LAYOUT_PACKAGE_ZIP"
ENTRY_PATH="$ROOT/code/$LAYOUT_SERVING_ENTRY"

job_opts=(--kind serving --project-id "$PROJECT" --region "$REGION" --cluster "$CLUSTER"
  --code-uri "$CODE_URI" --job-id "$JOB_ID" --label "trigger=${SERVING_TRIGGER:-manual}"
  --source-type "$SOURCE_TYPE" --output-path "$OUTPUT_PATH" --checkpoint "$CHECKPOINT"
  --mlflow-uri "$MLFLOW_URI" --model-name "$MODEL_NAME")
[ -z "$INPUT_PATH" ] || job_opts+=(--input-path "$INPUT_PATH")
[ -z "$KAFKA_BOOTSTRAP" ] || job_opts+=(--kafka-bootstrap "$KAFKA_BOOTSTRAP")
[ -z "$KAFKA_TOPIC" ] || job_opts+=(--kafka-topic "$KAFKA_TOPIC")
[ -z "$KAFKA_OUT_BOOTSTRAP" ] || job_opts+=(--kafka-output-bootstrap "$KAFKA_OUT_BOOTSTRAP")
[ -z "$KAFKA_OUT_TOPIC" ] || job_opts+=(--kafka-output-topic "$KAFKA_OUT_TOPIC")
[ -z "$MODEL_STAGE" ] || job_opts+=(--model-stage "$MODEL_STAGE")
[ -z "$CHALLENGER_ALIAS" ] || job_opts+=(--challenger-alias "$CHALLENGER_ALIAS")
[ -z "${SERVING_MODEL_FLAVOR:-}" ] || job_opts+=(--model-flavor "$SERVING_MODEL_FLAVOR")
[ -z "${SERVING_BATCH_INTERVAL:-}" ] || job_opts+=(--batch-interval-seconds "$SERVING_BATCH_INTERVAL")
[ -z "${SERVING_RELOAD_INTERVAL:-}" ] || job_opts+=(--reload-interval-seconds "$SERVING_RELOAD_INTERVAL")
[ -z "${SERVING_QUARANTINE_PATH:-}" ] || job_opts+=(--quarantine-path "$SERVING_QUARANTINE_PATH")
[ -z "${SERVING_MAX_FILES_PER_TRIGGER:-}" ] || job_opts+=(--max-files-per-trigger "$SERVING_MAX_FILES_PER_TRIGGER")
[ -z "${SERVING_MAX_OFFSETS_PER_TRIGGER:-}" ] || job_opts+=(--max-offsets-per-trigger "$SERVING_MAX_OFFSETS_PER_TRIGGER")
[ -z "$METRICS_PATH" ] || job_opts+=(--metrics-path "$METRICS_PATH")
[ -z "${SERVING_MAX_FAILURES_PER_HOUR:-}" ] || job_opts+=(--max-failures-per-hour "$SERVING_MAX_FAILURES_PER_HOUR")
if is_true "$WRITE_KAFKA"; then job_opts+=(--write-kafka); fi

# The builder adds the Kafka connector when the job reads or writes Kafka. A serverless stream ends
# at its TTL (default 14 days, the longest Dataproc allows): redeploy before then.
[ "$SERVERLESS" = 0 ] || BATCH_TTL_SECONDS="${BATCH_TTL_SECONDS:-1209600}"
builder_command --async "${job_opts[@]}" -- "${EXTRA[@]}"
check_entry "$ENTRY_PATH"

# Active serving jobs on this cluster (or running serving batches), found by the builder's app label.
LIST_ACTIVE=(gcloud dataproc jobs list "--project=$PROJECT" "--region=$REGION" "--cluster=$CLUSTER"
  "--filter=status.state = ACTIVE AND labels.app = $LAYOUT_APP_SERVING" "--format=value(reference.jobId)")
KILL=(gcloud dataproc jobs kill)
if [ "$SERVERLESS" = 1 ]; then
  LIST_ACTIVE=(gcloud dataproc batches list "--project=$PROJECT" "--region=$REGION"
    "--filter=state = RUNNING AND labels.app = $LAYOUT_APP_SERVING" "--format=value(name.basename())")
  KILL=(gcloud dataproc batches cancel)
fi

echo "# serving job $JOB_ID on cluster $CLUSTER ($REGION), source $SOURCE_TYPE, output $OUTPUT_PATH" >&2
upload_code "$ENTRY_PATH" "$ZIP_PATH" "$CODE_URI"
if ! is_true "$KEEP_EXISTING"; then
  if [ "$DRY_RUN" = 1 ]; then
    x "${LIST_ACTIVE[@]}"
    echo "# then, for each listed job: ${KILL[*]} JOB_ID --project=$PROJECT --region=$REGION --quiet"
  else
    active="$("${LIST_ACTIVE[@]}")"
    for old in $active; do
      echo "# stopping serving job $old" >&2
      # Without --async, kill returns once the job has stopped, so its checkpoint is free.
      "${KILL[@]}" "$old" "--project=$PROJECT" "--region=$REGION" --quiet
    done
  fi
fi
x "${SUBMIT[@]}"
echo "SERVING_JOB_ID=$JOB_ID"
