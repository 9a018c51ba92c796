#!/usr/bin/env bash
# Pre-flight checks for the Dataproc backend, one PASS/FAIL line each:
#   1. gcloud has working credentials        4. the MLflow server answers /health
#   2. the cluster is RUNNING                5. a tiny PySpark job runs on the cluster (with the
#   3. every project bucket can be listed       package zip, and reports whether mlflow imports)
# Exit status: 0 all passed, 1 any failed, 2 missing settings. --dry-run prints the commands only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="$(basename "$0")"

usage() {
  cat <<EOF
Usage: $PROG [--dry-run] [--project ID] [--region REGION] [--cluster NAME] [--bucket NAME] [--mlflow-uri URL]
Settings default to GCP_PROJECT_ID, GCP_REGION (us-central1), DATAPROC_CLUSTER_NAME, GCS_BUCKET and
MLFLOW_TRACKING_URI. SMOKE_TIMEOUT (seconds, default 900) bounds the PySpark job.
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 2; }

PROJECT="${GCP_PROJECT_ID:-}"
REGION="${GCP_REGION:-us-central1}"
CLUSTER="${DATAPROC_CLUSTER_NAME:-}"
BUCKET="${GCS_BUCKET:-}"
MLFLOW_URI="${MLFLOW_TRACKING_URI:-}"
SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-900}"
DRY_RUN=0

value() {
  local opt="$1"; shift
  case "$1" in
    *=*) printf '%s' "${1#*=}" ;;
    *) [ $# -ge 2 ] || die "$opt needs a value"; printf '%s' "$2" ;;
  esac
}
nshift() { case "$1" in *=*) echo 1 ;; *) echo 2 ;; esac; }

while [ $# -gt 0 ]; do
  case "$1" in
    --project|--project=*) PROJECT="$(value --project "$@")"; shift "$(nshift "$1")" ;;
    --region|--region=*) REGION="$(value --region "$@")"; shift "$(nshift "$1")" ;;
    --cluster|--cluster=*) CLUSTER="$(value --cluster "$@")"; shift "$(nshift "$1")" ;;
    --bucket|--bucket=*) BUCKET="$(value --bucket "$@")"; shift "$(nshift "$1")" ;;
    --mlflow-uri|--mlflow-uri=*) MLFLOW_URI="$(value --mlflow-uri "$@")"; shift "$(nshift "$1")" ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
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

# Bucket names and the code URI from the job builder, so the check covers the buckets the jobs use.
LAYOUT="$("$PYTHON" -m sentiment_mlops.dataproc_jobs layout --gcs-bucket "$BUCKET")" || exit 2
BUCKETS=()
while IFS='=' read -r key val; do
  case "$key" in
    BUCKET_*) BUCKETS+=("$val") ;;
    CODE_URI) CODE_URI="$val" ;;
    PACKAGE_ZIP) PACKAGE_ZIP="$val" ;;
  esac
done <<<"$LAYOUT"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SMOKE_URI="$CODE_URI/smoke"
RUN_ID="dataproc-smoke-$(date -u +%Y%m%d-%H%M%S)"

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

FAILED=0
# check NAME COMMAND...: run quietly, print PASS/FAIL with the last output line on failure.
check() {
  local name="$1"; shift
  if [ "$DRY_RUN" = 1 ]; then
    echo "# check: $name"
    "$@"
    return 0
  fi
  local log="$WORK/check.log"
  if "$@" >"$log" 2>&1; then
    echo "PASS  $name"
  else
    echo "FAIL  $name: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-300)"
    FAILED=$((FAILED + 1))
  fi
}

cluster_running() {
  local state
  state="$(x gcloud dataproc clusters describe "$CLUSTER" "--project=$PROJECT" "--region=$REGION" \
    '--format=value(status.state)')"
  if [ "$DRY_RUN" = 1 ]; then echo "$state"; return 0; fi
  [ "$state" = RUNNING ] || { echo "cluster state is ${state:-unknown}, want RUNNING"; return 1; }
}

# The tiny job: Spark works, the driver's Python is new enough, the package zip imports, and mlflow
# (which the training and serving jobs need on the cluster) is installed.
cat >"$WORK/dataproc_smoke.py" <<'PY'
import sys

from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("dataproc-smoke").getOrCreate()
total = spark.range(1000).selectExpr("sum(id) AS s").first()["s"]
assert total == 499500, total
assert sys.version_info >= (3, 11), f"driver Python {sys.version.split()[0]} < 3.11"
import sentiment_mlops.storage  # noqa: E402,F401  (from the --py-files zip)

try:
    import mlflow  # noqa: E402
except ImportError:
    sys.exit("mlflow is not installed on the cluster (add it with the dataproc:pip.packages property)")
print(f"SMOKE_OK spark={spark.version} python={sys.version.split()[0]} mlflow={mlflow.__version__}")
spark.stop()
PY

smoke_job() {
  x "$PYTHON" -m sentiment_mlops.package_zip "$WORK/$PACKAGE_ZIP"
  x gsutil -q cp "$WORK/dataproc_smoke.py" "$WORK/$PACKAGE_ZIP" "$SMOKE_URI/"
  x timeout "$SMOKE_TIMEOUT" gcloud dataproc jobs submit pyspark "$SMOKE_URI/dataproc_smoke.py" \
    "--cluster=$CLUSTER" "--region=$REGION" "--project=$PROJECT" "--id=$RUN_ID" \
    "--py-files=$SMOKE_URI/$PACKAGE_ZIP" "--properties=spark.sentiment.backend=dataproc" \
    "--labels=app=sentiment-smoke"
}

check "gcloud credentials" x gcloud auth print-access-token --quiet
check "cluster $CLUSTER is RUNNING" cluster_running
for b in "${BUCKETS[@]}"; do
  check "bucket gs://$b is readable" x gsutil ls "gs://$b/"
done
check "MLflow answers ${MLFLOW_URI%/}/health" x curl -fsS --max-time 10 "${MLFLOW_URI%/}/health"
check "PySpark smoke job $RUN_ID" smoke_job

if [ "$DRY_RUN" = 1 ]; then exit 0; fi
if [ "$FAILED" -gt 0 ]; then
  echo "$FAILED check(s) failed"
  exit 1
fi
echo "all checks passed"
