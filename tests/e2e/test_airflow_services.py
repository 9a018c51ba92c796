"""The users' main interface end to end: the real Airflow services (airflow/start_services.sh:
api-server, scheduler, dag-processor, triggerer, with MLflow), DAG runs triggered through the REST
API with the conf the UI's trigger form sends, and the trigger form itself in headless Chromium.

Run alone with `./run_tests.sh -m e2e` (about 5 minutes on a quiet 2-core machine). Screenshots of the
form and of the grid go to $SENTIMENT_E2E_SCREENSHOTS (the README's come from there) or the test's
temporary folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.airflow_api import AirflowApi
from tests.e2e.browser import missing_browser, start_chromium

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "sentiment-mlops"  # the default GCS_BUCKET Variable of airflow/setup_local.sh
DAGS = ("sentiment_training_local", "sentiment_model_serving", "sentiment_serving_management")

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(2400)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Services:
    env: dict[str, str]
    home: Path
    airflow_url: str
    mlflow_url: str
    api: AirflowApi

    def airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["airflow", *args], env=self.env, capture_output=True, text=True, timeout=300, check=False
        )

    @property
    def buckets(self) -> Path:
        return self.home / "buckets"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp("e2e_home")
    ports = {
        name: _free_port()
        for name in ("AIRFLOW_PORT", "AIRFLOW_WORKER_LOG_PORT", "AIRFLOW_TRIGGERER_LOG_PORT", "MLFLOW_PORT")
    }
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "SENTIMENT_"))},
        **{k: str(v) for k, v in ports.items()},
        "SENTIMENT_HOME": str(home),
        "SENTIMENT_VENV_BIN": venv_bin,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "SKIP_KAFKA": "1",  # the file source; the Kafka path has its own tests
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    env["AIRFLOW_HOME"] = str(home / "airflow")
    started = subprocess.run(
        ["bash", str(ROOT / "airflow" / "start_services.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    try:
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        passwords = json.loads((home / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        url = f"http://127.0.0.1:{ports['AIRFLOW_PORT']}"
        yield Services(
            env, home, url, f"http://127.0.0.1:{ports['MLFLOW_PORT']}", AirflowApi(url, "admin", passwords["admin"])
        )
    finally:
        stopped = subprocess.run(
            ["bash", str(ROOT / "airflow" / "stop_services.sh"), "--jobs"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        # Nothing may outlive the test: every port the services held is free again.
        assert stopped.returncode == 0 and "are free" in stopped.stdout, stopped.stdout[-3000:] + stopped.stderr[-3000:]


def _screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SENTIMENT_E2E_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _trigger_serving_in_the_browser(services: Services, profile: Path, shots: Path) -> str:
    """Log in, open sentiment_model_serving, fill the trigger form (deploy_mode=test, model_stage
    production), trigger, and watch the run reach Success on its page; returns the run id."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = start_chromium(profile)
    try:
        wait = WebDriverWait(driver, 120)
        base = services.airflow_url
        driver.get(f"{base}/auth/login")
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(services.api.username)
        driver.find_element(By.NAME, "password").send_keys(services.api.password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(ec.url_to_be(f"{base}/"))

        driver.get(f"{base}/dags/sentiment_model_serving")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))).click()
        wait.until(ec.element_to_be_clickable((By.NAME, "element_model_stage"))).send_keys("production")
        # An enum Param renders as a combobox whose chosen value lands in a hidden input of the same field.
        hidden = driver.find_element(By.NAME, "element_deploy_mode")
        field = hidden.find_element(By.XPATH, "./ancestor::div[.//input[@role='combobox']][1]")
        field.find_element(By.CSS_SELECTOR, "input[role=combobox]").click()
        options = wait.until(lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text.strip()])
        assert [o.text.strip() for o in options] == ["null", "test", "production"]  # the enum, as declared
        next(o for o in options if o.text.strip() == "test").click()
        assert hidden.get_attribute("value") == "test"
        driver.save_screenshot(str(shots / "airflow-trigger-form.png"))

        trigger = [b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Trigger"][-1]
        driver.execute_script("arguments[0].scrollIntoView()", trigger)
        trigger.click()
        wait.until(ec.url_contains("/runs/"))
        run_id = driver.current_url.rsplit("/runs/", 1)[1].split("?")[0]
        from urllib.parse import unquote

        run_id = unquote(run_id)
        deadline = time.monotonic() + 600
        while not driver.find_elements(By.XPATH, "//*[normalize-space(text())='Success']"):
            assert time.monotonic() < deadline, (
                f"the run page never showed Success: {services.api.task_states('sentiment_model_serving', run_id)}"
            )
            assert not driver.find_elements(By.XPATH, "//*[normalize-space(text())='Failed']"), (
                "the run failed in the UI"
            )
            time.sleep(5)
            driver.refresh()
        driver.get(f"{base}/dags/sentiment_model_serving")
        wait.until(ec.presence_of_element_located((By.XPATH, "//*[normalize-space(text())='notify']")))
        time.sleep(2)  # the grid's bars render after the task list
        driver.save_screenshot(str(shots / "airflow-grid.png"))
        return run_id
    finally:
        driver.quit()


def test_airflow_services_rest_and_browser_end_to_end(services: Services, sample_csv: Path, tmp_path: Path) -> None:
    import pandas as pd
    from mlflow.tracking import MlflowClient

    api = services.api
    for dag_id in DAGS:
        dag = api.wait_for_dag(dag_id, timeout=300)
        assert not dag.get("has_import_errors")

    # 1. Training (local DAG) on a small sample, the conf its trigger form sends.
    conf = {"input_path": str(sample_csv), "max_rows": 3000, "models": "lr", "force_promote": True}
    run_id = api.trigger("sentiment_training_local", conf)
    assert api.wait_for_run("sentiment_training_local", run_id, timeout=1200) == "success", api.task_states(
        "sentiment_training_local", run_id
    )
    client = MlflowClient(tracking_uri=services.mlflow_url, registry_uri=services.mlflow_url)
    best = client.get_model_version_by_alias("twitter-sentiment-model-best", "production")
    assert client.get_run(best.run_id).data.params  # a real run with its parameters behind the alias

    # A faster trigger than the 30 s default, the way users change settings.
    assert services.airflow("variables", "set", "serving_batch_interval", "5").returncode == 0

    # 2. The trigger form in a real browser: serving in test mode validates and submits nothing.
    shots = _screenshots(tmp_path)
    if (why := missing_browser()) is None:
        ui_run = _trigger_serving_in_the_browser(services, tmp_path / "chromium-profile", shots)
        ui_conf = next(r for r in api.runs("sentiment_model_serving") if r["dag_run_id"] == ui_run)["conf"]
        assert ui_conf["deploy_mode"] == "test" and ui_conf["model_stage"] == "production"
        assert api.run_state("sentiment_model_serving", ui_run) == "success"
        assert "test mode" in api.xcom("sentiment_model_serving", ui_run, "notify").lower()
        assert (shots / "airflow-trigger-form.png").stat().st_size > 10_000
        assert (shots / "airflow-grid.png").stat().st_size > 10_000
    else:
        print(f"browser part skipped: {why}")

    # 3. Serving in production mode through the REST API; the reference's test file dropped at the
    # bucket ROOT (gsutil cp test_input.csv gs://BUCKET-streaming-input/batch_....csv) is scored.
    run_id = api.trigger("sentiment_model_serving", {"deploy_mode": "production", "source_type": "file"})
    drop = services.buckets / f"{BUCKET}-streaming-input"
    drop.mkdir(parents=True, exist_ok=True)
    (drop / "batch_20261130_120000.csv").write_text("text,label\nI love this product!,\nThis is terrible,\nNot bad\n")
    assert api.wait_for_run("sentiment_model_serving", run_id, timeout=900) == "success", api.task_states(
        "sentiment_model_serving", run_id
    )
    predictions_dir = services.buckets / f"{BUCKET}-predictions" / "predictions"
    deadline = time.monotonic() + 300
    while not (parts := sorted(predictions_dir.glob("date=*/part-*.parquet"))):
        assert time.monotonic() < deadline, "no prediction written under predictions/date=*/"
        time.sleep(2)
    scored = pd.concat([pd.read_parquet(p) for p in parts])
    assert sorted(scored["text"]) == ["I love this product!", "Not bad", "This is terrible"]
    assert set(scored["prediction"]) <= {0.0, 1.0}

    # 4. Management: report, then stop every serving job.
    run_id = api.trigger("sentiment_serving_management", {"stop_all": True})
    assert api.wait_for_run("sentiment_serving_management", run_id, timeout=600) == "success"
    stopped: list[dict[str, Any]] = api.xcom("sentiment_serving_management", run_id, "stop_serving_job")
    assert len(stopped) == 1
    records = [json.loads(p.read_text()) for p in (services.home / "run" / "jobs").glob("sentiment-serving-*.json")]
    assert [r["state"] for r in records] == ["CANCELLED"]
