"""The monitoring DAG (sentiment_model_monitoring): how the served model is doing on live traffic.

Each run reads the serving job's predictions of the last `monitoring_window_hours` (the
`predictions/date=D/` Parquet), and for every model version in them: PSI per feature against that
version's reference profile (logged by training, see monitoring.profile), and accuracy on the rows
that carry a label. It logs the numbers to MLflow (experiment `monitoring_experiment`), writes a
report (JSON + PNG) to `gs://{GCS_BUCKET}-predictions/monitoring/model/`, pushes the gauges to a
Pushgateway, and decides whether to alert (notify, and trigger the training DAG with the reason).

A missing reference profile (a model trained before profiles existed), too few rows, or an
unreachable Pushgateway is reported in the result, not raised: the other numbers still count.

Shadow challenger (monitoring.challenger): where the window's rows carry a challenger prediction, the
run reports agreement and the live accuracy of both models on the same labelled rows, and decides
whether the challenger the registry names now takes `@production` through the promotion gate. Only with
`monitoring_challenger_auto_promote` on does it move the alias (then the `@challenger` alias is removed,
and the version is tagged with the reason); off, the verdict is only reported.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from sentiment_mlops.core.storage import join_uri
from sentiment_mlops.core.store import Store
from sentiment_mlops.monitoring import challenger, profile
from sentiment_mlops.orchestration.backends import store_for
from sentiment_mlops.orchestration.config import AirflowConfig
from sentiment_mlops.orchestration.monitoring_config import MonitoringConfig
from sentiment_mlops.orchestration.tasks.common import TaskError, serving_paths

log = logging.getLogger(__name__)

COLUMNS = (
    "text",
    "label",
    "prediction",
    "model_name",
    "model_version",
    "prediction_timestamp",
    "challenger_prediction",
    "challenger_model_version",
)
MAX_ROWS = 200_000  # newest rows measured per run: PSI over deciles needs thousands, not millions
PUSH_JOB = "sentiment_model_monitoring"
_DATE_RE = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")


# --- reading ----------------------------------------------------------------------------------


def _window_files(store: Store, predictions_uri: str, start: datetime) -> list[str]:
    """Parquet files of the date partitions the window touches, newest first (names sort by day,
    stream, batch)."""
    first_day = start.strftime("%Y-%m-%d")
    files = []
    for uri, _size in store.list_files(predictions_uri):
        match = _DATE_RE.search(uri)
        if match and uri.endswith(".parquet") and match.group(1) >= first_day:
            files.append(uri)
    return sorted(files, reverse=True)


def read_window(
    store: Store, predictions_uri: str, start: datetime, end: datetime, max_rows: int = MAX_ROWS
) -> pd.DataFrame:
    """Predictions with `start <= prediction_timestamp < end` (naive UTC), at most `max_rows` of the
    newest; only the columns monitoring needs."""
    import pyarrow.parquet as pq

    frames: list[pd.DataFrame] = []
    rows = 0
    for uri in _window_files(store, predictions_uri, start):
        with store.open_input(uri) as handle:
            parquet = pq.ParquetFile(handle)
            columns = [c for c in COLUMNS if c in parquet.schema_arrow.names]
            frame = parquet.read(columns=columns).to_pandas()
        for column in COLUMNS:
            if column not in frame.columns:
                frame[column] = None
        stamps = pd.to_datetime(frame["prediction_timestamp"])
        if getattr(stamps.dt, "tz", None) is not None:  # Parquet written as UTC-adjusted instants
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        frame = frame[(stamps >= pd.Timestamp(start)) & (stamps < pd.Timestamp(end))]
        if not frame.empty:
            frames.append(frame)
            rows += len(frame)
        if rows >= max_rows:
            break
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    return pd.concat(frames, ignore_index=True).head(max_rows)


def reference_profile(client: Any, model_name: str, version: str) -> dict[str, Any] | None:
    """The reference profile logged with the run of `model_name` version `version`; None when that
    run has none (trained before profiles) or the version is gone."""
    try:
        run_id = client.get_model_version(model_name, version).run_id
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, profile.PROFILE_ARTIFACT, tmp)
            data: dict[str, Any] = json.loads(Path(path).read_text())
    except Exception as exc:  # MlflowException (no such version / artifact), OSError
        log.warning("no reference profile for %s v%s: %s", model_name, version, str(exc).splitlines()[0][:200])
        return None
    return data


# --- measuring --------------------------------------------------------------------------------


def measure_version(rows: pd.DataFrame, reference: dict[str, Any] | None, mcfg: MonitoringConfig) -> dict[str, Any]:
    """One model version's numbers: rows, live accuracy on labelled rows, and PSI per feature when
    there is a reference and at least `min_rows` rows."""
    accuracy, labelled = profile.live_accuracy(rows)
    entry: dict[str, Any] = {
        "rows": len(rows),
        "labelled_rows": labelled,
        "live_accuracy": accuracy,
        "reference": "found" if reference else "missing",
        "drift": None,
    }
    if reference is None:
        entry["drift_skipped"] = "no reference profile logged with this version's run"
    elif len(rows) < mcfg.min_rows:
        entry["drift_skipped"] = f"{len(rows)} rows < monitoring_min_rows {mcfg.min_rows}"
    else:
        entry["drift"] = profile.drift(reference, rows)
        entry["reference_rows"] = reference.get("rows")
    return entry


def alert_reasons(versions: list[dict[str, Any]], mcfg: MonitoringConfig) -> list[str]:
    """Why this window calls for an alert (empty: it does not): features over the PSI threshold, and
    live accuracy under the floor on enough labelled rows, per version."""
    reasons = []
    for v in versions:
        label = f"{v['model_name']} v{v['model_version']}"
        drifted = {f: d["psi"] for f, d in (v.get("drift") or {}).items() if d["psi"] > mcfg.psi_threshold}
        if drifted:
            listed = ", ".join(f"{f} {psi:.3f}" for f, psi in sorted(drifted.items(), key=lambda kv: -kv[1]))
            reasons.append(f"drift on {label}: PSI {listed} > {mcfg.psi_threshold:g}")
        accuracy = v.get("live_accuracy")
        if accuracy is not None and v["labelled_rows"] >= mcfg.min_labelled_rows and accuracy < mcfg.accuracy_floor:
            reasons.append(
                f"live accuracy of {label} {accuracy:.3f} < floor {mcfg.accuracy_floor:g} "
                f"on {v['labelled_rows']} labelled rows"
            )
    return reasons


def recent_alert(client: Any, experiment: str, hours: float, now: datetime) -> str | None:
    """The run id of an alert logged in `experiment` within the last `hours`, if any."""
    if hours <= 0:
        return None
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    since_ms = int((now - timedelta(hours=hours)).replace(tzinfo=UTC).timestamp() * 1000)
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.alert = 'true' and attributes.start_time > {since_ms}",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def measure(cfg: AirflowConfig, mcfg: MonitoringConfig, now: datetime, client: Any, store: Store) -> dict[str, Any]:
    """The report of one window ending `now` (naive UTC): rows, the serving version, every version's
    numbers, and the alert decision (before the cooldown)."""
    from sentiment_mlops.registry import lookups as registry

    start = now - timedelta(hours=mcfg.window_hours)
    predictions_uri = serving_paths(cfg)["predictions"]
    window = read_window(store, predictions_uri, start, now)
    serving = registry.resolve_version(client, cfg.serving_model_name, cfg.serving_model_stage)
    versions = []
    for (name, version), rows in window.groupby(["model_name", "model_version"], dropna=False, sort=True):
        name, version = str(name), str(version)
        reference = reference_profile(client, name, version)
        versions.append({"model_name": name, "model_version": version, **measure_version(rows, reference, mcfg)})
    reasons = alert_reasons(versions, mcfg)
    return {
        **_head(cfg, mcfg, now, start, predictions_uri, window, serving),
        "versions": versions,
        "challenger": measure_challenger(cfg, mcfg, window, client, serving.version if serving else None),
        "alert": {"fire": bool(reasons), "reasons": reasons, "reason": "; ".join(reasons)},
    }


def measure_challenger(
    cfg: AirflowConfig, mcfg: MonitoringConfig, window: pd.DataFrame, client: Any, production: str | None
) -> dict[str, Any]:
    """The shadow challenger's section of the report: the alias and the version it names now, every
    (served, challenger) pair in the window, and the promotion decision."""
    from sentiment_mlops.registry import lookups as registry

    alias = cfg.serving_challenger_alias
    named = registry.resolve_version(client, cfg.serving_model_name, alias) if alias else None
    comparisons = challenger.compare(window)
    decision = challenger.promotion_decision(
        comparisons,
        production,
        named.version if named else None,
        auto_promote=mcfg.challenger_auto_promote,
        min_labelled_rows=mcfg.challenger_min_labelled_rows,
        min_accuracy=mcfg.accuracy_floor,
    )
    if not alias:
        decision["reason"] = "challenger off (serving_challenger_alias is none)"
    elif decision["promote"] and cfg.serving_model_stage.strip().isdigit():
        decision.update(promote=False, reason=f"{decision['reason']}; serving_model_stage pins version "
                        f"{cfg.serving_model_stage}: no alias to move")  # fmt: skip
    return {
        "alias": alias or None,
        "version": named.version if named else None,
        "comparisons": [c.as_dict() for c in comparisons],
        "decision": decision,
    }


def _head(
    cfg: AirflowConfig,
    mcfg: MonitoringConfig,
    now: datetime,
    start: datetime,
    predictions_uri: str,
    window: pd.DataFrame,
    serving: Any,
) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "window": {
            "start": start.isoformat(timespec="seconds"),
            "end": now.isoformat(timespec="seconds"),
            "hours": mcfg.window_hours,
        },  # fmt: skip
        "predictions_uri": predictions_uri,
        "rows": len(window),
        "served_model": {
            "name": cfg.serving_model_name,
            "stage_or_alias": cfg.serving_model_stage,
            "version": serving.version if serving else None,
        },
        "thresholds": {
            k: getattr(mcfg, k) for k in ("psi_threshold", "accuracy_floor", "min_rows", "min_labelled_rows")
        },  # fmt: skip
    }


def promote_challenger(client: Any, cfg: AirflowConfig, decision: dict[str, Any], run_tag: str) -> None:
    """Move the served alias (`@production`) to the winning challenger (the registry call training's gate
    makes), tag the version with why, and remove the challenger alias: that version now serves, and the
    next challenger is named on purpose. Records the outcome in `decision` ("promoted", or "promotion_error")."""
    from sentiment_mlops.registry import lookups as registry

    name, version = cfg.serving_model_name, str(decision["challenger_version"])
    served_alias = registry.alias_for(cfg.serving_model_stage)
    try:
        registry.promote(client, name, version, served_alias)
        registry.version_tags(
            client,
            name,
            version,
            {
                "promoted_by": f"sentiment_model_monitoring {run_tag}",
                "promotion_reason": decision["reason"][:5000],
                "promoted_from": f"@{cfg.serving_challenger_alias}, replacing v{decision['production_version']}",
            },
        )
        client.delete_registered_model_alias(name, cfg.serving_challenger_alias)
    except Exception as exc:  # MlflowException, unreachable: reported, and the task fails after the report
        decision["promoted"] = False
        decision["promotion_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        log.error("could not promote challenger %s v%s: %s", name, version, decision["promotion_error"])
        return
    decision["promoted"] = True
    log.warning("challenger %s v%s promoted to @%s: %s", name, version, served_alias, decision["reason"])


# --- outputs ----------------------------------------------------------------------------------


def log_to_mlflow(client: Any, mcfg: MonitoringConfig, report: dict[str, Any], files: list[Path], run_tag: str) -> str:
    """One run in the monitoring experiment (tags: alert, reason, serving version; the report and
    plot as artifacts) with one nested run per model version (psi_<feature>, live_accuracy,
    labelled_rows, rows). Returns the parent run's id."""
    exp = client.get_experiment_by_name(mcfg.experiment)
    experiment_id = exp.experiment_id if exp else client.create_experiment(mcfg.experiment)
    alert = report["alert"]
    parent = client.create_run(
        experiment_id,
        run_name=f"monitoring-{run_tag}",
        tags={
            "alert": "true" if alert["fire"] else "false",
            "alert_reason": alert["reason"][:5000],
            "served_model": report["served_model"]["name"],
            "served_version": str(report["served_model"]["version"]),
        },
    )
    parent_id = parent.info.run_id
    client.log_metric(parent_id, "rows", report["rows"])
    _log_challenger(client, parent_id, report["challenger"])
    for path in files:
        client.log_artifact(parent_id, str(path), "report")
    for v in report["versions"]:
        child = client.create_run(
            experiment_id,
            run_name=f"{v['model_name']}-v{v['model_version']}",
            tags={"mlflow.parentRunId": parent_id, "model_name": v["model_name"], "model_version": v["model_version"]},
        )
        metrics = {"rows": v["rows"], "labelled_rows": v["labelled_rows"]}
        if v["live_accuracy"] is not None:
            metrics["live_accuracy"] = v["live_accuracy"]
        for feature, d in (v.get("drift") or {}).items():
            metrics[f"psi_{feature}"] = d["psi"]
        for key, value in metrics.items():
            client.log_metric(child.info.run_id, key, float(value))
        client.set_terminated(child.info.run_id)
    client.set_terminated(parent_id)
    return str(parent_id)


