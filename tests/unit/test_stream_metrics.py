"""The streaming job's Prometheus settings and exporter parts that need no Spark: flags from the job spec
and the Airflow Variables, counting, bounded labels, and a Pushgateway that is not there."""

from __future__ import annotations

import logging
import socket
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from sentiment_mlops import jobs
from sentiment_mlops.core.errors import ConfigError
from sentiment_mlops.orchestration.config import AirflowConfig, load_airflow_config
from sentiment_mlops.orchestration.tasks.serving import build_serving_job
from sentiment_mlops.registry.model_watcher import ModelWatcher
from sentiment_mlops.serving import job as serving_job
from sentiment_mlops.serving import prometheus_metrics as pm

REQUIRED = {
    "source_type": "file",
    "input_path": "gs://b-streaming-input/",
    "output_path": "gs://b-predictions/",
    "checkpoint": "gs://b-ckpt/serving",
    "mlflow_uri": "http://mlflow:5000",
    "model_name": "m",
}


def _parse(args: list[str]):  # type: ignore[no-untyped-def]
    return serving_job.build_arg_parser().parse_args(args)


def test_metrics_flags_are_off_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (pm.ENV_PORT, pm.ENV_PUSHGATEWAY, pm.ENV_HOST):
        monkeypatch.delenv(var, raising=False)
    args = jobs.serving_args(**REQUIRED)
    assert not [a for a in args if a.startswith(("--metrics-port", "--metrics-host", "--pushgateway"))]
    ns = _parse(args)
    assert ns.metrics_port is None and ns.pushgateway_url is None and ns.metrics_host == "127.0.0.1"


def test_metrics_flags_reach_the_job() -> None:
    args = jobs.serving_args(
        **REQUIRED, metrics_port=9108, metrics_host="0.0.0.0", pushgateway_url="http://pgw.internal:9091"
    )
    ns = _parse(args)
    assert (ns.metrics_port, ns.metrics_host, ns.pushgateway_url) == (9108, "0.0.0.0", "http://pgw.internal:9091")


def test_metrics_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pm.ENV_PORT, "9200")
    monkeypatch.setenv(pm.ENV_PUSHGATEWAY, "http://127.0.0.1:9091")
    ns = _parse(jobs.serving_args(**REQUIRED))
    assert ns.metrics_port == 9200 and ns.pushgateway_url == "http://127.0.0.1:9091"


@pytest.mark.parametrize(
    "overrides, message",
    [({"metrics_port": 70000}, "metrics_port"), ({"pushgateway_url": "pgw:9091"}, "pushgateway_url")],
)
def test_bad_metrics_settings_fail_in_the_spec(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jobs.serving_args(**REQUIRED, **overrides)


def test_variables_reach_the_serving_job_spec() -> None:
    cfg = load_airflow_config(
        {
            "serving_metrics_port": "9108",
            "serving_metrics_host": "0.0.0.0",
            "serving_pushgateway_url": "http://10.1.2.3:9091",
        }
    )
    job = build_serving_job(cfg, "t1")
    ns = _parse(job["pyspark_job"]["args"])
    assert (ns.metrics_port, ns.metrics_host, ns.pushgateway_url) == (9108, "0.0.0.0", "http://10.1.2.3:9091")
    plain = _parse(build_serving_job(AirflowConfig(), "t2")["pyspark_job"]["args"])
    assert plain.metrics_port is None and plain.pushgateway_url is None


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"serving_metrics_port": "http"}, "serving_metrics_port='http'"),
        ({"serving_metrics_port": "99999"}, "serving_metrics_port='99999'"),
        ({"serving_pushgateway_url": "pushgateway:9091"}, "serving_pushgateway_url='pushgateway:9091'"),
    ],
)
def test_bad_metrics_variables_are_named(variables: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_airflow_config(variables)


def _metrics() -> pm.StreamMetrics:
    watcher: ModelWatcher[object] = ModelWatcher("http://127.0.0.1:1", "m", "Production", loader=lambda uri: object())
    return pm.StreamMetrics(watcher, "file")


def _value(metrics: pm.StreamMetrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


def test_a_batch_is_counted_with_classes_and_reasons() -> None:
    m = _metrics()
    stats = SimpleNamespace(
        batch_id=3, rows_in=10, predicted=7, quarantined=3, seconds=1.5, latency_s_avg=2.0, latency_s_max=4.0
    )
    m.observe_batch(stats, {1: 4, 0: 3}, {"empty text": 2, "unparseable JSON: malformed, not an object": 1})
    assert _value(m, "sentiment_stream_rows_in_total") == 10
    assert _value(m, "sentiment_stream_rows_predicted_total") == 7
    assert _value(m, "sentiment_stream_predictions_total", {"sentiment": "positive"}) == 4
    assert _value(m, "sentiment_stream_predictions_total", {"sentiment": "negative"}) == 3
    assert _value(m, "sentiment_stream_rows_quarantined_total", {"reason": "empty text"}) == 2
    assert _value(m, "sentiment_stream_rows_quarantined_total", {"reason": "unparseable json"}) == 1
    assert _value(m, "sentiment_stream_commit_latency_seconds_count") == 1
    assert _value(m, "sentiment_stream_commit_latency_seconds_bucket", {"le": "5.0"}) == 1
    assert _value(m, "sentiment_stream_commit_latency_seconds_bucket", {"le": "2.0"}) == 0
    assert _value(m, "sentiment_stream_last_batch_id") == 3
    # no model loaded yet: version 0, no info series
    text = generate_latest(m.registry).decode()
    assert 'sentiment_stream_model_version{alias="production",name="m"} 0.0' in text
    assert "sentiment_stream_model_info" not in text


def test_quarantine_reasons_stay_a_bounded_label_set() -> None:
    m = _metrics()
    stats = SimpleNamespace(
        batch_id=0, rows_in=50, predicted=0, quarantined=50, seconds=1, latency_s_avg=None, latency_s_max=None
    )
    m.observe_batch(stats, {}, {f"reason {i}": 1 for i in range(pm.MAX_REASONS + 30)})
    reasons = {
        s.labels["reason"]
        for family in m.registry.collect()
        if family.name == "sentiment_stream_rows_quarantined"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert len(reasons) == pm.MAX_REASONS + 1 and "other" in reasons
    assert _value(m, "sentiment_stream_rows_quarantined_total", {"reason": "other"}) == 30
    assert pm.reason_label("x" * 500) == "x" * pm.REASON_CHARS


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens: connection refused


def test_an_unreachable_pushgateway_is_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    m = _metrics()
    pusher = pm.Pusher(_dead_url(), m.registry, m.push_failures, {"instance": "t"})
    with caplog.at_level(logging.WARNING, logger=pm.__name__):
        assert [pusher.push_once() for _ in range(3)] == [False, False, False]
    assert _value(m, "sentiment_stream_pushgateway_failures_total") == 3
    assert len([r for r in caplog.records if "Pushgateway" in r.getMessage()]) == 1
