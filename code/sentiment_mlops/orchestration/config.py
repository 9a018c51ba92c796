"""The DAGs' configuration: Airflow Variables (the names users already set) with documented defaults.

Every DAG's first task calls :func:`load_airflow_config` with `Variable.get`; tests pass a dict. A bad
Variable fails that first task with one message naming each offending Variable and its allowed values,
instead of a job failing half an hour later on a cluster.

=========================  ==========================================  =====================================
Variable                   Default                                     Meaning
=========================  ==========================================  =====================================
SENTIMENT_BACKEND          local                                       local (spark-submit here) | dataproc |
                                                                       dataproc-serverless (batches, no cluster)
GCP_PROJECT_ID             (none; required on both Dataproc backends)  project of the Dataproc cluster / batches
GCP_REGION                 us-central1                                 Dataproc region
DATAPROC_CLUSTER_NAME      (none; required on dataproc)                cluster the jobs run on
DATAPROC_RUNTIME_VERSION   2.2                                         dataproc-serverless: runtime (2.2, 2.3 =
                                                                       Spark 3.5; 3.0 = Spark 4.0)
DATAPROC_SERVICE_ACCOUNT   (none: the Compute Engine default account)  dataproc-serverless: the batches' identity
DATAPROC_SUBNETWORK        (none: the network `default`)               dataproc-serverless: subnetwork name/URI
DATAPROC_STREAM_TTL_SECONDS  1209600 (14 days, Dataproc's maximum)     dataproc-serverless: the serving stream
                                                                       ends after this; redeploy before then
GCS_BUCKET                 sentiment-mlops                             prefix of the buckets {b}-code, {b}-raw,
                                                                       {b}-models, {b}-predictions, ...
MLFLOW_TRACKING_URI        MLFLOW_VM_IP -> http://IP:5000, else        tracking server the jobs and tasks use
                           http://127.0.0.1:5000
MLFLOW_CREDENTIALS_SECRET  (none)                                      Secret Manager name of the MLflow
                                                                       credentials the Dataproc jobs read
TRAINING_INPUT_PATH        gs://{b}-raw/raw/                           training CSV file or folder
                           training.1600000.processed.noemoticon.csv
serving_deploy_mode        test                                        test (log the job only) | production
serving_model_name         twitter-sentiment-model-best                registered model to serve
serving_model_stage        Production                                  stage word, alias or version number
serving_source_type        file                                        file | kafka
serving_batch_interval     30                                          seconds between micro-batches
serving_reload_interval    300                                         seconds between model reload checks
serving_challenger_alias   challenger                                  alias of the shadow challenger scored
                                                                       beside the served model; none: off
serving_metrics_port       (none: off)                                 driver port of the stream's Prometheus
                                                                       endpoint (e.g. 9108)
serving_metrics_host       127.0.0.1                                   address that endpoint binds to
serving_pushgateway_url    (none: off)                                 Pushgateway the stream pushes to after
                                                                       each batch (http://HOST:9091)
kafka_bootstrap_servers    127.0.0.1:9092                              broker list for kafka serving
kafka_input_topic          tweets                                      topic the serving job reads
kafka_output_topic         predictions                                 topic the serving job writes
=========================  ==========================================  =====================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sentiment_mlops.core.errors import ConfigError
from sentiment_mlops.core.naming import DEFAULT_BUCKET, DEFAULT_TRAINING_FILE, SOURCE_TYPES
from sentiment_mlops.core.settings import (  # noqa: F401 - re-exported
    BACKENDS,
    CHALLENGER_ALIAS,
    DEFAULT_KAFKA_INPUT_TOPIC,
    DEFAULT_KAFKA_OUTPUT_TOPIC,
    DEFAULT_MLFLOW_PORT,
    DEFAULT_SERVING_MODEL,
    SERVERLESS_BACKEND,
)
from sentiment_mlops.jobs.serverless import DEFAULT_RUNTIME, MAX_TTL_SECONDS, MIN_TTL_SECONDS, execution_problems
from sentiment_mlops.registry.lookups import challenger_alias
from sentiment_mlops.registry.mlflow_credentials import SECRET_NAME

GCP_CONN_ID = "google_cloud_default"

DEPLOY_MODES = ("test", "production")

DEFAULT_REGION = "us-central1"
DEFAULT_MLFLOW_URI = f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}"
DEFAULT_SERVING_STAGE = "Production"
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"

# Variable names, spelled as users have them in their Airflow instances (mixed case is historical).
VAR_BACKEND = "SENTIMENT_BACKEND"
VAR_PROJECT = "GCP_PROJECT_ID"
VAR_REGION = "GCP_REGION"
VAR_CLUSTER = "DATAPROC_CLUSTER_NAME"
VAR_RUNTIME = "DATAPROC_RUNTIME_VERSION"
VAR_SERVICE_ACCOUNT = "DATAPROC_SERVICE_ACCOUNT"
VAR_SUBNETWORK = "DATAPROC_SUBNETWORK"
VAR_STREAM_TTL = "DATAPROC_STREAM_TTL_SECONDS"
VAR_BUCKET = "GCS_BUCKET"
VAR_MLFLOW_URI = "MLFLOW_TRACKING_URI"
VAR_MLFLOW_IP = "MLFLOW_VM_IP"
VAR_MLFLOW_SECRET = "MLFLOW_CREDENTIALS_SECRET"
VAR_TRAINING_INPUT = "TRAINING_INPUT_PATH"
VAR_DEPLOY_MODE = "serving_deploy_mode"
VAR_MODEL_NAME = "serving_model_name"
VAR_MODEL_STAGE = "serving_model_stage"
VAR_SOURCE_TYPE = "serving_source_type"
VAR_BATCH_INTERVAL = "serving_batch_interval"
VAR_RELOAD_INTERVAL = "serving_reload_interval"
VAR_CHALLENGER_ALIAS = "serving_challenger_alias"
VAR_METRICS_PORT = "serving_metrics_port"
VAR_METRICS_HOST = "serving_metrics_host"
VAR_PUSHGATEWAY_URL = "serving_pushgateway_url"
VAR_KAFKA_BOOTSTRAP = "kafka_bootstrap_servers"
VAR_KAFKA_IN = "kafka_input_topic"
VAR_KAFKA_OUT = "kafka_output_topic"

ALL_VARIABLES = (
    VAR_BACKEND,
    VAR_PROJECT,
    VAR_REGION,
    VAR_CLUSTER,
    VAR_RUNTIME,
    VAR_SERVICE_ACCOUNT,
    VAR_SUBNETWORK,
    VAR_STREAM_TTL,
    VAR_BUCKET,
    VAR_MLFLOW_URI,
    VAR_MLFLOW_IP,
    VAR_MLFLOW_SECRET,
    VAR_TRAINING_INPUT,
    VAR_DEPLOY_MODE,
    VAR_MODEL_NAME,
    VAR_MODEL_STAGE,
    VAR_SOURCE_TYPE,
    VAR_BATCH_INTERVAL,
    VAR_RELOAD_INTERVAL,
    VAR_CHALLENGER_ALIAS,
    VAR_METRICS_PORT,
    VAR_METRICS_HOST,
    VAR_PUSHGATEWAY_URL,
    VAR_KAFKA_BOOTSTRAP,
    VAR_KAFKA_IN,
    VAR_KAFKA_OUT,
)

# What `setup_local.sh` sets when a Variable is missing: a working local installation.
LOCAL_DEFAULT_VARIABLES: dict[str, str] = {
    VAR_BACKEND: "local",
    VAR_REGION: DEFAULT_REGION,
    VAR_BUCKET: DEFAULT_BUCKET,
    VAR_MLFLOW_URI: DEFAULT_MLFLOW_URI,
    VAR_DEPLOY_MODE: "test",
    VAR_MODEL_NAME: DEFAULT_SERVING_MODEL,
    VAR_MODEL_STAGE: DEFAULT_SERVING_STAGE,
    VAR_SOURCE_TYPE: "file",
    VAR_BATCH_INTERVAL: "30",
    VAR_RELOAD_INTERVAL: "300",
    VAR_KAFKA_BOOTSTRAP: DEFAULT_KAFKA_BOOTSTRAP,
    VAR_KAFKA_IN: DEFAULT_KAFKA_INPUT_TOPIC,
    VAR_KAFKA_OUT: DEFAULT_KAFKA_OUTPUT_TOPIC,
}

# GCS bucket naming rules (lower case, digits, -, _, .; 3-63 chars); the suffixes add up to 16 more.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,45}[a-z0-9]$")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

Getter = Callable[[str, str | None], str | None]


@dataclass(frozen=True)
class AirflowConfig:
    backend: str = "local"
    gcp_project_id: str | None = None
    gcp_region: str = DEFAULT_REGION
    dataproc_cluster_name: str | None = None
    # dataproc-serverless only (a batch has no cluster): see jobs.serverless.
    dataproc_runtime_version: str = DEFAULT_RUNTIME
    dataproc_service_account: str | None = None
    dataproc_subnetwork: str | None = None
    dataproc_stream_ttl_seconds: int = MAX_TTL_SECONDS
    gcs_bucket: str = DEFAULT_BUCKET
    mlflow_tracking_uri: str = DEFAULT_MLFLOW_URI
    # Secret Manager name; the dataproc jobs resolve it at start (local jobs inherit MLFLOW_TRACKING_*).
    mlflow_credentials_secret: str | None = None
    training_input_path: str = ""
    serving_deploy_mode: str = "test"
    serving_model_name: str = DEFAULT_SERVING_MODEL
    serving_model_stage: str = DEFAULT_SERVING_STAGE
    serving_source_type: str = "file"
    serving_batch_interval: int = 30
    serving_reload_interval: int = 300
    serving_challenger_alias: str = CHALLENGER_ALIAS  # "" = off
    serving_metrics_port: int | None = None
    serving_metrics_host: str = "127.0.0.1"
    serving_pushgateway_url: str | None = None
    kafka_bootstrap_servers: str = DEFAULT_KAFKA_BOOTSTRAP
    kafka_input_topic: str = DEFAULT_KAFKA_INPUT_TOPIC
    kafka_output_topic: str = DEFAULT_KAFKA_OUTPUT_TOPIC
    gcp_conn_id: str = GCP_CONN_ID

    def __post_init__(self) -> None:
        if not self.training_input_path:
            # Derived, so a user who only sets GCS_BUCKET gets a consistent input location.
            object.__setattr__(self, "training_input_path", f"gs://{self.gcs_bucket}-raw/{DEFAULT_TRAINING_FILE}")

    @property
    def is_local(self) -> bool:
        return self.backend == "local"

    @property
    def is_serverless(self) -> bool:
        """Jobs run as Dataproc Serverless batches (SENTIMENT_BACKEND=dataproc-serverless)."""
        return self.backend == SERVERLESS_BACKEND

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types: what the first task pushes to XCom for the others."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AirflowConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_overrides(self, **overrides: Any) -> AirflowConfig:
        """Per-run overrides from DAG params; None means "keep the Variable's value". Validated
        like the Variables, naming the param instead."""
        changes = {k: v for k, v in overrides.items() if v is not None and v != ""}
        if not changes:
            return self
        merged = {**self.as_dict(), **changes}
        errors = _validate_values(merged, names={k: f"param {k}" for k in changes})
        if errors:
            raise ConfigError("invalid run parameters:\n  " + "\n  ".join(errors))
        return replace(self, **{k: merged[k] for k in changes})


def _getter(get: Getter | Mapping[str, Any]) -> Callable[[str], str | None]:
    def read(name: str) -> str | None:
        if isinstance(get, Mapping):
            value = get.get(name)
        else:
            value = get(name, None)
        if value is None:
            return None
        text = str(value).strip()
        return text or None  # an empty Variable in the UI means "use the default"

    return read


def mlflow_uri_from(tracking_uri: str | None, vm_ip: str | None) -> str:
    """MLFLOW_TRACKING_URI wins; else MLFLOW_VM_IP as `http://IP:5000` (or `IP:PORT`); else local."""
    if tracking_uri:
        return tracking_uri.rstrip("/")
    if vm_ip:
        if "://" in vm_ip:
            return vm_ip.rstrip("/")
        host = vm_ip.rstrip("/")
        return f"http://{host}" if ":" in host else f"http://{host}:{DEFAULT_MLFLOW_PORT}"
    return DEFAULT_MLFLOW_URI


def _positive_int(raw: Any) -> int | None:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _validate_values(values: dict[str, Any], names: Mapping[str, str]) -> list[str]:
    """Problems in `values` (AirflowConfig field -> value), each naming the Variable/param from `names`."""
    errors: list[str] = []

    def name(field_name: str) -> str:
        return names.get(field_name) or _FIELD_VARIABLES.get(field_name, field_name)

    def choice(field_name: str, allowed: tuple[str, ...]) -> None:
        if field_name in names and values[field_name] not in allowed:
            errors.append(f"{name(field_name)}={values[field_name]!r} is invalid; allowed values: {', '.join(allowed)}")

    choice("backend", BACKENDS)
    choice("serving_deploy_mode", DEPLOY_MODES)
    choice("serving_source_type", SOURCE_TYPES)
    for field_name in ("serving_batch_interval", "serving_reload_interval"):
        if field_name in names:
            parsed = _positive_int(values[field_name])
            if parsed is None:
                errors.append(
                    f"{name(field_name)}={values[field_name]!r} is invalid; "
                    "allowed values: a whole number of seconds > 0"
                )
            else:
                values[field_name] = parsed
    if "serving_metrics_port" in names and values["serving_metrics_port"] is not None:
        port = _positive_int(values["serving_metrics_port"])
        if port is None or port > 65535:
            errors.append(
                f"{name('serving_metrics_port')}={values['serving_metrics_port']!r} is invalid; "
                "allowed values: a TCP port 1-65535, or empty (off)"
            )
        else:
            values["serving_metrics_port"] = port
    if "serving_challenger_alias" in names:
        try:
            values["serving_challenger_alias"] = challenger_alias(
                str(values["serving_challenger_alias"]), str(values["serving_model_stage"])
            )
        except ValueError as exc:
            errors.append(
                f"{name('serving_challenger_alias')}={values['serving_challenger_alias']!r} is invalid ({exc}); "
                "allowed values: an alias other than the served one, or none (off)"
            )
    pushgateway = values.get("serving_pushgateway_url")
    if "serving_pushgateway_url" in names and pushgateway and not re.match(r"^https?://", str(pushgateway)):
        errors.append(
            f"{name('serving_pushgateway_url')}={pushgateway!r} is invalid; allowed values: http(s)://HOST:PORT, "
            "or empty (off)"
        )
    if "gcs_bucket" in names and not _BUCKET_RE.match(str(values["gcs_bucket"])):
        errors.append(
            f"{name('gcs_bucket')}={values['gcs_bucket']!r} is invalid; allowed values: a GCS bucket name prefix "
            "(3-47 chars of a-z, 0-9, '-', '_', '.'), without gs://"
        )
    for field_name in ("kafka_input_topic", "kafka_output_topic"):
        if field_name in names and not _TOPIC_RE.match(str(values[field_name])):
            errors.append(
                f"{name(field_name)}={values[field_name]!r} is invalid; allowed values: a Kafka topic name "
                "(letters, digits, '.', '_', '-')"
            )
    if "mlflow_tracking_uri" in names and not re.match(
        r"^(https?|file|databricks)://|^/", values["mlflow_tracking_uri"]
    ):
        errors.append(
            f"{name('mlflow_tracking_uri')}={values['mlflow_tracking_uri']!r} is invalid; allowed values: "
            "http(s)://HOST:PORT, file:///PATH or an absolute path"
        )
    secret = str(values.get("mlflow_credentials_secret") or "")
    if "mlflow_credentials_secret" in names and secret and not SECRET_NAME.fullmatch(secret):
        errors.append(
            f"{name('mlflow_credentials_secret')}={secret!r} is invalid; allowed values: "
            "projects/PROJECT/secrets/NAME[/versions/VERSION|latest]"
        )
    required = {"dataproc": ("gcp_project_id", "dataproc_cluster_name"), SERVERLESS_BACKEND: ("gcp_project_id",)}
    for field_name in required.get(values["backend"], ()):
        if not values.get(field_name):
            errors.append(f"{name(field_name)} is not set; it is required when SENTIMENT_BACKEND={values['backend']}")
    ttl = _positive_int(values.get("dataproc_stream_ttl_seconds"))
    if ttl is not None:  # a Variable is a string; unused (and unchecked) off dataproc-serverless
        values["dataproc_stream_ttl_seconds"] = ttl
    if values["backend"] == SERVERLESS_BACKEND:
        errors += _serverless_errors(values, name)
    return errors


def _serverless_errors(values: dict[str, Any], name: Callable[[str], str]) -> list[str]:
    """The batch settings checked as jobs.serverless checks a Batch, each naming its Variable/param."""
    errors: list[str] = []
    ttl = values["dataproc_stream_ttl_seconds"]
    if not isinstance(ttl, int):
        errors.append(
            f"{name('dataproc_stream_ttl_seconds')}={ttl!r} is invalid; allowed values: a whole number of seconds, "
            f"{MIN_TTL_SECONDS} (10 minutes) to {MAX_TTL_SECONDS} (14 days)"
        )
    problems = execution_problems(
        str(values["dataproc_runtime_version"]),
        values.get("dataproc_service_account") or None,
        values.get("dataproc_subnetwork") or None,
        ttl if isinstance(ttl, int) else None,
    )
    fields_by_problem = {
        "runtime_version": "dataproc_runtime_version",
        "service_account": "dataproc_service_account",
        "subnetwork_uri": "dataproc_subnetwork",
        "ttl_seconds": "dataproc_stream_ttl_seconds",
    }
    return errors + [f"{name(fields_by_problem[key])} is invalid: {problem}" for key, problem in problems.items()]


_FIELD_VARIABLES = {
    "backend": VAR_BACKEND,
    "gcp_project_id": VAR_PROJECT,
    "gcp_region": VAR_REGION,
    "dataproc_cluster_name": VAR_CLUSTER,
    "dataproc_runtime_version": VAR_RUNTIME,
    "dataproc_service_account": VAR_SERVICE_ACCOUNT,
    "dataproc_subnetwork": VAR_SUBNETWORK,
    "dataproc_stream_ttl_seconds": VAR_STREAM_TTL,
    "gcs_bucket": VAR_BUCKET,
    "mlflow_tracking_uri": VAR_MLFLOW_URI,
    "mlflow_credentials_secret": VAR_MLFLOW_SECRET,
    "training_input_path": VAR_TRAINING_INPUT,
    "serving_deploy_mode": VAR_DEPLOY_MODE,
    "serving_model_name": VAR_MODEL_NAME,
    "serving_model_stage": VAR_MODEL_STAGE,
    "serving_source_type": VAR_SOURCE_TYPE,
    "serving_batch_interval": VAR_BATCH_INTERVAL,
    "serving_reload_interval": VAR_RELOAD_INTERVAL,
    "serving_challenger_alias": VAR_CHALLENGER_ALIAS,
    "serving_metrics_port": VAR_METRICS_PORT,
    "serving_metrics_host": VAR_METRICS_HOST,
    "serving_pushgateway_url": VAR_PUSHGATEWAY_URL,
    "kafka_bootstrap_servers": VAR_KAFKA_BOOTSTRAP,
    "kafka_input_topic": VAR_KAFKA_IN,
    "kafka_output_topic": VAR_KAFKA_OUT,
}


def load_airflow_config(get: Getter | Mapping[str, Any], backend_override: str | None = None) -> AirflowConfig:
    """Read the Variables through `get(name, default)` (e.g. `Variable.get`) or a mapping.

    `backend_override` pins the backend (the local-only development DAG), so Dataproc Variables are
    not required there. Raises ConfigError (a ValueError) naming every bad Variable.
    """
    read = _getter(get)
    defaults = AirflowConfig()
    values: dict[str, Any] = {}
    for field_name, var in _FIELD_VARIABLES.items():
        raw = read(var)
        values[field_name] = raw if raw is not None else getattr(defaults, field_name)
    values["backend"] = (backend_override or str(values["backend"])).lower()
    for field_name in ("serving_deploy_mode", "serving_source_type"):
        values[field_name] = str(values[field_name]).lower()
    values["mlflow_tracking_uri"] = mlflow_uri_from(read(VAR_MLFLOW_URI), read(VAR_MLFLOW_IP))
    if read(VAR_TRAINING_INPUT) is None:
        values["training_input_path"] = ""  # derived from the bucket in __post_init__
    names = dict(_FIELD_VARIABLES)
    if read(VAR_MLFLOW_URI) is None and read(VAR_MLFLOW_IP) is not None:
        names["mlflow_tracking_uri"] = VAR_MLFLOW_IP
    if backend_override:
        names["backend"] = f"backend override {backend_override!r}"
    errors = _validate_values(values, names)
    if errors:
        raise ConfigError("invalid Airflow Variables:\n  " + "\n  ".join(errors))
    return AirflowConfig(**values)


def from_airflow_variables(backend_override: str | None = None) -> AirflowConfig:
    """The configuration from the running Airflow's Variables (inside a task)."""
    from airflow.sdk import Variable

    return load_airflow_config(Variable.get, backend_override=backend_override)