def _log_challenger(client: Any, run_id: str, section: dict[str, Any]) -> None:
    """The challenger's tags and, for the pair the decision judged, its metrics on the parent run."""
    decision = section["decision"]
    client.set_tag(run_id, "challenger_version", str(section["version"]))
    client.set_tag(run_id, "challenger_decision", decision["reason"][:5000])
    client.set_tag(run_id, "challenger_promoted", "true" if decision.get("promoted") else "false")
    pair = decision["comparison"]
    if not pair:
        return
    metrics = {
        "challenger_rows": pair["rows"],
        "challenger_agreement": pair["agreement"],
        "challenger_labelled_rows": pair["labelled_rows"],
        "challenger_live_accuracy": pair["challenger_accuracy"],
        "served_live_accuracy_vs_challenger": pair["served_accuracy"],
    }
    for key, value in metrics.items():
        if value is not None:
            client.log_metric(run_id, key, float(value))


def push_metrics(url: str, report: dict[str, Any], timeout: float = 5.0) -> str:
    """Push the gauges to the Pushgateway at `url` (job sentiment_model_monitoring; the push replaces
    the job's previous group, so versions no longer served disappear). "pushed", "disabled" (no
    URL) or "failed: <reason>": an unreachable gateway is logged and the next run pushes again."""
    if not url:
        return "disabled"
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    psi = Gauge("sentiment_drift_psi", "PSI of a feature of live predictions against the model's reference profile",
                ["feature", "model_version"], registry=registry)  # fmt: skip
    accuracy = Gauge("sentiment_live_accuracy", "Accuracy on labelled live predictions in the monitoring window",
                     ["model_version"], registry=registry)  # fmt: skip
    labelled = Gauge("sentiment_monitoring_labelled_rows", "Labelled live predictions in the monitoring window",
                     ["model_version"], registry=registry)  # fmt: skip
    for v in report["versions"]:
        for feature, d in (v.get("drift") or {}).items():
            psi.labels(feature=feature, model_version=v["model_version"]).set(d["psi"])
        if v["live_accuracy"] is not None:
            accuracy.labels(model_version=v["model_version"]).set(v["live_accuracy"])
        labelled.labels(model_version=v["model_version"]).set(v["labelled_rows"])
    challenger_gauges(registry, report.get("challenger") or {})
    try:
        push_to_gateway(url, job=PUSH_JOB, registry=registry, timeout=timeout)
    except Exception as exc:  # URLError, timeout, HTTP error
        log.warning("Pushgateway %s unreachable, metrics not pushed this run: %s", url, exc)
        return f"failed: {exc}"
    return "pushed"


