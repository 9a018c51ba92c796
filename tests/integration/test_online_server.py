"""The online server as users run it: `python -m sentiment_mlops.online.server` in a subprocess,
against the real MLflow server, with real models registered as versions of one name.

Versions of the test model: LR, RF and LinearSVC (trained once per session by
tests/test_spark_free_model.trained_models); each test points the alias at the version it needs.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from sentiment_mlops.backends.local.mlflow_server import free_port
from sentiment_mlops.online.model import load_model
from tests.integration.test_spark_free_model import TrainedModels, trained_models

pytestmark = pytest.mark.integration

ALIAS = "production"
MAX_BATCH = 50
MAX_TEXT_CHARS = 2000


class ServerProcess:
    """One `python -m sentiment_mlops.online.server` on a free loopback port."""

    def __init__(self, env: dict[str, str | None], log_path: Path, cwd: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        merged: dict[str, str | None] = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            **env,
        }
        full_env = {k: v for k, v in merged.items() if v is not None}  # None: unset it
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sentiment_mlops.online.server"],
                env=full_env,
                stdout=log,
                stderr=log,
                cwd=cwd,
            )
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def wait_for(self, ready: Callable[[httpx.Response], bool], timeout: float = 120.0) -> httpx.Response:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                resp = self.client.get("/health")
                if ready(resp):
                    return resp
                last = resp.text
            except httpx.TransportError as exc:
                last = exc
            time.sleep(0.3)
        raise AssertionError(f"server not ready within {timeout}s (last: {last}):\n{self.log_tail()}")

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def trained(spark, mlflow_server: str, sample_csv: Path) -> TrainedModels:  # type: ignore[no-untyped-def]
    return trained_models(spark, mlflow_server, sample_csv)


class Registered:
    def __init__(self, client: MlflowClient, name: str, versions: dict[str, str], trained: TrainedModels) -> None:
        self.client = client
        self.name = name
        self.versions = versions  # model key -> registry version
        self.trained = trained

    def point(self, version: str, alias: str = ALIAS) -> None:
        self.client.set_registered_model_alias(self.name, alias, version)


@pytest.fixture(scope="module")
def registered(trained: TrainedModels, mlflow_server: str) -> Registered:
    import mlflow

    client = MlflowClient(mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    name = f"online-test-{uuid.uuid4().hex[:8]}"  # other tests share this MLflow server
    versions = {}
    for key in ("logisticregression", "randomforest", "linearsvc"):
        mv = mlflow.register_model(trained.runs_uri(key), name, await_registration_for=60)
        versions[key] = str(mv.version)
    reg = Registered(client, name, versions, trained)
    reg.point(versions["logisticregression"])
    return reg


@pytest.fixture(scope="module")
def server(
    registered: Registered, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        {
            "MODEL_URI": f"models:/{registered.name}@{ALIAS}",
            "MLFLOW_TRACKING_URI": mlflow_server,
            "RELOAD_INTERVAL_SECONDS": "2",
            "MAX_BATCH": str(MAX_BATCH),
            "MAX_TEXT_CHARS": str(MAX_TEXT_CHARS),
        },
        tmp_path_factory.mktemp("online") / "server.log",
    )
    try:
        proc.wait_for(lambda r: r.status_code == 200)
        yield proc
    finally:
        proc.stop()


def serve(server: ServerProcess, registered: Registered, key: str) -> str:
    """Point the alias at a model's version and make the server load it now."""
    version = registered.versions[key]
    registered.point(version)
    resp = server.client.post("/reload")
    assert resp.status_code == 200, resp.text
    assert resp.json()["serving_version"] == version, resp.json()
    return version


def split_body(texts: list[Any]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}


# --------------------------------------------------------------------------------------------


