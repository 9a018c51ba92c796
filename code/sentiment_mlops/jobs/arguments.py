"""The job's own command-line arguments (`--flag=value`), checked before a cluster is involved.

The flags mirror `training.job.build_arg_parser` and `serving.job.build_arg_parser`; tests parse the
built lists with those parsers so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from sentiment_mlops.core.settings import DEFAULT_EXPERIMENT, DEFAULT_REGISTERED_MODEL_NAME
from sentiment_mlops.jobs.layout import check_source_type
from sentiment_mlops.registry.lookups import challenger_alias as _challenger_alias

MODEL_FLAVORS = ("spark", "pyfunc")


def _require(name: str, value: str | None) -> str:
    if value is None or not str(value).strip():
        raise ValueError(f"{name} is required")
    return str(value)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def _check_given_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive when given, got {value}")


def _credentials_flag(secret: str) -> list[str]:
    """Only a Secret Manager name goes into a job's arguments, never a credential."""
    if not secret:
        return []
    from sentiment_mlops.registry.mlflow_credentials import check_secret_name

    check_secret_name(secret)
    return [f"--mlflow-credentials-secret={secret}"]


def _present(flags: Mapping[str, object]) -> list[str]:
    """`--flag=value` for each flag whose value is neither None nor empty."""
    return [f"{flag}={value}" for flag, value in flags.items() if value is not None and value != ""]


def training_args(
    *,
    input: str,
    output: str,
    mlflow_uri: str,
    mlflow_experiment: str = DEFAULT_EXPERIMENT,
    mlflow_credentials_secret: str = "",
    registered_model_name: str = DEFAULT_REGISTERED_MODEL_NAME,
    num_features: int = 32768,
    sample_fraction: float = 1.0,
    enable_cv: bool = False,
    cv_folds: int = 2,
    enable_caching: bool = True,
    max_rows: int = 0,
    models: str = "all",
    seed: int = 42,
    extra: list[str] | None = None,
) -> list[str]:
    """`--flag=value` arguments of the training job (training_job.build_arg_parser), then `extra`.

    Every value is written out, defaults included, so a job's behaviour is visible in its spec and does
    not change when the job's own defaults do. Range checks repeat training_job.validate_args so a bad
    value fails here (ValueError), before a cluster is involved.
    """
    _check_positive(num_features=num_features)
    if not 0.0 < sample_fraction <= 1.0:
        raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
    if cv_folds < 2:
        raise ValueError(f"cv_folds must be at least 2, got {cv_folds}")
    if max_rows < 0:
        raise ValueError(f"max_rows must be 0 (all) or positive, got {max_rows}")
    args = [
        f"--input={_require('input', input)}",
        f"--output={_require('output', output)}",
        f"--mlflow-uri={_require('mlflow_uri', mlflow_uri)}",
        f"--mlflow-experiment={_require('mlflow_experiment', mlflow_experiment)}",
        f"--registered-model-name={_require('registered_model_name', registered_model_name)}",
        f"--num-features={int(num_features)}",
        f"--sample-fraction={float(sample_fraction)!r}",
        f"--cv-folds={int(cv_folds)}",
        f"--max-rows={int(max_rows)}",
        f"--models={_require('models', models)}",
        f"--seed={int(seed)}",
        *_credentials_flag(mlflow_credentials_secret),
    ]
    # Boolean flags go bare when true and are left out when false (the job also takes `--flag true|false`).
    if enable_cv:
        args.append("--enable-cv")
    if enable_caching:
        args.append("--enable-caching")
    return args + list(extra or [])


def _check_serving_source(
    source_type: str, input_path: str | None, kafka_bootstrap: str | None, kafka_topic: str | None
) -> None:
    check_source_type(source_type)
    if source_type == "file" and not input_path:
        raise ValueError("input_path is required when source_type is 'file'")
    if source_type == "kafka" and not (kafka_bootstrap and kafka_topic):
        raise ValueError("kafka_bootstrap and kafka_topic are required when source_type is 'kafka'")