def challenger_gauges(registry: Any, section: dict[str, Any]) -> None:
    """Agreement and both live accuracies per (served, challenger) pair in the window."""
    from prometheus_client import Gauge

    labels = ["model_version", "challenger_version"]
    agreement = Gauge("sentiment_challenger_agreement", "Share of live rows where the shadow challenger "
                      "predicts the served model's label", labels, registry=registry)  # fmt: skip
    accuracy = Gauge("sentiment_challenger_live_accuracy", "Accuracy of the served model and of the shadow "
                     "challenger on the same labelled live rows", [*labels, "role"], registry=registry)  # fmt: skip
    labelled = Gauge("sentiment_challenger_labelled_rows", "Labelled live rows scored by both models",
                     labels, registry=registry)  # fmt: skip
    for pair in section.get("comparisons") or []:
        key = {"model_version": pair["served_version"], "challenger_version": pair["challenger_version"]}
        if pair["agreement"] is not None:
            agreement.labels(**key).set(pair["agreement"])
        labelled.labels(**key).set(pair["labelled_rows"])
        for role in ("served", "challenger"):
            if pair[f"{role}_accuracy"] is not None:
                accuracy.labels(**key, role=role).set(pair[f"{role}_accuracy"])


def write_report(store: Store, cfg: AirflowConfig, mcfg: MonitoringConfig, report: dict[str, Any],
                 workdir: Path) -> tuple[dict[str, str], list[Path]]:  # fmt: skip
    """`model-report-<stamp>.json` and `.png` under `gs://{b}-predictions/monitoring/model/`; returns
    their URIs and the local files."""
    from sentiment_mlops.monitoring.report_plot import drift_png

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    json_path = workdir / f"model-report-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    png_path = drift_png(report, mcfg.psi_threshold, workdir / f"model-report-{stamp}.png")
    base = join_uri(serving_paths(cfg)["monitoring"], "model")
    uris = {
        "json_uri": store.upload_file(json_path, join_uri(base, json_path.name)),
        "plot_uri": store.upload_file(png_path, join_uri(base, png_path.name)),
    }
    return uris, [json_path, png_path]