def test_health_and_info(server: ServerProcess, registered: Registered) -> None:
    version = serve(server, registered, "logisticregression")
    health = server.client.get("/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "healthy",
        "model_name": registered.name,
        "model_uri": f"models:/{registered.name}@{ALIAS}",
        "model_version": version,
    }
    assert server.client.get("/ping").status_code == 200
    info = server.client.get("/info").json()
    assert info["name"] == registered.name and info["version"] == version and info["alias"] == ALIAS
    assert info["run_id"] == registered.trained.run_ids["logisticregression"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", info["loaded_at"])
    assert info["model_type"] == "LogisticRegression" and info["has_probability"] is True
    assert info["max_batch"] == MAX_BATCH
    # The reference server's shape: `jq '.metadata.version'` works.
    assert info["status"] == "loaded" and info["model_name"] == registered.name
    assert info["metadata"]["version"] == version and info["metadata"]["status"] == "READY"


def test_predict_and_invocations_agree_with_the_model(server: ServerProcess, registered: Registered) -> None:
    version = serve(server, registered, "logisticregression")
    local = load_model(registered.trained.runs_uri("logisticregression"), registered.trained.tracking_uri)
    texts = [t for t in registered.trained.texts if isinstance(t, str)][:40]
    expected = [
        {
            "label": p.label,
            "sentiment": p.sentiment,
            "probability": p.probability,
            "confidence": p.probability if p.label == 1 else 1.0 - p.probability,
        }
        for p in local.predict(texts)
    ]

    one = server.client.post("/predict", json={"text": texts[0]})
    assert one.status_code == 200 and one.headers["X-Model-Version"] == version
    assert one.json() == {**expected[0], "model_name": registered.name, "model_version": version}
    assert one.json()["confidence"] >= 0.5

    bodies = [
        split_body(texts),
        {"dataframe_split": {"columns": ["id", "text"], "data": [[i, t] for i, t in enumerate(texts)]}},
        {"dataframe_records": [{"text": t} for t in texts]},
        {"instances": texts},
        {"instances": [{"text": t} for t in texts]},
        {"inputs": texts},
        {"inputs": {"text": texts}},
    ]
    for body in bodies:
        resp = server.client.post("/invocations", json=body)
        assert resp.status_code == 200, (body.keys(), resp.text)
        assert resp.headers["X-Model-Version"] == version
        assert resp.json() == {
            "predictions": [e["sentiment"] for e in expected],  # MLflow's shape: one label per text
            "details": expected,
            "model_version": version,
        }, body.keys()
    sentiments = {p["sentiment"] for p in expected}
    assert sentiments <= {"positive", "negative"}


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/predict", b"{not json", 400, "not valid JSON"),
        ("/predict", b"", 400, "empty body"),
        ("/predict", b"[1, 2]", 422, "JSON object"),
        ("/predict", b"{}", 422, 'missing field "text"'),
        ("/predict", b'{"text": null}', 422, "text must be a string, got null"),
        ("/predict", b'{"text": 42}', 422, "text must be a string, got number"),
        ("/predict", b'{"text": ["a"]}', 422, "text must be a string, got array"),
        ("/predict", ('{"text": "' + "x" * (MAX_TEXT_CHARS + 1) + '"}').encode(), 413, "MAX_TEXT_CHARS"),
        ("/invocations", b'"hello"', 422, "JSON object"),
        ("/invocations", b'{"text": "hello"}', 422, "exactly one of"),
        ("/invocations", b'{"instances": ["a"], "inputs": ["b"]}', 422, "exactly one of"),
        ("/invocations", b'{"instances": "hello"}', 422, "instances must be a list"),
        ("/invocations", b'{"instances": []}', 422, "batch is empty"),
        ("/invocations", b'{"instances": ["ok", 3]}', 422, "instances[1] must be a string, got number"),
        ("/invocations", b'{"instances": [{"txt": "a"}]}', 422, "instances[0] has no 'text' field"),
        ("/invocations", b'{"dataframe_split": {"columns": ["body"], "data": [["a"]]}}', 422, "contains 'text'"),
        ("/invocations", b'{"dataframe_split": {"columns": ["text"], "data": [["a", "b"]]}}', 422, "data[0]"),
        ("/invocations", b'{"dataframe_split": {"columns": ["text"], "data": [[null]]}}', 422, "got null"),
        ("/invocations", b'{"dataframe_records": [{"text": true}]}', 422, "got boolean"),
        ("/invocations", ('{"instances": [' + ",".join(['"a"'] * (MAX_BATCH + 1)) + "]}").encode(), 413, "MAX_BATCH"),
        ("/predict", b'{"text": ""}', 422, "text is empty"),
        ("/predict", b'{"text": " \\t\\n "}', 422, "text is whitespace only"),
        ("/invocations", b'{"instances": ["fine", "   "]}', 422, "text 1 is whitespace only"),
        ("/predict", b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        ("/predict", b'{"text": "a", "n": ' + b"9" * 5000 + b"}", 400, "digits"),
        ("/invocations", b'{"instances": [' + b"1" * 4301 + b"]}", 400, "digits"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(
    server: ServerProcess, path: str, body: bytes, status: int, message: str
) -> None:
    resp = server.client.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    assert message in resp.json()["detail"]


def test_other_bad_requests(server: ServerProcess) -> None:
    csv_body = server.client.post("/invocations", content=b"text\nhello\n", headers={"content-type": "text/csv"})
    assert csv_body.status_code == 415 and "application/json" in csv_body.json()["detail"]
    assert server.client.get("/predict").status_code == 405
    assert server.client.get("/no-such-page").status_code == 404
    assert server.client.post("/reload?retry_rejected=maybe").status_code == 422
    assert server.client.get("/health").status_code == 200  # still up after all of the above


def test_hot_swap_under_load(server: ServerProcess, registered: Registered) -> None:
    """Requests keep flowing while the alias moves: no errors, and once /reload has returned every
    new request is answered by the new version."""
    old = serve(server, registered, "logisticregression")
    # LinearSVC, not RandomForest: a forest fit on the small test sample falls below the swap check's
    # accuracy floor on clear tweets and is (rightly) refused.
    new = registered.versions["linearsvc"]
    texts = [t for t in registered.trained.texts if isinstance(t, str)][:20]
    stop = threading.Event()
    results: list[list[tuple[float, int, str | None]]] = [[] for _ in range(4)]

    def hammer(slot: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            i = 0
            while not stop.is_set():
                started = time.monotonic()
                if slot % 2:
                    resp = client.post("/predict", json={"text": texts[i % len(texts)]})
                else:
                    resp = client.post("/invocations", json={"instances": texts})
                results[slot].append((started, resp.status_code, resp.headers.get("X-Model-Version")))
                i += 1

    threads = [threading.Thread(target=hammer, args=(slot,)) for slot in range(4)]
    for t in threads:
        t.start()

    def wait_until_each_client_sent(n: int, after: float) -> None:
        # Time-boxed by request counts, not sleeps: a busy machine slows requests down.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(sum(r[0] > after for r in list(s)) < n for s in results):
            time.sleep(0.05)

    try:
        wait_until_each_client_sent(3, after=0.0)
        registered.point(new)
        reload = server.client.post("/reload")
        swapped_at = time.monotonic()
        wait_until_each_client_sent(3, after=swapped_at)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert reload.status_code == 200 and reload.json()["serving_version"] == new, reload.text
    flat = [r for slot in results for r in slot]
    assert {status for _, status, _ in flat} == {200}
    assert {v for _, _, v in flat} == {old, new}
    assert all(v == new for started, _, v in flat if started > swapped_at)
    for slot in results:  # per client, the version only moves forward
        versions = [v for _, _, v in slot]
        first_new = versions.index(new)
        assert set(versions[first_new:]) == {new}


def test_polling_picks_up_an_alias_move(server: ServerProcess, registered: Registered) -> None:
    serve(server, registered, "logisticregression")
    target = registered.versions["linearsvc"]
    registered.point(target)  # no /reload: the 2 s poll must find it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.client.get("/info").json()["version"] != target:
        time.sleep(0.5)
    info = server.client.get("/info").json()
    assert info["version"] == target and info["model_type"] == "LinearSVC" and info["has_probability"] is False
    pred = server.client.post("/predict", json={"text": "so happy today"}).json()
    assert pred["probability"] is None and pred["model_version"] == target and pred["label"] in (0, 1)


def _register_artifacts(registered: Registered, folder: Path, run_name: str) -> str:
    """Log `folder` as a run's `model` artifact and register it as a new version, whatever it holds."""
    import mlflow

    mlflow.set_tracking_uri(registered.trained.tracking_uri)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_artifacts(str(folder), "model")
    # create_model_version, not register_model: MLflow 3 refuses runs:/ URIs without an MLmodel.
    mv = registered.client.create_model_version(
        registered.name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    return str(mv.version)


@pytest.fixture(scope="module")
def broken_versions(registered: Registered, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """Two bad versions of the test model: (version, expected reason)."""
    import mlflow.artifacts

    tmp_path = tmp_path_factory.mktemp("broken")
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "README.txt").write_text("this is not a model")
    # A real Spark artifact whose classifier lost its data folder (a half-copied upload).
    damaged = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=registered.trained.runs_uri("logisticregression"),
            dst_path=str(tmp_path / "damaged"),
            tracking_uri=registered.trained.tracking_uri,
        )
    )
    # the last stage (Spark zero-pads the folder numbers of a pipeline of 10 stages or more)
    classifier = sorted((damaged / "sparkml" / "stages").iterdir())[-1]
    assert (classifier / "data").is_dir(), classifier
    shutil.rmtree(classifier / "data")
    return [
        (_register_artifacts(registered, not_a_model, "not-a-model"), "neither an MLflow model"),
        (_register_artifacts(registered, damaged, "damaged-model"), "has no Parquet data"),
    ]


def test_broken_versions_are_rejected_and_the_old_one_keeps_serving(
    server: ServerProcess, registered: Registered, broken_versions: list[tuple[str, str]]
) -> None:
    good = serve(server, registered, "logisticregression")
    cases = broken_versions
    failures_before = _metric(server.client.get("/metrics").text, "sentiment_online_model_reload_failures_total")
    try:
        for broken, reason in cases:
            registered.point(broken)
            reload = server.client.post("/reload")
            assert reload.status_code == 200, reload.text
            body = reload.json()
            assert body["changed"] is False and body["serving_version"] == good, body
            assert "UnsupportedModelError" in body["rejected_versions"][broken]
            assert reason in body["rejected_versions"][broken]
            pred = server.client.post("/predict", json={"text": "still here?"})
            assert pred.status_code == 200 and pred.json()["model_version"] == good
            assert server.client.get("/health").json()["model_version"] == good
            assert broken in server.client.get("/info").json()["rejected_versions"]
        metrics = server.client.get("/metrics").text
        assert _metric(metrics, "sentiment_online_model_reload_failures_total") == failures_before + len(cases)
    finally:
        registered.point(good)


def test_metrics(server: ServerProcess, registered: Registered) -> None:
    version = serve(server, registered, "logisticregression")
    before = server.client.get("/metrics").text
    ok_before = _metric(before, 'sentiment_online_requests_total{endpoint="/predict",method="POST",status="200"}')
    predicted_before = _metric(before, 'sentiment_online_predictions_total{sentiment="positive"}') + _metric(
        before, 'sentiment_online_predictions_total{sentiment="negative"}'
    )
    for _ in range(3):
        assert server.client.post("/predict", json={"text": "lovely"}).status_code == 200
    assert server.client.post("/predict", json={}).status_code == 422
    assert server.client.post("/invocations", json={"instances": ["a", "b", "c", "d"]}).status_code == 200
    text = server.client.get("/metrics").text
    assert _metric(text, 'sentiment_online_requests_total{endpoint="/predict",method="POST",status="200"}') == (
        ok_before + 3
    )
    assert _metric(text, 'sentiment_online_requests_total{endpoint="/predict",method="POST",status="422"}') >= 1
    predicted = _metric(text, 'sentiment_online_predictions_total{sentiment="positive"}') + _metric(
        text, 'sentiment_online_predictions_total{sentiment="negative"}'
    )
    assert predicted == predicted_before + 7
    assert _metric(text, 'sentiment_online_request_duration_seconds_count{endpoint="/predict"}') >= 4
    assert 'sentiment_online_request_duration_seconds_bucket{endpoint="/invocations",le="0.01"}' in text
    assert _metric(text, f'sentiment_online_model_version{{alias="{ALIAS}",name="{registered.name}"}}') == float(
        version
    )
    assert f'version="{version}"' in text and "sentiment_online_model_info{" in text
    assert _metric(text, "sentiment_online_model_loaded") == 1.0
    assert "sentiment_online_model_reload_failures_total" in text


def test_unavailable_until_a_usable_version_exists(
    registered: Registered, broken_versions: list[tuple[str, str]], mlflow_server: str, tmp_path: Path
) -> None:
    """503 while the alias is missing or names a broken version; POST /reload brings a good one in."""
    alias = f"later-{uuid.uuid4().hex[:6]}"
    proc = ServerProcess(
        {
            "MODEL_URI": f"models:/{registered.name}@{alias}",
            "MLFLOW_TRACKING_URI": mlflow_server,
            "RELOAD_INTERVAL_SECONDS": "0",
        },
        tmp_path / "later.log",
    )
    try:
        health = proc.wait_for(lambda r: r.status_code == 503)
        assert health.json()["status"] == "unhealthy" and health.json()["model_version"] is None
        assert "reason" in health.json()
        pred = proc.client.post("/predict", json={"text": "hello"})
        assert pred.status_code == 503 and "no model loaded yet" in pred.json()["detail"]
        assert proc.client.get("/info").status_code == 503
        missing = proc.client.post("/reload")
        assert missing.status_code == 404 and f"@{alias}" in missing.json()["detail"]

        broken, reason = broken_versions[0]
        registered.point(broken, alias)
        first = proc.client.post("/reload")
        assert first.status_code == 503 and reason in first.json()["detail"], first.text
        again = proc.client.post("/reload")  # remembered as rejected: not downloaded again
        assert again.status_code == 503 and "no usable version" in again.json()["detail"], again.text
        retried = proc.client.post("/reload?retry_rejected=true")
        assert retried.status_code == 503 and reason in retried.json()["detail"], retried.text
        assert proc.client.get("/health").status_code == 503

        registered.point(registered.versions["linearsvc"], alias)
        reload = proc.client.post("/reload")
        assert reload.status_code == 200 and reload.json()["changed"] is True, reload.text
        assert proc.client.get("/health").status_code == 200
        assert (
            proc.client.post("/predict", json={"text": "hello"}).json()["model_version"]
            == (registered.versions["linearsvc"])
        )
    finally:
        proc.stop()


def test_registry_down_answers_503_and_does_not_crash(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = ServerProcess(
        {"MODEL_URI": "models:/whatever@production", "MLFLOW_TRACKING_URI": dead, "RELOAD_INTERVAL_SECONDS": "0"},
        tmp_path / "dead.log",
    )
    try:
        assert proc.wait_for(lambda r: r.status_code == 503).json()["status"] == "unhealthy"
        reload = proc.client.post("/reload", timeout=120)
        assert reload.status_code == 503 and "reload failed" in reload.json()["detail"]
        assert proc.client.post("/invocations", json={"instances": ["x"]}).status_code == 503
        assert "sentiment_online_model_loaded 0.0" in proc.client.get("/metrics").text
    finally:
        proc.stop()


def test_bad_configuration_exits_with_a_message() -> None:
    env = {**os.environ, "MODEL_URI": "runs:/abc/model", "PORT": "8000"}
    out = subprocess.run(
        [sys.executable, "-m", "sentiment_mlops.online.server"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "MODEL_URI must be a registry URI" in out.stderr
    env = {**os.environ, "MODEL_URI": "models:/m@a", "MAX_BATCH": "many"}
    out = subprocess.run(
        [sys.executable, "-m", "sentiment_mlops.online.server"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "MAX_BATCH must be an integer" in out.stderr


class RegistryProxy:
    """A TCP relay in front of the MLflow server, so a test can take the registry down under a
    running online server: `down()` closes the listener and every relayed connection."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").rstrip("/").split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed by down()
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def down(self) -> None:
        try:  # close() alone does not wake a thread blocked in accept(): the port would keep listening
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_reload_storm_with_the_registry_down_never_slows_predictions(
    registered: Registered, mlflow_server: str, tmp_path: Path
) -> None:
    """45 concurrent POST /reload against a dead registry: one reload runs in the background, the
    others get 409 at once, and /predict keeps answering fast throughout."""
    registered.point(registered.versions["logisticregression"])
    proxy = RegistryProxy(mlflow_server)
    proc = ServerProcess(
        {
            "MODEL_URI": f"models:/{registered.name}@{ALIAS}",
            "MLFLOW_TRACKING_URI": proxy.url,
            "RELOAD_INTERVAL_SECONDS": "0",
        },
        tmp_path / "storm.log",
    )
    try:
        proc.wait_for(lambda r: r.status_code == 200)
        proxy.down()
        latencies: list[float] = []
        predict_statuses: set[int] = set()
        stop = threading.Event()

        def predict_loop() -> None:
            with httpx.Client(base_url=proc.url, timeout=30.0) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    resp = client.post("/predict", json={"text": "what a lovely day"})
                    latencies.append(time.perf_counter() - started)
                    predict_statuses.add(resp.status_code)

        barrier = threading.Barrier(45)
        reload_statuses: list[int] = []

        def reload_once() -> None:
            with httpx.Client(base_url=proc.url, timeout=120.0) as client:
                barrier.wait()
                reload_statuses.append(client.post("/reload").status_code)

        predictors = [threading.Thread(target=predict_loop) for _ in range(2)]
        reloaders = [threading.Thread(target=reload_once) for _ in range(45)]
        for t in predictors + reloaders:
            t.start()
        for t in reloaders:
            t.join(timeout=180)
        time.sleep(1.0)  # and a little after
        stop.set()
        for t in predictors:
            t.join(timeout=30)
        assert len(reload_statuses) == 45 and set(reload_statuses) <= {409, 503}, sorted(reload_statuses)
        assert reload_statuses.count(503) >= 1 and reload_statuses.count(409) >= 40
        assert predict_statuses == {200}
        latencies.sort()
        p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"\n/predict during the reload storm: n={len(latencies)} p50={p50 * 1000:.1f} ms "
            f"p99={p99 * 1000:.1f} ms max={latencies[-1] * 1000:.1f} ms"
        )
        assert len(latencies) > 50 and p99 < 0.25
        info = proc.client.get("/info").json()
        assert info["reload"]["running"] is False and info["last_error"], info
    finally:
        proc.stop()
        proxy.down()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_200_mb_chunked_body_is_cut_off_at_the_cap(server: ServerProcess) -> None:
    rss_before = _rss_mb(server.process.pid)
    chunk = b"x" * (1 << 20)
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head)
        try:
            while sent < 200 * (1 << 20):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:  # the server answered 413 and closed the connection
            pass
        try:
            answer = sock.recv(65536)
        except OSError:
            answer = b""
    rss_after = _rss_mb(server.process.pid)
    print(
        f"\n200 MB chunked body: sent {sent / (1 << 20):.0f} MB before the server closed; "
        f"server RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after"
    )
    assert sent < 100 * (1 << 20), "the server kept reading far past MAX_BODY_BYTES (10 MB)"
    assert not answer or answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert rss_after - rss_before < 60
    assert server.client.get("/health").status_code == 200


def test_a_client_that_never_sends_headers_is_disconnected(
    registered: Registered, mlflow_server: str, tmp_path: Path
) -> None:
    proc = ServerProcess(
        {
            "MODEL_URI": f"models:/{registered.name}@{ALIAS}",
            "MLFLOW_TRACKING_URI": mlflow_server,
            "HEADER_TIMEOUT_SECONDS": "1",
        },
        tmp_path / "slow.log",
    )
    try:
        proc.wait_for(lambda r: r.status_code == 200)
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # and then nothing
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the server
            assert time.monotonic() - started < 5
    finally:
        proc.stop()


def test_default_tracking_uri_is_the_documented_server(tmp_path: Path) -> None:
    """MLFLOW_TRACKING_URI unset: http://127.0.0.1:5000, never an ./mlflow.db in the working folder."""
    proc = ServerProcess(
        {"MODEL_URI": "models:/whatever@production", "MLFLOW_TRACKING_URI": None, "RELOAD_INTERVAL_SECONDS": "0"},
        tmp_path / "default.log",
        cwd=tmp_path,
    )
    try:
        proc.wait_for(lambda r: r.status_code in (200, 503))
        assert proc.client.get("/info").json()["tracking_uri"] == "http://127.0.0.1:5000"
        proc.client.post("/reload", timeout=120)
        assert not list(tmp_path.glob("mlflow.db*")) and not (tmp_path / "mlruns").exists()
    finally:
        proc.stop()


def _metric(text: str, series: str) -> float:
    """Value of one exposition line `series value` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