def serving_args(
    *,
    source_type: str,
    output_path: str,
    checkpoint: str,
    mlflow_uri: str,
    model_name: str,
    model_stage: str = "Production",
    input_path: str | None = None,
    kafka_bootstrap: str | None = None,
    kafka_topic: str | None = None,
    batch_interval_seconds: int = 30,
    reload_interval_seconds: int = 300,
    write_kafka: bool = False,
    kafka_output_bootstrap: str | None = None,
    kafka_output_topic: str | None = None,
    quarantine_path: str | None = None,
    max_files_per_trigger: int | None = None,
    max_offsets_per_trigger: int | None = None,
    model_flavor: str = "spark",
    metrics_path: str | None = None,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
    pushgateway_url: str | None = None,
    mlflow_credentials_secret: str = "",
    challenger_alias: str | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """`--flag=value` arguments of the streaming serving job, then `extra`. Optional settings left as
    None are omitted so the job's own defaults apply; `--write-kafka` is a presence flag. Raises
    ValueError for a missing or out-of-range setting. `metrics_port` (the driver's Prometheus
    endpoint) and `pushgateway_url` are off when None. `challenger_alias`: the shadow challenger's
    alias ("" or "none": off; None: the job's default, `challenger`)."""
    _check_serving_source(source_type, input_path, kafka_bootstrap, kafka_topic)
    if model_flavor not in MODEL_FLAVORS:
        raise ValueError(f"model_flavor must be one of {', '.join(MODEL_FLAVORS)}, got {model_flavor!r}")
    _check_positive(batch_interval_seconds=batch_interval_seconds, reload_interval_seconds=reload_interval_seconds)
    _check_given_positive(max_files_per_trigger=max_files_per_trigger, max_offsets_per_trigger=max_offsets_per_trigger)
    if metrics_port is not None and not 0 < int(metrics_port) < 65536:
        raise ValueError(f"metrics_port must be a TCP port (1-65535) when given, got {metrics_port}")
    if pushgateway_url and not str(pushgateway_url).startswith(("http://", "https://")):
        raise ValueError(f"pushgateway_url must be an http(s):// URL when given, got {pushgateway_url!r}")
    challenger = None if challenger_alias is None else (_challenger_alias(challenger_alias, model_stage) or "none")
    # Predictions go back to the input brokers unless told otherwise.
    out_bootstrap = kafka_output_bootstrap or kafka_bootstrap
    if write_kafka and not (out_bootstrap and kafka_output_topic):
        raise ValueError("write_kafka needs kafka_output_topic and kafka_output_bootstrap (or kafka_bootstrap)")
    args = [
        f"--source-type={source_type}",
        f"--output-path={_require('output_path', output_path)}",
        f"--checkpoint={_require('checkpoint', checkpoint)}",
        f"--mlflow-uri={_require('mlflow_uri', mlflow_uri)}",
        f"--model-name={_require('model_name', model_name)}",
        f"--model-stage={_require('model_stage', model_stage)}",
        f"--model-flavor={model_flavor}",
        f"--batch-interval-seconds={int(batch_interval_seconds)}",
        f"--reload-interval-seconds={int(reload_interval_seconds)}",
        *_credentials_flag(mlflow_credentials_secret),
    ]
    optional: dict[str, object] = {
        "--input-path": input_path,
        "--kafka-bootstrap": kafka_bootstrap,
        "--kafka-topic": kafka_topic,
        "--quarantine-path": quarantine_path,
        "--max-files-per-trigger": max_files_per_trigger,
        "--max-offsets-per-trigger": max_offsets_per_trigger,
        "--metrics-path": metrics_path,
        "--metrics-port": metrics_port,
        "--metrics-host": metrics_host if metrics_port is not None else None,
        "--pushgateway-url": pushgateway_url,
        "--challenger-alias": challenger,
    }
    if write_kafka:
        args.append("--write-kafka")
        optional |= {"--kafka-output-bootstrap": out_bootstrap, "--kafka-output-topic": kafka_output_topic}
    return args + _present(optional) + list(extra or [])