def _summary(version: dict[str, Any]) -> dict[str, Any]:
    """A version's numbers without the distributions (what goes to XCom and the alert)."""
    keys = ("model_name", "model_version", "rows", "labelled_rows", "live_accuracy", "reference")
    return {**{k: version.get(k) for k in keys}, "psi": {f: d["psi"] for f, d in (version.get("drift") or {}).items()}}


def _challenger_summary(section: dict[str, Any]) -> dict[str, Any]:
    """The challenger's numbers for the pair the decision judged, and the decision (XCom-sized)."""
    decision = section["decision"]
    keys = ("promote", "would_promote", "promoted", "promotion_error", "reason", "production_version")
    return {
        "alias": section["alias"],
        "version": section["version"],
        "comparison": decision["comparison"],
        **{k: decision.get(k) for k in keys},
    }


def run_monitoring(
    cfg: AirflowConfig,
    mcfg: MonitoringConfig,
    run_tag: str,
    now: datetime | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """The whole measuring task: measure, apply the cooldown, log to MLflow, write the report, push.
    Returns what the next tasks need (small: no distributions)."""
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.registry import lookups as registry

    now = now or datetime.now(UTC).replace(tzinfo=None)
    store = store or store_for(cfg)
    try:
        registry.check_tracking_server(cfg.mlflow_tracking_uri)
    except registry.MlflowUnreachableError as exc:
        raise TaskError(f"{exc} (Airflow Variable MLFLOW_TRACKING_URI / MLFLOW_VM_IP)") from exc
    client = MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)
    report = measure(cfg, mcfg, now, client, store)
    decision = report["challenger"]["decision"]
    if decision["promote"]:
        promote_challenger(client, cfg, decision, run_tag)
    alert = report["alert"]
    if alert["fire"]:
        earlier = recent_alert(client, mcfg.experiment, mcfg.alert_cooldown_hours, now)
        if earlier:
            log.info("alert conditions hold, but run %s alerted within %g h: no new alert", earlier,
                     mcfg.alert_cooldown_hours)  # fmt: skip
            alert.update(fire=False, suppressed_by=earlier)
    with tempfile.TemporaryDirectory() as tmp:
        uris, files = write_report(store, cfg, mcfg, report, Path(tmp))
        run_id = log_to_mlflow(client, mcfg, report, files, run_tag)
    pushed = push_metrics(mcfg.pushgateway_url, report)
    log.info("monitoring: %d rows, alert=%s %s; challenger: %s; report %s", report["rows"], alert["fire"],
             alert["reason"], decision["reason"], uris["json_uri"])  # fmt: skip
    if decision.get("promotion_error"):
        raise TaskError(f"challenger promotion failed: {decision['promotion_error']} (report {uris['json_uri']})")
    return {
        **uris,
        "mlflow_run_id": run_id,
        "pushgateway": pushed,
        "rows": report["rows"],
        "served_model": report["served_model"],
        "versions": [_summary(v) for v in report["versions"]],
        "challenger": _challenger_summary(report["challenger"]),
        "alert": alert,
    }


def alert_message(result: dict[str, Any], retrain_dag_id: str) -> tuple[str, str]:
    """Subject and body of the alert a person receives."""
    alert = result["alert"]
    lines = [f"Model monitoring alert: {alert['reason']}", "", "Versions in the window:"]
    for v in result["versions"]:
        psi = ", ".join(f"{k} {x:.3f}" for k, x in v["psi"].items()) or "not measured"
        lines.append(f"- {v['model_name']} v{v['model_version']}: {v['rows']} rows, live accuracy "
                     f"{v['live_accuracy']} on {v['labelled_rows']} labelled; PSI {psi}")  # fmt: skip
    shadow = result.get("challenger") or {}
    if shadow.get("version"):
        lines += ["", f"Challenger v{shadow['version']}: {shadow['reason']}"]
    lines += ["", f"Report: {result['json_uri']} (plot {result['plot_uri']})", f"MLflow run: {result['mlflow_run_id']}"]
    lines.append(f"Retraining: DAG {retrain_dag_id} triggered" if retrain_dag_id else "Retraining: not configured")
    first = alert["reasons"][0] if alert["reasons"] else "alert"
    return f"[sentiment-mlops] model alert: {first}", "\n".join(lines)
