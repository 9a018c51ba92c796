"""The monitoring set-up with the real tools: promtool checks the shipped Prometheus config and alert rules
and runs their unit tests; a real Prometheus (Debian's `prometheus`) scrapes a running streaming job (file
drops, `--metrics-port`), a running online server and a real Pushgateway, and every query of the shipped
Grafana dashboard returns data. The stream's Pushgateway is down at first: the stream keeps going, logs
the failure once and counts it, and pushes once the Pushgateway is up."""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from prometheus_client.parser import text_string_to_metric_families

from sentiment_mlops import jobs
from sentiment_mlops.backends.local.mlflow_server import free_port
from sentiment_mlops.core.storage import local_path
from sentiment_mlops.orchestration.tasks import monitoring as monitoring_tasks
from sentiment_mlops.serving import job as serving_job
from sentiment_mlops.serving import prometheus_metrics
from tests.fixtures_serving import SERVING_MODEL as MODEL
from tests.fixtures_serving import served_version_fixture  # noqa: F401
from tests.integration.test_online_server import ServerProcess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "monitoring" / "prometheus"
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "sentiment-dashboard.json"
TOOLS = {name: shutil.which(name) for name in ("prometheus", "promtool", "prometheus-pushgateway")}


def _need(*names: str) -> None:
    missing = [n for n in names if not TOOLS[n]]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian packages prometheus, prometheus-pushgateway; "
                    "scripts/install_test_services.sh installs them)")  # fmt: skip


