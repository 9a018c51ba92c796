"""The shared hot-swap logic against a real MLflow registry: swaps, rejections, and serving on
through a registry outage with backoff. The loader is a stand-in for a model load (the streaming
and online-server tests cover real models); the registry is real."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from sentiment_mlops.backends.local.mlflow_server import MlflowServer, free_port
from sentiment_mlops.registry.model_watcher import ModelWatcher

NAME = "watcher-test"


def _new_version(client: MlflowClient, note: str) -> str:
    with mlflow.start_run(run_name=note) as run:
        mlflow.log_text(note, "m/NOTE.txt")
    mv = client.create_model_version(NAME, source=f"{run.info.artifact_uri}/m", run_id=run.info.run_id)
    return str(mv.version)


def _wait(condition, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.timeout(240)
def test_swap_reject_and_outage(tmp_path: Path) -> None:
    server = MlflowServer(data_dir=tmp_path / "mlflow", port=free_port()).start()
    try:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("watcher-test")  # not the active experiment id of an earlier test's server
        client = MlflowClient(server.url)
        client.create_registered_model(NAME)
        v1 = _new_version(client, "good one")
        client.set_registered_model_alias(NAME, "production", v1)

        broken: set[str] = set()
        loads: list[str] = []

        def loader(uri: str) -> str:
            loads.append(uri)
            if any(uri.endswith(f"/{v}") for v in broken):
                raise OSError("artifact cannot be read")
            return uri

        swaps: list[tuple[str | None, str]] = []
        watcher: ModelWatcher[str] = ModelWatcher(server.url, NAME, "Production", loader, poll_seconds=0.5)
        watcher.on_swap(lambda old, new: swaps.append((old.version if old else None, new.version)))
        assert watcher.load_initial().version == v1
        watcher.start()

        # the alias moves: the poller swaps to the new version
        v2 = _new_version(client, "better one")
        client.set_registered_model_alias(NAME, "production", v2)
        assert _wait(lambda: watcher.current.version == v2)
        assert swaps == [(None, v1), (v1, v2)] and watcher.current.model == f"models:/{NAME}/{v2}"

        # a version that fails to load is rejected once, not retried every poll; v2 keeps serving
        v3 = _new_version(client, "broken one")
        broken.add(v3)
        client.set_registered_model_alias(NAME, "production", v3)
        assert _wait(lambda: v3 in watcher.stats.rejected_versions)
        time.sleep(2)
        assert watcher.current.version == v2 and loads.count(f"models:/{NAME}/{v3}") == 1
        assert "artifact cannot be read" in watcher.stats.rejected_versions[v3]

        # registry outage: keep serving v2, count the failures, back off
        server.stop()
        assert _wait(lambda: watcher.stats.registry_errors >= 2, timeout=60)
        assert watcher.current.version == v2

        # registry back (same store): the poller resumes and picks up a new version
        server.start()
        v4 = _new_version(client, "after the outage")
        client.set_registered_model_alias(NAME, "production", v4)
        assert _wait(lambda: watcher.current.version == v4, timeout=90)
        watcher.stop()
    finally:
        server.stop()
