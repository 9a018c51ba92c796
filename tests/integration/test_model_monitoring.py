"""The monitoring DAG's work against real peers: predictions Parquet in the local bucket, a real
MLflow server holding the model's reference profile, a real Pushgateway, a real SMTP server; and the
DAG itself through `airflow dags test` (alert mail, retraining triggered, failure mail)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures_monitoring import (  # noqa: F401 - fixtures
    SmtpSink,
    pushgateway_fixture,
    register_profiled_model,
    slack_webhook_fixture,
    smtp_server_fixture,
    tweets,
    write_predictions,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = ROOT / "airflow" / "dags"


def _drifted(rows: pd.DataFrame) -> pd.DataFrame:
    """What a changed audience looks like: long promotional texts with unseen words, all predicted
    positive while they are labelled negative."""
    text = rows["text"] + " RT check qzxv-deals crypto airdrop giveaway now!!! " + rows["text"]
    return rows.assign(text=text, prediction=1, label=0)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def test_measures_pushes_alerts_once_and_survives_a_dead_pushgateway(
    sentiment_home: Path, mlflow_server: str, sample_csv: Path, pushgateway: str
) -> None:
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.backends.local.store import LocalStore
    from sentiment_mlops.core.settings import load_settings
    from sentiment_mlops.monitoring.profile import FEATURES, build_vocabulary
    from sentiment_mlops.orchestration.config import AirflowConfig
    from sentiment_mlops.orchestration.monitoring_config import MonitoringConfig
    from sentiment_mlops.orchestration.tasks.monitoring import run_monitoring

    reference = tweets(sample_csv, 0, 3000).assign(prediction=lambda d: d["label"])
    version = register_profiled_model(
        mlflow_server, "monitor-a-best", reference, build_vocabulary(tweets(sample_csv, 3000, 5000)["text"])
    )
    cfg = AirflowConfig(gcs_bucket="mon-a", mlflow_tracking_uri=mlflow_server, serving_model_name="monitor-a-best")
    store, root = LocalStore(load_settings("local")), load_settings("local").bucket_root
    now = _now()
    live = tweets(sample_csv, 10000, 1500).assign(prediction=lambda d: d["label"])
    write_predictions(root, "mon-a", live, "monitor-a-best", version, now - timedelta(hours=1), 1)
    old = _drifted(tweets(sample_csv, 12000, 500))  # two days old: outside the window, never counted
    write_predictions(root, "mon-a", old, "monitor-a-best", version, now - timedelta(days=2), 0)
    mcfg = MonitoringConfig(pushgateway_url=pushgateway, experiment="mon-a", min_rows=200, min_labelled_rows=100)

    stable = run_monitoring(cfg, mcfg, "stable", now=now, store=store)
    assert stable["rows"] == 1500 and stable["alert"]["fire"] is False and stable["pushgateway"] == "pushed"
    [v] = stable["versions"]
    assert (v["model_version"], v["reference"], v["live_accuracy"], v["labelled_rows"]) == (version, "found", 1.0, 1500)
    assert set(v["psi"]) == set(FEATURES) and max(v["psi"].values()) < 0.1, v["psi"]  # same population
    assert stable["served_model"]["version"] == version
    report = json.loads(store.read_bytes(stable["json_uri"]))
    assert report["versions"][0]["drift"]["text_length"]["expected"]  # distributions kept in the report
    assert store.read_bytes(stable["plot_uri"])[:4] == b"\x89PNG"
    assert "/mon-a-predictions/monitoring/model/" in stable["json_uri"]
    metrics = urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5).read().decode()
    labels = f'instance="",job="sentiment_model_monitoring",model_version="{version}"'
    assert f"sentiment_live_accuracy{{{labels}}} 1\n" in metrics
    assert f'sentiment_drift_psi{{feature="oov",{labels}}} ' in metrics
    assert f"sentiment_monitoring_labelled_rows{{{labels}}} 1500\n" in metrics

    client = MlflowClient(mlflow_server)
    parent = client.get_run(stable["mlflow_run_id"])
    assert parent.data.tags["alert"] == "false"
    [child] = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert child.data.metrics["live_accuracy"] == 1.0 and "psi_text_length" in child.data.metrics

    # Three hours later the audience has changed: drift and accuracy both alert, once.
    later = now + timedelta(hours=3)
    drifted = _drifted(tweets(sample_csv, 20000, 800))
    write_predictions(root, "mon-a", drifted, "monitor-a-best", version, later - timedelta(minutes=10), 2)
    mcfg = MonitoringConfig(pushgateway_url=pushgateway, experiment="mon-a", window_hours=1, min_rows=200)
    alert = run_monitoring(cfg, mcfg, "drifted", now=later, store=store)
    assert alert["rows"] == 800 and alert["alert"]["fire"] is True
    reasons = alert["alert"]["reasons"]
    assert reasons[0].startswith(f"drift on monitor-a-best v{version}: PSI ") and "text_length" in reasons[0]
    assert reasons[1] == f"live accuracy of monitor-a-best v{version} 0.000 < floor 0.7 on 800 labelled rows"
    assert client.get_run(alert["mlflow_run_id"]).data.tags["alert"] == "true"

    again = run_monitoring(cfg, mcfg, "drifted-again", now=later, store=store)  # within the cooldown
    assert again["alert"]["fire"] is False and again["alert"]["suppressed_by"] == alert["mlflow_run_id"]

    dead = MonitoringConfig(pushgateway_url="http://127.0.0.1:9", experiment="mon-a", window_hours=1, min_rows=200)
    survived = run_monitoring(cfg, dead, "no-gateway", now=later, store=store)
    assert survived["pushgateway"].startswith("failed: ") and survived["rows"] == 800  # the rest was done


# --- the DAG through the real Airflow CLI ---------------------------------------------------------------


def _airflow(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def _smtp_connection(env: dict[str, str], port: int) -> None:
    _airflow(env, "connections", "delete", "sentiment_smtp")
    extra = {"from_email": "airflow@example.org", "disable_tls": True, "disable_ssl": True, "timeout": 5,
             "retry_limit": 0}  # fmt: skip
    _ok(_airflow(env, "connections", "add", "sentiment_smtp", "--conn-type", "smtp", "--conn-host", "127.0.0.1",
                 "--conn-port", str(port), "--conn-extra", json.dumps(extra)))  # fmt: skip


def _triggered_training_runs(airflow_home: Path) -> list[dict]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute("SELECT conf FROM dag_run WHERE dag_id = 'sentiment_ml_training_pipeline'").fetchall()
    return [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]


def test_dags_test_alert_mail_retraining_and_failure_mail(
    tmp_path: Path,
    sentiment_home: Path,
    mlflow_server: str,
    sample_csv: Path,
    smtp_server: SmtpSink,
    slack_webhook: tuple[str, list[dict]],
) -> None:
    from sentiment_mlops.core.settings import load_settings
    from sentiment_mlops.monitoring.profile import build_vocabulary

    reference = tweets(sample_csv, 0, 3000).assign(prediction=lambda d: d["label"])
    version = register_profiled_model(
        mlflow_server, "monitor-b-best", reference, build_vocabulary(tweets(sample_csv, 3000, 5000)["text"])
    )
    drifted = _drifted(tweets(sample_csv, 30000, 600))
    write_predictions(load_settings("local").bucket_root, "mon-b", drifted, "monitor-b-best", version,
                      _now() - timedelta(minutes=20), 1)  # fmt: skip

    home = tmp_path / "airflow-home"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SENTIMENT_HOME": str(sentiment_home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("SENTIMENT_BUCKET_ROOT", None)
    _ok(_airflow(env, "db", "migrate"))
    variables = {
        "MLFLOW_TRACKING_URI": mlflow_server,
        "GCS_BUCKET": "mon-b",
        "serving_model_name": "monitor-b-best",
        "monitoring_experiment": "mon-b",
        "monitoring_alert_cooldown_hours": "0",  # every run of this test may alert
        "alert_email_to": "oncall@example.org, ml-team@example.org",
    }
    (home / "variables.json").write_text(json.dumps(variables))  # one CLI start (about 8 s each) for all
    _ok(_airflow(env, "variables", "import", str(home / "variables.json")))
    _smtp_connection(env, smtp_server.port)
    slack_url, slack_messages = slack_webhook
    _ok(_airflow(env, "connections", "add", "sentiment_slack", "--conn-type", "slackwebhook",
                 "--conn-password", slack_url))  # fmt: skip

    # 1. Drift: the alert reaches the mailbox and the training DAG is triggered with the reason.
    out = _ok(_airflow(env, "dags", "test", "sentiment_model_monitoring"))
    [(recipients, mail)] = smtp_server.wait_for(1)
    assert sorted(recipients) == ["ml-team@example.org", "oncall@example.org"]
    assert mail["Subject"].startswith(f"[sentiment-mlops] model alert: drift on monitor-b-best v{version}: PSI")
    body = mail.get_payload()[0].get_payload(decode=True).decode()
    assert "live accuracy of monitor-b-best" in body and "Retraining: DAG sentiment_ml_training_pipeline" in body
    [slack] = slack_messages
    assert slack["text"].startswith(f"*[sentiment-mlops] model alert: drift on monitor-b-best v{version}")
    [conf] = _triggered_training_runs(home)
    assert conf["triggered_by"] == "sentiment_model_monitoring" and conf["reason"].startswith("drift on monitor-b-best")
    assert conf["monitoring_report"].endswith(".json"), out[-3000:]

    # 2. A failing run (MLflow unreachable): the failure mail names the DAG and the task.
    _ok(_airflow(env, "variables", "set", "MLFLOW_TRACKING_URI", "http://127.0.0.1:9"))
    failed = _airflow(env, "dags", "test", "sentiment_model_monitoring")
    assert failed.returncode != 0
    messages = smtp_server.wait_for(2)
    assert len(messages) == 2, (failed.stdout + failed.stderr)[-4000:]
    failure = messages[1][1]
    assert failure["Subject"] == "[sentiment-mlops] DAG sentiment_model_monitoring failed"
    failure_body = failure.get_payload()[0].get_payload(decode=True).decode()
    assert "Failed task: measure_model" in failure_body and "MLflow tracking server unreachable" in failure_body
    assert slack_messages[1]["text"].startswith("*[sentiment-mlops] DAG sentiment_model_monitoring failed*")

    # 3. The mail server goes away: the alert cannot be sent, the DAG's work still happens.
    _ok(_airflow(env, "variables", "set", "MLFLOW_TRACKING_URI", mlflow_server))
    _smtp_connection(env, 9)  # nothing listens on port 9
    out = _ok(_airflow(env, "dags", "test", "sentiment_model_monitoring"))
    assert "email notification failed (the work it reports on goes on)" in out
    assert len(_triggered_training_runs(home)) == 2 and len(smtp_server.messages) == 2
    assert len(slack_messages) == 3  # the other channel still carried the alert


# --- the shadow challenger ------------------------------------------------------------------------------


def test_challenger_is_reported_and_promoted_only_when_auto_promotion_is_on(
    sentiment_home: Path, mlflow_server: str, sample_csv: Path, pushgateway: str
) -> None:
    """600 labelled live rows scored by both: the challenger is right on 540, production on 480. Off (the
    default), the report says it would win and nothing moves; on, @production moves to it."""
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.backends.local.store import LocalStore
    from sentiment_mlops.core.settings import load_settings
    from sentiment_mlops.monitoring.profile import build_vocabulary
    from sentiment_mlops.orchestration.config import AirflowConfig
    from sentiment_mlops.orchestration.monitoring_config import MonitoringConfig
    from sentiment_mlops.orchestration.tasks.monitoring import run_monitoring

    name = "monitor-c-best"
    reference = tweets(sample_csv, 0, 2000).assign(prediction=lambda d: d["label"])
    vocabulary = build_vocabulary(reference["text"])
    production = register_profiled_model(mlflow_server, name, reference, vocabulary)
    challenger = register_profiled_model(mlflow_server, name, reference, vocabulary)  # takes @production...
    client = MlflowClient(mlflow_server)
    client.set_registered_model_alias(name, "production", production)  # ...given back; the other is challenger
    client.set_registered_model_alias(name, "challenger", challenger)

    live = tweets(sample_csv, 40000, 600)
    wrong_served = live.index < 120  # production errs on the first 120 rows, the challenger on 60 of those
    live = live.assign(
        prediction=(live["label"] ^ wrong_served).astype(int),
        challenger_prediction=(live["label"] ^ (live.index < 60)).astype("int32"),
        challenger_model_version=challenger,
    )
    now = _now()
    root = load_settings("local").bucket_root
    write_predictions(root, "mon-c", live, name, production, now - timedelta(minutes=30), 1)
    cfg = AirflowConfig(gcs_bucket="mon-c", mlflow_tracking_uri=mlflow_server, serving_model_name=name)
    store = LocalStore(load_settings("local"))
    mcfg = MonitoringConfig(pushgateway_url=pushgateway, experiment="mon-c", min_rows=200, window_hours=2)

    off = run_monitoring(cfg, mcfg, "report-only", now=now, store=store)
    shadow = off["challenger"]
    assert (shadow["alias"], shadow["version"], shadow["promote"], shadow["would_promote"]) == (
        "challenger",
        challenger,
        False,
        True,
    )
    pair = shadow["comparison"]
    assert (pair["rows"], pair["labelled_rows"], pair["agreement"]) == (600, 600, 0.9)
    assert (pair["served_accuracy"], pair["challenger_accuracy"]) == (0.8, 0.9)
    assert shadow["reason"].endswith("monitoring_challenger_auto_promote is off: report only")
    assert client.get_model_version_by_alias(name, "production").version == production
    run = client.get_run(off["mlflow_run_id"])
    assert run.data.metrics["challenger_agreement"] == 0.9 and run.data.metrics["challenger_live_accuracy"] == 0.9
    assert run.data.tags["challenger_promoted"] == "false"
    metrics = urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5).read().decode()
    pair_labels = f'challenger_version="{challenger}",instance="",job="sentiment_model_monitoring"'
    assert f'sentiment_challenger_agreement{{{pair_labels},model_version="{production}"}} 0.9\n' in metrics
    assert (
        f'sentiment_challenger_live_accuracy{{{pair_labels},model_version="{production}",role="challenger"}} 0.9\n'
        in metrics
    )

    # Too few labelled rows for the Variable: no verdict even with auto-promotion on.
    strict = MonitoringConfig(experiment="mon-c", min_rows=200, window_hours=2, challenger_auto_promote=True,
                              challenger_min_labelled_rows=601)  # fmt: skip
    short = run_monitoring(cfg, strict, "too-few", now=now, store=store)
    assert short["challenger"]["promote"] is False and "600 labelled rows < " in short["challenger"]["reason"]
    assert client.get_model_version_by_alias(name, "production").version == production

    on = MonitoringConfig(experiment="mon-c", min_rows=200, window_hours=2, challenger_auto_promote=True,
                          challenger_min_labelled_rows=600)  # fmt: skip
    promoted = run_monitoring(cfg, on, "promote", now=now, store=store)
    assert promoted["challenger"]["promoted"] is True
    assert client.get_model_version_by_alias(name, "production").version == challenger
    assert "challenger" not in client.get_registered_model(name).aliases  # the next challenger is named on purpose
    tags = client.get_model_version(name, challenger).tags
    assert tags["promotion_reason"] == (
        f"challenger v{challenger}: live accuracy 0.9000 > production v{production} (0.8000) (600 labelled rows)"
    )
    assert tags["promoted_by"] == "sentiment_model_monitoring promote"
    assert client.get_run(promoted["mlflow_run_id"]).data.tags["challenger_promoted"] == "true"
    report = json.loads(store.read_bytes(promoted["json_uri"]))
    assert report["challenger"]["decision"]["gate"]["candidate_accuracy"] == 0.9

    # The next hour: the alias is gone, nothing more to decide.
    again = run_monitoring(cfg, on, "after", now=now, store=store)
    assert again["challenger"]["version"] is None and again["challenger"]["promote"] is False