def _promtool(*args: str, cwd: Path = PROM_DIR) -> subprocess.CompletedProcess[str]:
    _need("promtool")
    return subprocess.run(
        [TOOLS["promtool"] or "promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_promtool_checks_the_config_and_rules() -> None:
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 11 rules found" in rules.stdout


def test_every_alert_has_a_passing_unit_test() -> None:
    tests = sorted(str(p.relative_to(PROM_DIR)) for p in (PROM_DIR / "tests").glob("*.yml"))
    result = _promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {r["alert"] for g in yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    tested = {
        case["alertname"]
        for path in tests
        for t in yaml.safe_load((PROM_DIR / path).read_text())["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")  # a test that expects the alert to fire, not only silence
    }
    assert alerts == tested


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel of the shipped dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels if p.get("type") != "row" for t in p.get("targets", [])]


def test_the_dashboard_is_provisioned_against_the_prometheus_data_source() -> None:
    source = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p.get("type") != "row"]
    assert panels and all(p["datasource"]["uid"] == uid and p["targets"] for p in panels)
    compose = yaml.safe_load((ROOT / "airflow/docker-compose.yml").read_text())["services"]
    for name, port in (("prometheus", 9090), ("grafana", 3000), ("pushgateway", 9091)):
        assert compose[name]["ports"] == [f"${{SENTIMENT_BIND_ADDRESS:-127.0.0.1}}:{port}:{port}"]


# --- the live stack ---------------------------------------------------------------------------------


class Service:
    """A binary on 127.0.0.1:port, logging to a file; ready when GET /-/ready answers 200."""

    def __init__(self, argv: list[str], port: int, log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.argv = argv
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Service:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=log)
        _wait(lambda: _ok(f"{self.url}/-/ready"), timeout, f"{self.argv[0]} ready", self.log_path)
        return self

    def stop(self) -> None:
        """SIGTERM (both flush and exit at once), SIGKILL if that takes over 20 s."""
        if not self.process or self.process.poll() is not None:
            return
        for signal_it, seconds in ((self.process.terminate, 20), (self.process.kill, 10)):
            signal_it()
            try:
                self.process.wait(timeout=seconds)
                return
            except subprocess.TimeoutExpired:
                continue


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _wait(condition: Callable[[], Any], timeout: float, what: str, log_path: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A /metrics page as {(sample name, sorted labels): value}."""
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, tuple(sorted(labels.items()))))


def _drop(folder: Path, name: str, rows: list[tuple[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    tmp.write_text("id,text\n" + "\n".join(f'{i},"{t}"' for i, t in rows) + "\n")
    tmp.rename(folder / name)


def _prometheus_config(tmp: Path, targets: dict[str, str]) -> Path:
    """The shipped prometheus.yml with this test's targets, a 1 s scrape and the shipped alert rules."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROM_DIR / "alerts.yml")]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    _need("prometheus", "prometheus-pushgateway")
    ports = {name: free_port() for name in ("prometheus", "pushgateway", "stream")}
    made: list[Service] = []
    yield {"ports": ports, "tmp": tmp_path, "services": made}
    for service in reversed(made):
        service.stop()


@pytest.mark.timeout(900)
def test_prometheus_scrapes_the_stream_and_online_server_and_every_panel_has_data(
    spark, mlflow_server: str, served_version: str, stack: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    ports, tmp, services = stack["ports"], stack["tmp"], stack["services"]
    pushgateway_url = f"http://127.0.0.1:{ports['pushgateway']}"
    online_env = {"MODEL_URI": f"models:/{MODEL}@production", "MLFLOW_TRACKING_URI": mlflow_server}
    online = ServerProcess(online_env, tmp / "online.log")
    config = _prometheus_config(
        tmp,
        {
            "sentiment-online": f"127.0.0.1:{online.port}",
            "sentiment-stream": f"127.0.0.1:{ports['stream']}",
            "pushgateway": f"127.0.0.1:{ports['pushgateway']}",
        },
    )
    prometheus = Service(
        [
            TOOLS["prometheus"] or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        ],
        ports["prometheus"],
        tmp / "prometheus.log",
    )
    pushgateway = Service(
        [
            TOOLS["prometheus-pushgateway"] or "prometheus-pushgateway",
            f"--web.listen-address=127.0.0.1:{ports['pushgateway']}",
        ],
        ports["pushgateway"],
        tmp / "pushgateway.log",
    )
    tag = "promstack"
    paths = jobs.serving_paths(tag)
    args = serving_job.build_arg_parser().parse_args(
        [
            "--input-path", paths["input"], "--output-path", paths["output"], "--checkpoint", f"gs://{tag}-ckpt/serving",
            "--mlflow-uri", mlflow_server, "--model-name", MODEL, "--batch-interval-seconds", "1",
            "--reload-interval-seconds", "5", "--metrics-port", str(ports["stream"]),
            "--pushgateway-url", pushgateway_url,
        ]
    )  # fmt: skip
    serving_job.validate_args(args)
    inbox = local_path(f"gs://{tag}-streaming-input")
    stream_metrics = f"http://127.0.0.1:{ports['stream']}/metrics"
    failure: list[BaseException] = []

    def run_stream() -> None:
        try:
            serving_job.run(spark, args)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failure.append(exc)

    services.append(online)  # type: ignore[arg-type]  # stop() like the others
    online.wait_for(lambda r: r.status_code == 200)
    services.append(prometheus.start())
    stream = threading.Thread(target=run_stream, name="serving-job", daemon=True)
    caplog.set_level(logging.INFO, logger=prometheus_metrics.__name__)
    stream.start()
    try:
        # 1. the endpoint is up once the job runs; the Pushgateway is not: batches go on regardless
        _wait(lambda: failure or _ok(stream_metrics), 180, "the stream's metrics endpoint")
        assert not failure, failure
        _drop(
            inbox, "one.csv", [("a1", "I love this, best day ever"), ("a2", "I hate this, awful and sad"), ("a3", "")]
        )
        _wait(lambda: _value(_samples(stream_metrics), "sentiment_stream_batches_total") == 1, 120, "batch 1")
        _drop(inbox, "two.csv", [("b1", "what a wonderful morning"), ("b2", "worst service ever, so angry")])
        _wait(lambda: _value(_samples(stream_metrics), "sentiment_stream_batches_total") == 2, 120, "batch 2")
        m = _samples(stream_metrics)
        assert _value(m, "sentiment_stream_rows_in_total") == 5
        assert _value(m, "sentiment_stream_rows_predicted_total") == 4
        assert _value(m, "sentiment_stream_rows_quarantined_total", reason="empty text") == 1
        by_class = [_value(m, "sentiment_stream_predictions_total", sentiment=c) for c in ("positive", "negative")]
        assert sum(v or 0 for v in by_class) == 4 and all(by_class), by_class
        assert _value(m, "sentiment_stream_model_version", name=MODEL, alias="production") == float(served_version)
        assert _value(m, "sentiment_stream_commit_latency_seconds_count") == 2
        _wait(lambda: _value(_samples(stream_metrics), "sentiment_stream_backlog", unit="files") == 0, 30, "no backlog")
        _wait(lambda: (_value(_samples(stream_metrics), "sentiment_stream_pushgateway_failures_total") or 0) >= 2, 30,
              "two failed pushes")  # fmt: skip
        warnings = [r for r in caplog.records if "cannot push metrics to the Pushgateway" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]

        # 2. the Pushgateway comes up: the next batch's push lands there
        services.append(pushgateway.start())
        _drop(inbox, "three.csv", [("c1", "so happy for you"), ("c2", "")])
        _wait(lambda: _value(_samples(stream_metrics), "sentiment_stream_batches_total") == 3, 120, "batch 3")

        def pushed_rows() -> float | None:
            for (name, labels), value in _samples(f"{pushgateway_url}/metrics").items():
                if name == "sentiment_stream_rows_in_total" and dict(labels).get("job") == "sentiment-stream":
                    return value
            return None

        _wait(lambda: pushed_rows() == 7, 30, "the stream's counts on the Pushgateway")
        assert any("again" in r.getMessage() for r in caplog.records if r.name == prometheus_metrics.__name__)

        # 3. what the monitoring DAG pushes (agreed names), and traffic on the online server
        quality = CollectorRegistry()
        psi = Gauge("sentiment_drift_psi", "PSI against the reference profile", ["feature"], registry=quality)
        accuracy = Gauge("sentiment_live_accuracy", "Accuracy on labelled rows", ["model_version"], registry=quality)
        psi.labels("text_length").set(0.04)
        accuracy.labels(served_version).set(0.8)
        comparison = {"served_version": served_version, "challenger_version": "99", "agreement": 0.9,
                      "labelled_rows": 40, "served_accuracy": 0.8, "challenger_accuracy": 0.85}  # fmt: skip
        monitoring_tasks.challenger_gauges(quality, {"comparisons": [comparison]})
        push_to_gateway(pushgateway_url, job="sentiment-monitoring", registry=quality)
        for i in range(12):
            text = "i love it" if i % 2 else "i hate it"
            assert online.client.post("/predict", json={"text": text}).status_code == 200
            time.sleep(0.3)
        _drop(inbox, "four.csv", [("d1", "lovely"), ("d2", "terrible")])
        _wait(lambda: _value(_samples(stream_metrics), "sentiment_stream_batches_total") == 4, 120, "batch 4")

        # 4. every target is up and every dashboard query returns a number
        api = f"{prometheus.url}/api/v1"

        def all_up() -> bool:
            active = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
            return len(active) == 3 and all(t["health"] == "up" for t in active)

        _wait(all_up, 60, "all three targets up", tmp / "prometheus.log")

        def empty_queries() -> list[str]:
            empty = []
            for title, expr in dashboard_queries():
                body = httpx.get(f"{api}/query", params={"query": expr}, timeout=10).json()
                assert body["status"] == "success", (title, expr, body)
                values = [float(r["value"][1]) for r in body["data"]["result"]]
                if not [v for v in values if not math.isnan(v)]:
                    empty.append(f"{title}: {expr}")
            return empty

        left: list[str] = []

        def settled() -> bool:
            left[:] = empty_queries()
            return not left

        try:
            _wait(settled, 90, "every panel query to return data")
        except AssertionError:
            raise AssertionError("panels without data:\n" + "\n".join(left)) from None
        rules = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
        assert sum(len(g["rules"]) for g in rules) == 11  # every rule of alerts.yml loaded
        assert stream.is_alive() and not failure
    finally:
        for query in spark.streams.active:
            if query.name == "sentiment-serving-file":
                query.stop()
        stream.join(timeout=60)
    assert not stream.is_alive() and not failure, failure
    assert not _ok(stream_metrics)  # the endpoint closes with the job
