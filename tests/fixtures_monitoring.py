"""Real peers of the monitoring tests: a local SMTP server (aiosmtpd) that keeps what it receives,
an HTTP endpoint standing in for a Slack incoming webhook (the provider's hook posts to any URL), a
Prometheus Pushgateway (Debian's prometheus-pushgateway), a registered model with a reference
profile, and serving-job-shaped prediction Parquet in the local bucket."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

PUSHGATEWAY = "prometheus-pushgateway"


@dataclass
class SmtpSink:
    """What a real SMTP server received: each message parsed, with its envelope recipients."""

    host: str
    port: int
    messages: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's handler hook
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30) -> list[tuple[list[str], Message]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.messages


@pytest.fixture(name="smtp_server")
def smtp_server_fixture() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    from sentiment_mlops.backends.local.mlflow_server import free_port

    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture(name="slack_webhook")
def slack_webhook_fixture() -> Iterator[tuple[str, list[dict]]]:
    """An HTTP server on 127.0.0.1 answering like Slack's incoming webhook (200 "ok"); yields its
    URL and the JSON payloads posted to it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXXX", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(name="pushgateway")
def pushgateway_fixture(tmp_path: Path) -> Iterator[str]:
    """A real Pushgateway on 127.0.0.1; yields its URL."""
    binary = shutil.which(PUSHGATEWAY)
    if binary is None:
        pytest.skip(f"{PUSHGATEWAY} not installed (scripts/install_test_services.sh installs it)")
    from sentiment_mlops.backends.local.mlflow_server import free_port

    port = free_port()
    log = (tmp_path / "pushgateway.log").open("wb")
    process = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=2).read()
                break
            except OSError as exc:
                if time.monotonic() > deadline or process.poll() is not None:
                    started = (tmp_path / "pushgateway.log").read_text()
                    raise RuntimeError(f"pushgateway did not start: {started}") from exc
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def tweets(sample_csv: Path, skip: int, rows: int) -> pd.DataFrame:
    """`rows` labelled tweets (label 0/1) of the shared sample, starting after `skip` shuffled rows."""
    df = pd.read_csv(sample_csv, header=None, names=["label", "text"], encoding="latin-1")
    df = df.sample(frac=1.0, random_state=7).iloc[skip : skip + rows].reset_index(drop=True)
    df["label"] = (df["label"] > 0).astype(int)
    return df


def register_profiled_model(mlflow_uri: str, name: str, reference: pd.DataFrame, vocabulary: list[str]) -> str:
    """A registered version of `name` (alias production) whose run holds the reference profile of
    `reference` (text, prediction), as training logs it. Returns the version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.monitoring import profile

    client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    exp = client.get_experiment_by_name("monitoring-fixtures")
    experiment_id = exp.experiment_id if exp else client.create_experiment("monitoring-fixtures")
    run = client.create_run(experiment_id, run_name=f"{name}-training")
    mlflow.set_tracking_uri(mlflow_uri)
    profile_dict = profile.reference_profile(reference, vocabulary, model={"run_id": run.info.run_id})
    client.log_dict(run.info.run_id, profile_dict, profile.PROFILE_ARTIFACT)
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except Exception:  # already registered by an earlier test
        pass
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version
    client.set_registered_model_alias(name, "production", version)
    return str(version)


def write_predictions(
    bucket_root: Path, bucket: str, rows: pd.DataFrame, model_name: str, version: str, when: datetime, batch: int
) -> Path:
    """One micro-batch file the way the serving job writes it (`predictions/date=D/part-S-N-0.parquet`)."""
    out = rows.assign(
        id=[f"t{batch}-{i}" for i in range(len(rows))],
        model_name=model_name,
        model_version=version,
        prediction_timestamp=pd.Timestamp(when),
        batch_id=batch,
    )
    folder = bucket_root / f"{bucket}-predictions" / "predictions" / f"date={when:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-20260101000000-abcd1234-{batch:010d}-0.parquet"
    out.to_parquet(path, index=False)
    return path
