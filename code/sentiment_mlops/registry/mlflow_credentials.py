"""MLflow credentials for jobs on Dataproc: taken from Secret Manager at the job's start, never passed in
clear. The job gets only the secret's resource name (`--mlflow-credentials-secret`, from the Airflow
Variable MLFLOW_CREDENTIALS_SECRET) and reads it with the cluster's service account, which needs
`roles/secretmanager.secretAccessor` on that secret alone.

The secret's payload is JSON: {"username": "...", "password": "..."} or {"token": "..."}. It becomes
MLflow's own client variables (MLFLOW_TRACKING_USERNAME / _PASSWORD or MLFLOW_TRACKING_TOKEN) in this
process, which every MLflow call of the job then uses.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from sentiment_mlops.registry.lookups import MlflowAuthError

CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
SECRET_NAME = re.compile(r"projects/[^/\s]+/secrets/[A-Za-z0-9_-]+(/versions/([0-9]+|latest))?")


def check_secret_name(name: str) -> str:
    """`projects/P/secrets/S` (-> `/versions/latest`) or `projects/P/secrets/S/versions/V`."""
    if not SECRET_NAME.fullmatch(name):
        raise ValueError(
            f"MLflow credentials secret {name!r} is not a Secret Manager name: "
            "projects/PROJECT/secrets/NAME[/versions/VERSION|latest]"
        )
    return name if "/versions/" in name else f"{name}/versions/latest"


def credentials_from_payload(payload: bytes, name: str) -> dict[str, str]:
    """The MLflow client variables in a secret's payload; a clear error naming the secret otherwise."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if isinstance(data, dict) and data.get("token"):
        return {"MLFLOW_TRACKING_TOKEN": str(data["token"])}
    if isinstance(data, dict) and data.get("username") and data.get("password"):
        return {"MLFLOW_TRACKING_USERNAME": str(data["username"]), "MLFLOW_TRACKING_PASSWORD": str(data["password"])}
    raise MlflowAuthError(
        f"secret {name} does not hold MLflow credentials: expected JSON "
        '{"username": ..., "password": ...} or {"token": ...}'
    )


def apply_secret(name: str, client: Any = None) -> list[str]:
    """Read secret `name` and set MLflow's client variables from it; returns the variables set."""
    version = check_secret_name(name)
    if client is None:
        from google.cloud import secretmanager

        client = secretmanager.SecretManagerServiceClient()
    try:
        response = client.access_secret_version(request={"name": version})
    except Exception as exc:  # NotFound, PermissionDenied: say which secret and what the account needs
        raise MlflowAuthError(
            f"cannot read the MLflow credentials secret {version}: {exc} (the job's service account needs "
            "roles/secretmanager.secretAccessor on it)"
        ) from exc
    values = credentials_from_payload(response.payload.data, version)
    # MLflow sends a username and password in preference to a token: variables of the other kind left
    # in this process would be used instead of the secret.
    for key in CREDENTIAL_VARIABLES:
        if key not in values:
            os.environ.pop(key, None)
    os.environ.update(values)
    return sorted(values)
