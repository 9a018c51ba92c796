"""The production profile of the local control plane (SENTIMENT_PROFILE=production): what the MLflow
server runs with (PostgreSQL stores, basic-auth, proxied artifacts) and the environment its clients and
Airflow need. The embedded profile (the default) needs none of this.

    eval "$(python -m sentiment_mlops.backends.local.profile shell-env)"

prints the exports for a shell: PGPASSFILE, Airflow's database and executor, and MLflow's own client
variables MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (the password is read from its 0600 file
when the line runs, so the printed text holds no secret).
"""

from __future__ import annotations

import argparse
import base64
import shlex
import sys
import urllib.error
import urllib.request

from sentiment_mlops.backends.local import postgres
from sentiment_mlops.backends.local.services import ServiceError
from sentiment_mlops.core.secret_files import read_or_create_secret, write_private
from sentiment_mlops.core.settings import (
    AIRFLOW_DATABASE,
    MLFLOW_ADMIN_USER,
    MLFLOW_AUTH_DATABASE,
    MLFLOW_DATABASE,
    Settings,
    load_settings,
)
from sentiment_mlops.core.storage import is_gcs_uri, split_gcs_uri


def admin_password_file(settings: Settings) -> str:
    return str(settings.secrets_dir / "mlflow-admin.password")


def admin_password(settings: Settings) -> str:
    from pathlib import Path

    return read_or_create_secret(Path(admin_password_file(settings)))


def mlflow_store_args(settings: Settings) -> list[str]:
    return [
        "--backend-store-uri",
        postgres.database_uri(settings, MLFLOW_DATABASE),
        "--app-name",
        "basic-auth",
        # Clients never touch the artifact store: they upload and download through the server, which
        # alone holds the bucket credentials.
        "--serve-artifacts",
        "--artifacts-destination",
        settings.artifacts_destination,
    ]


def write_auth_config(settings: Settings) -> str:
    """MLflow's basic-auth config (MLFLOW_AUTH_CONFIG_PATH): its user store in PostgreSQL, READ for
    users by default; the admin password is not in it (MLFLOW_AUTH_ADMIN_PASSWORD, from its file)."""
    path = settings.mlflow_dir / "basic_auth.ini"
    write_private(
        path,
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {postgres.database_uri(settings, MLFLOW_AUTH_DATABASE)}\n"
        f"admin_username = {MLFLOW_ADMIN_USER}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
    )
    return str(path)


def mlflow_server_env(settings: Settings) -> dict[str, str]:
    return {
        "PGPASSFILE": str(postgres.pgpass_file(settings)),
        "MLFLOW_AUTH_CONFIG_PATH": write_auth_config(settings),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password(settings),
        # Signs the auth app's sessions/CSRF tokens; stable across restarts.
        "MLFLOW_FLASK_SERVER_SECRET_KEY": read_or_create_secret(settings.secrets_dir / "mlflow-flask.secret"),
    }


def check_artifacts_destination(settings: Settings) -> None:
    destination = settings.artifacts_destination
    if not is_gcs_uri(destination):
        from pathlib import Path

        Path(destination).mkdir(parents=True, exist_ok=True)
        return
    bucket, _ = split_gcs_uri(destination)
    from google.cloud import storage

    try:
        exists = storage.Client().bucket(bucket).exists()
    except Exception as exc:  # credentials, network: say which setting it was for
        raise ServiceError(f"cannot check the MLflow artifact bucket gs://{bucket}: {exc}") from exc
    if not exists:
        raise ServiceError(
            f"the MLflow artifact bucket gs://{bucket} does not exist (SENTIMENT_MLFLOW_ARTIFACTS_DESTINATION="
            f"{destination}): create it (`gcloud storage buckets create gs://{bucket}`) or choose another"
        )


def check_prerequisites(settings: Settings) -> None:
    """Before the server starts: its two databases answer with our password, the artifacts have a home."""
    for database in (MLFLOW_DATABASE, MLFLOW_AUTH_DATABASE):
        postgres.check_database(settings, database)
    check_artifacts_destination(settings)


def check_admin_login(url: str, settings: Settings, timeout: float = 10.0) -> None:
    """The admin password file must open the server: it is only applied when the user store is new."""
    token = base64.b64encode(f"{MLFLOW_ADMIN_USER}:{admin_password(settings)}".encode()).decode()
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/users/get?username={MLFLOW_ADMIN_USER}", headers={"Authorization": f"Basic {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - our own server
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise ServiceError(
                f"MLflow at {url} refuses the admin password in {admin_password_file(settings)}: its user store "
                f"(database {MLFLOW_AUTH_DATABASE}) holds another one; restore that file or reset the password "
                f"with the update-password API"
            ) from None
        raise ServiceError(f"MLflow at {url}: the admin check answered {exc.code}") from None


def client_env(settings: Settings) -> dict[str, str]:
    """The environment of MLflow clients and Airflow on this machine (values, secrets included)."""
    return {
        "PGPASSFILE": str(postgres.pgpass_file(settings)),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.database_uri(settings, AIRFLOW_DATABASE),
        # Airflow 3 also opens the DB with an async driver; asyncpg reads PGPASSFILE too.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": postgres.database_uri(
            settings, AIRFLOW_DATABASE, "postgresql+asyncpg"
        ),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN_USER,
        "MLFLOW_TRACKING_PASSWORD": admin_password(settings),
    }


def shell_env(settings: Settings) -> str:
    """`client_env` as shell exports; the password as a `$(cat FILE)` so this text holds no secret."""
    lines = []
    for key, value in client_env(settings).items():
        if key == "MLFLOW_TRACKING_PASSWORD":
            lines.append(f'export {key}="$(cat {shlex.quote(admin_password_file(settings))})"')
        else:
            lines.append(f"export {key}={shlex.quote(value)}")
    return "\n".join(lines)


def write_client_secrets(settings: Settings) -> None:
    """For a PostgreSQL run elsewhere (SENTIMENT_POSTGRES_HOST): the generated passwords and the pgpass
    file, as `postgres start` writes them for the local server. The server side takes the role's
    password from `postgres-sentiment.password` (docker-compose: POSTGRES_PASSWORD)."""
    postgres.write_pgpass(settings, read_or_create_secret(settings.secrets_dir / "postgres-sentiment.password"))
    admin_password(settings)
    read_or_create_secret(settings.secrets_dir / "mlflow-flask.secret")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the production profile's client environment")
    parser.add_argument("action", choices=("shell-env", "secrets"))
    args = parser.parse_args(argv)
    settings = load_settings()
    if settings.profile != "production":
        print("ERROR: SENTIMENT_PROFILE is not 'production'", file=sys.stderr)
        return 1
    if args.action == "secrets":
        write_client_secrets(settings)
        print(f"secrets in {settings.secrets_dir} (0600)")
    else:
        print(shell_env(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
