"""MLflow registry look-ups: names, model URIs, aliases and the legacy stage words.

Aliases are the current MLflow API. Users and older DAGs still say `--model-stage Production`;
a stage word maps onto the alias of the same name in lower case (`Production` -> `production`).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sentiment_mlops.core.settings import PRODUCTION_ALIAS

if TYPE_CHECKING:  # mlflow is imported where it is used: importing it also imports pyspark when
    # installed, and the Spark-free online server imports this module
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

LEGACY_STAGES = ("None", "Staging", "Production", "Archived")
BEST_SUFFIX = "best"
CANDIDATE_ALIAS = "candidate"


class MlflowUnreachableError(RuntimeError):
    pass


def registered_name(base: str, key: str) -> str:
    """`twitter-sentiment-model` + `logisticregression` -> `twitter-sentiment-model-logisticregression`."""
    return f"{base}-{key}"


def alias_for(stage_or_alias: str) -> str:
    """`Production` -> `production`; an alias passes through unchanged."""
    value = stage_or_alias.strip()
    if not value:
        raise ValueError("empty model stage/alias")
    return value.lower() if value in LEGACY_STAGES or value.title() in LEGACY_STAGES else value


def model_uri(name: str, stage_or_alias: str = "Production") -> str:
    """`models:/NAME@alias` for a stage word, an alias, or `models:/NAME/VERSION` for a number."""
    value = stage_or_alias.strip()
    if value.isdigit():
        return f"models:/{name}/{value}"
    return f"models:/{name}@{alias_for(value)}"


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast with one line when an HTTP tracking server does not answer `/health`."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - user-given tracking URI
            if resp.status != 200:
                raise MlflowUnreachableError(f"MLflow at {uri} answered {resp.status} on /health")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MlflowUnreachableError(f"MLflow tracking server unreachable at {uri} ({reason})") from exc


@dataclass(frozen=True)
class ResolvedVersion:
    name: str
    version: str
    alias: str
    run_id: str | None
    source: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def resolve_version(client: MlflowClient, name: str, stage_or_alias: str) -> ResolvedVersion | None:
    """The version an alias (or stage word, or version number) points at; None if unset."""
    from mlflow.exceptions import MlflowException

    value = stage_or_alias.strip()
    try:
        if value.isdigit():
            mv = client.get_model_version(name, value)
            alias = value
        else:
            alias = alias_for(value)
            mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    return ResolvedVersion(name=name, version=str(mv.version), alias=alias, run_id=mv.run_id, source=mv.source or "")


def promote(client: MlflowClient, name: str, version: str, alias: str = PRODUCTION_ALIAS) -> None:
    """Point `alias` at `version`, and mirror it onto the legacy stage where MLflow still has stages."""
    from mlflow.exceptions import MlflowException

    client.set_registered_model_alias(name, alias, version)
    stage = alias.title()
    if stage in LEGACY_STAGES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                client.transition_model_version_stage(name, version, stage, archive_existing_versions=True)
        except (MlflowException, AttributeError, NotImplementedError) as exc:  # stages removed upstream
            log.info("legacy stage %s not set on %s v%s (%s); the alias is authoritative", stage, name, version, exc)


def version_tags(client: MlflowClient, name: str, version: str, tags: dict[str, object]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value if isinstance(value, str) else json.dumps(value))
