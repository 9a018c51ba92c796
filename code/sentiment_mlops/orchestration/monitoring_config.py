"""The monitoring DAG's thresholds and targets: Airflow Variables with documented defaults (the
model, bucket and MLflow server come from orchestration.config like every DAG's).

================================  ===============================  ====================================
Variable                          Default                          Meaning
================================  ===============================  ====================================
monitoring_window_hours           24                               predictions of the last N hours are
                                                                   measured (each run; the DAG is hourly)
monitoring_psi_threshold          0.2                              a feature's PSI above this is drift
monitoring_accuracy_floor         0.7                              live accuracy below this alerts
monitoring_min_rows               200                              fewer predictions of a version: no
                                                                   drift verdict for it (PSI is noise)
monitoring_min_labelled_rows      100                              fewer labelled rows: no accuracy
                                                                   verdict
monitoring_retrain_dag_id         sentiment_ml_training_pipeline   DAG triggered on an alert (empty:
                                                                   notify only)
monitoring_alert_cooldown_hours   24                               no second alert (mail, retraining)
                                                                   within this many hours of one
monitoring_pushgateway_url        (none: no push)                  Prometheus Pushgateway, e.g.
                                                                   http://127.0.0.1:9091
monitoring_experiment             sentiment-monitoring             MLflow experiment of the runs
monitoring_challenger_auto_        false                            true: the shadow challenger takes
promote                                                            @production when it wins (else the
                                                                   verdict is only reported)
monitoring_challenger_min_         500                              fewer labelled rows scored by both:
labelled_rows                                                      no promotion verdict
================================  ===============================  ====================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from sentiment_mlops.core.errors import ConfigError

PREFIX = "monitoring_"


@dataclass(frozen=True)
class MonitoringConfig:
    window_hours: float = 24.0
    psi_threshold: float = 0.2
    accuracy_floor: float = 0.7
    min_rows: int = 200
    min_labelled_rows: int = 100
    retrain_dag_id: str = "sentiment_ml_training_pipeline"
    alert_cooldown_hours: float = 24.0
    pushgateway_url: str = ""
    experiment: str = "sentiment-monitoring"
    challenger_auto_promote: bool = False
    challenger_min_labelled_rows: int = 500

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitoringConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# (minimum, maximum) of each number; the string fields take any text.
_RANGES: dict[str, tuple[float, float]] = {
    "window_hours": (0.01, 24 * 366),
    "psi_threshold": (0.0, 100.0),
    "accuracy_floor": (0.0, 1.0),
    "min_rows": (1, 10**9),
    "min_labelled_rows": (1, 10**9),
    "challenger_min_labelled_rows": (1, 10**9),
    "alert_cooldown_hours": (0.0, 24 * 366),
}


_BOOLEANS = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}


def load_monitoring_config(get: Callable[[str, str | None], str | None] | Mapping[str, Any]) -> MonitoringConfig:
    """Read the `monitoring_*` Variables through `get(name, default)` or a mapping; an empty Variable
    means the default. Raises ConfigError naming every bad one."""
    defaults = MonitoringConfig()
    values: dict[str, Any] = {}
    errors: list[str] = []
    for f in fields(MonitoringConfig):
        name = PREFIX + f.name
        raw = get.get(name) if isinstance(get, Mapping) else get(name, None)
        text = "" if raw is None else str(raw).strip()
        default = getattr(defaults, f.name)
        if not text:
            values[f.name] = default
            continue
        if isinstance(default, str):
            values[f.name] = text
            continue
        if isinstance(default, bool):
            if text.lower() not in _BOOLEANS:
                errors.append(f"{name}={text!r} is invalid; allowed values: true, false")
            else:
                values[f.name] = _BOOLEANS[text.lower()]
            continue
        low, high = _RANGES[f.name]
        try:
            number = int(text) if isinstance(default, int) else float(text)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            kind = "a whole number" if isinstance(default, int) else "a number"
            errors.append(f"{name}={text!r} is invalid; allowed values: {kind} from {low:g} to {high:g}")
        else:
            values[f.name] = number
    if errors:
        raise ConfigError("invalid Airflow Variables:\n  " + "\n  ".join(errors))
    if values["pushgateway_url"] and "://" not in values["pushgateway_url"]:
        values["pushgateway_url"] = f"http://{values['pushgateway_url']}"
    return MonitoringConfig(**values)


def from_airflow_variables() -> MonitoringConfig:
    """The monitoring configuration from the running Airflow's Variables (inside a task)."""
    from airflow.sdk import Variable

    return load_monitoring_config(Variable.get)
