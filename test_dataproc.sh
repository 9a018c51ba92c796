#!/usr/bin/env bash
# Pre-flight checks for the Dataproc backend, one PASS/FAIL line each:
#   1. gcloud has working credentials        4. the MLflow server answers /health
#   2. the cluster is RUNNING                5. a tiny PySpark job runs on the cluster (with the
#   3. every project bucket can be listed       package zip, and reports whether mlflow imports)
# Exit status: 0 all passed, 1 any failed, 2 missing settings. --dry-run prints the commands only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR
# shellcheck source=ci-cd/common.sh
. "$ROOT/ci-cd/common.sh"

usage() {
  cat <<EOF
Usage: $PROG [--dry-run] [--project ID] [--region REGION] [--cluster NAME] [--bucket NAME] [--mlflow-uri URL]
Settings default to GCP_PROJECT_ID, GCP_REGION (us-central1), DATAPROC_CLUSTER_NAME, GCS_BUCKET and
MLFLOW_TRACKING_URI. SMOKE_TIMEOUT (seconds, default 900) bounds the PySpark job: past it the job is cancelled on the cluster.
EOF
}

SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-900}"

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    *) common_option "$@"; shift "$SHIFT" ;;  # --project ... --dry-run, else an unknown option
  esac
done

require_settings
use_python

# Bucket names and the code URI from the job builder, so the check covers the buckets the jobs use.
read_layout "$BUCKET"
PACKAGE_ZIP="$LAYOUT_PACKAGE_ZIP"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SMOKE_URI="$LAYOUT_CODE_URI/smoke"
RUN_ID="dataproc-smoke-$(date -u +%Y%m%d-%H%M%S)"

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
import sentiment_mlops.core.storage  # noqa: E402,F401  (from the --py-files zip)

try:
    import mlflow  # noqa: E402
except ImportError:
    sys.exit("mlflow is not installed on the cluster (add it with the dataproc:pip.packages property)")
print(f"SMOKE_OK spark={spark.version} python={sys.version.split()[0]} mlflow={mlflow.__version__}")
spark.stop()
PY

smoke_job() {
  x "$PYTHON" -m sentiment_mlops.jobs.packaging "$WORK/$PACKAGE_ZIP"
  x gsutil -q cp "$WORK/dataproc_smoke.py" "$WORK/$PACKAGE_ZIP" "$SMOKE_URI/"
  local rc=0
  x timeout "$SMOKE_TIMEOUT" gcloud dataproc jobs submit pyspark "$SMOKE_URI/dataproc_smoke.py" \
    "--cluster=$CLUSTER" "--region=$REGION" "--project=$PROJECT" "--id=$RUN_ID" \
    "--py-files=$SMOKE_URI/$PACKAGE_ZIP" "--properties=spark.sentiment.backend=dataproc" \
    "--labels=app=sentiment-smoke" || rc=$?
  # `timeout` ends only the local gcloud client; the job itself would keep running on the cluster.
  if [ "$rc" -eq 124 ]; then
    echo "smoke job $RUN_ID still running after ${SMOKE_TIMEOUT}s: cancelling it on the cluster" >&2
    x gcloud dataproc jobs kill "$RUN_ID" "--region=$REGION" "--project=$PROJECT" --quiet || true
  fi
  return "$rc"
}

check "gcloud credentials" x gcloud auth print-access-token --quiet
check "cluster $CLUSTER is RUNNING" cluster_running
for b in "${LAYOUT_BUCKETS[@]}"; do
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
