"""MLflow registry look-ups: names, model URIs, aliases and the legacy stage words.

Aliases are the current MLflow API. Users and older DAGs still say `--model-stage Production`;
a stage word maps onto the alias of the same name in lower case (`Production` -> `production`).

Resolution order for a stage word (`resolve_version`): the alias first, then the newest version
in that legacy stage. The alias wins because our gate sets it; the stage fallback is for users
who move a version to a stage in the MLflow UI or API, the original project's way, and expect
it served. Deprecated stage APIs are asked for stages only when no alias exists.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sentiment_mlops.core.settings import CHALLENGER_ALIAS, PRODUCTION_ALIAS

if TYPE_CHECKING:  # mlflow is imported where it is used: importing it also imports pyspark when
    # installed, and the Spark-free online server imports this module
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

LEGACY_STAGES = ("None", "Staging", "Production", "Archived")
BEST_SUFFIX = "best"
CANDIDATE_ALIAS = "candidate"
# Values of a challenger-alias setting that turn the shadow challenger off.
CHALLENGER_OFF = ("", "none", "off", "false", "-")


class MlflowUnreachableError(RuntimeError):
    pass


class MlflowAuthError(MlflowUnreachableError):
    """The server answers but refuses this client's credentials (MLflow basic-auth)."""


def registered_name(base: str, key: str) -> str:
    """`twitter-sentiment-model` + `logisticregression` -> `twitter-sentiment-model-logisticregression`."""
    return f"{base}-{key}"


def alias_for(stage_or_alias: str) -> str:
    """`Production` -> `production`; an alias passes through unchanged."""
    value = stage_or_alias.strip()
    if not value:
        raise ValueError("empty model stage/alias")
    return value.lower() if value in LEGACY_STAGES or value.title() in LEGACY_STAGES else value


def challenger_alias(value: str | None, served: str = PRODUCTION_ALIAS) -> str:
    """The challenger alias a setting names: `CHALLENGER_ALIAS` for None, "" (off) for one of
    CHALLENGER_OFF, else the alias (a stage word maps like `alias_for`). Raises ValueError for a version
    number or the alias of the served model (`served`: its stage word, alias or version)."""
    if value is None:
        return CHALLENGER_ALIAS
    text = value.strip()
    if text.lower() in CHALLENGER_OFF:
        return ""
    if text.isdigit():
        raise ValueError(f"challenger alias {text!r} is a version number; name an alias (e.g. {CHALLENGER_ALIAS})")
    alias = alias_for(text)
    if not served.strip().isdigit() and alias == alias_for(served):
        raise ValueError(f"challenger alias {alias!r} is the served model's own alias; name another one")
    return alias


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
    check_credentials(uri, timeout)


def _auth_header() -> dict[str, str]:
    """MLflow's own client variables, with MLflow's precedence (mlflow.utils.rest_utils): a username
    and password win over a token. The check must send what the client's calls will send: a stale
    MLFLOW_TRACKING_TOKEN next to valid basic-auth variables is ignored by MLflow, so here too."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    return {}


def check_credentials(uri: str, timeout: float = 5.0) -> None:
    """One authenticated read: a server with basic-auth answers 401 to a client without (or with wrong)
    credentials, which MLflow's client would only report deep inside the first logging call."""
    header = _auth_header()
    request = urllib.request.Request(
        uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1", headers=header
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - user-given tracking URI
            return
    except urllib.error.HTTPError as exc:
        if exc.code not in (401, 403):
            return  # not ours to judge here: the first real call reports it with MLflow's message
        if not header:
            raise MlflowAuthError(
                f"MLflow at {uri} requires authentication: set MLFLOW_TRACKING_USERNAME and "
                f"MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            ) from None
        basic = header["Authorization"].startswith("Basic ")
        who = os.environ.get("MLFLOW_TRACKING_USERNAME") if basic else "MLFLOW_TRACKING_TOKEN"
        raise MlflowAuthError(
            f"MLflow at {uri} refused the credentials of {who} ({exc.code}): check MLFLOW_TRACKING_USERNAME / "
            f"MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
        ) from None
    except OSError:
        return  # /health just answered; a blip here is left to the client's retries


@dataclass(frozen=True)
class ResolvedVersion:
    """A registry version and how it was found: `via` is "alias", "stage" or "version"."""

    name: str
    version: str
    alias: str
    run_id: str | None
    source: str
    via: str = "alias"
    stage: str | None = None

    @property
    def uri(self) -> str:
        """The exact version: what loaders use, so a moving alias cannot change it mid-load."""
        return f"models:/{self.name}/{self.version}"

    @property
    def requested_uri(self) -> str:
        """The URI as the user asked for it: `models:/NAME@alias`, `models:/NAME/Production`, or the version."""
        if self.via == "stage" and self.stage:
            return f"models:/{self.name}/{self.stage}"
        if self.via == "version":
            return self.uri
        return f"models:/{self.name}@{self.alias}"


def stage_for(stage_or_alias: str) -> str | None:
    """`production`/`Production` -> `Production`; None for anything that is not a legacy stage word."""
    value = stage_or_alias.strip().title()
    return value if value in LEGACY_STAGES else None


_MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def newest_in_stage(client: MlflowClient, name: str, stage: str) -> ResolvedVersion | None:
    """The highest version of `name` in legacy `stage` (MLflow's `models:/NAME/Stage` rule); None if none."""
    from mlflow.exceptions import MlflowException

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            versions = client.get_latest_versions(name, stages=[stage])
    except MlflowException as exc:
        if exc.error_code in _MISSING:
            return None
        raise
    except (AttributeError, NotImplementedError):  # stages removed upstream: aliases only
        return None
    if not versions:
        return None
    mv = max(versions, key=lambda v: int(v.version))
    return ResolvedVersion(
        name=name,
        version=str(mv.version),
        alias=alias_for(stage),
        run_id=mv.run_id,
        source=mv.source or "",
        via="stage",
        stage=stage,
    )


def resolve_version(client: MlflowClient, name: str, stage_or_alias: str) -> ResolvedVersion | None:
    """The version to serve for an alias, stage word or version number; None if nothing matches.

    A stage word resolves to its alias (`Production` -> `@production`) when that alias is set,
    otherwise to the newest version in that stage (set in the MLflow UI or API)."""
    from mlflow.exceptions import MlflowException

    value = stage_or_alias.strip()
    via = "version" if value.isdigit() else "alias"
    alias = value if value.isdigit() else alias_for(value)
    try:
        if value.isdigit():
            mv = client.get_model_version(name, value)
        else:
            mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code not in _MISSING:
            raise
        stage = None if value.isdigit() else stage_for(value)
        return newest_in_stage(client, name, stage) if stage else None
    return ResolvedVersion(
        name=name, version=str(mv.version), alias=alias, run_id=mv.run_id, source=mv.source or "", via=via
    )


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
