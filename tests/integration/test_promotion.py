"""The stage-word to alias mapping users rely on, and the gate against a real registry (the gate's
pure rules are in tests/unit/test_promotion_gate.py)."""

from __future__ import annotations

import os

import pytest

from sentiment_mlops.registry import lookups as registry


@pytest.mark.parametrize(
    "value,uri",
    [
        ("Production", "models:/m@production"),
        ("production", "models:/m@production"),
        ("Staging", "models:/m@staging"),
        ("champion", "models:/m@champion"),
        ("7", "models:/m/7"),
    ],
)
def test_model_uri_maps_stage_words_onto_aliases(value: str, uri: str) -> None:
    assert registry.model_uri("m", value) == uri


def test_unreachable_tracking_server_is_one_clear_error() -> None:
    from sentiment_mlops.backends.local.mlflow_server import free_port

    with pytest.raises(registry.MlflowUnreachableError, match="unreachable"):
        registry.check_tracking_server(f"http://127.0.0.1:{free_port()}", timeout=1)


def test_alias_moved_by_another_job_while_gating_is_measured_again(mlflow_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Compare and set: when another training job (e.g. the pipeline's parallel CV variant) moves
    @production between this run's measurement and its promotion, the new holder is measured again
    and a candidate worse than it is not promoted over it."""
    from types import SimpleNamespace

    import mlflow
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.training import tracking

    mlflow.set_tracking_uri(mlflow_server)
    client = MlflowClient(mlflow_server)
    name = "gate-race-best"
    client.create_registered_model(name)
    with mlflow.start_run(run_name="gate-race") as run:
        mlflow.log_text("stand-in", "m/NOTE.txt")
    versions = [
        client.create_model_version(name, f"{run.info.artifact_uri}/m", run_id=run.info.run_id).version
        for _ in range(3)
    ]
    holder, other_job, candidate = (str(v) for v in versions)
    client.set_registered_model_alias(name, "production", holder)
    measured: list[str | None] = []

    def racing_measure(client_, name_, alias, test):  # type: ignore[no-untyped-def]
        current = client.get_model_version_by_alias(name, alias).version
        measured.append(current)
        if len(measured) == 1:  # the other job promotes its model right after our measurement
            client.set_registered_model_alias(name, "production", other_job)
            return 0.70, current
        return 0.90, current

    monkeypatch.setattr(tracking, "current_production_accuracy", racing_measure)
    best = SimpleNamespace(test={"accuracy": 0.80})
    args = SimpleNamespace(min_accuracy=0.5, force_promote=False)
    decision = tracking.gate_and_promote(client, best, name, candidate, "production", None, args)
    assert measured == [holder, other_job]
    assert not decision.promote and f"v{other_job}" in decision.reason
    assert client.get_model_version_by_alias(name, "production").version == other_job


def _versions(client, mlflow_server: str, name: str, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """`count` registered versions of `name` whose artifacts are a small stand-in file."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server)
    client.create_registered_model(name)
    with mlflow.start_run(run_name=name) as run:
        mlflow.log_text(f"stand-in for {name}", "m/NOTE.txt")
    return [
        str(client.create_model_version(name, f"{run.info.artifact_uri}/m", run_id=run.info.run_id).version)
        for _ in range(count)
    ]


def _to_stage(client, name: str, version: str, stage: str) -> None:  # type: ignore[no-untyped-def]
    """What a user does in the MLflow UI's stage menu (or with the stage API)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version, stage, archive_existing_versions=False)


def test_version_moved_to_production_stage_without_alias_is_served(mlflow_server) -> None:  # type: ignore[no-untyped-def]
    """The original project's way: a version moved to stage Production, no alias anywhere, is what
    `models:/NAME/Production`, the registry look-up and the serving model watcher all resolve."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from sentiment_mlops.registry.model_watcher import ModelWatcher

    client = MlflowClient(mlflow_server)
    name = "stage-only-logisticregression"
    v1, v2, v3 = _versions(client, mlflow_server, name, 3)
    _to_stage(client, name, v1, "Production")
    _to_stage(client, name, v2, "Production")  # the newest version in the stage is served
    _to_stage(client, name, v3, "Staging")

    local = mlflow.artifacts.download_artifacts(f"models:/{name}/Production", tracking_uri=mlflow_server)
    assert "NOTE.txt" in os.listdir(local)
    resolved = registry.resolve_version(client, name, "Production")
    assert resolved is not None and (resolved.version, resolved.via) == (v2, "stage")
    assert resolved.requested_uri == f"models:/{name}/Production"
    assert registry.resolve_version(client, name, "staging").version == v3  # type: ignore[union-attr]
    assert registry.resolve_version(client, name, "champion") is None  # no stage fallback for aliases

    watcher = ModelWatcher(mlflow_server, name, "Production", loader=lambda uri: uri, poll_seconds=3600)
    loaded = watcher.load_initial(retries=1)
    assert (loaded.version, loaded.model) == (v2, f"models:/{name}/{v2}")


def test_alias_wins_over_stage(mlflow_server) -> None:  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    name = "alias-and-stage-randomforest"
    v1, v2 = _versions(client, mlflow_server, name, 2)
    client.set_registered_model_alias(name, "production", v1)
    _to_stage(client, name, v2, "Production")
    resolved = registry.resolve_version(client, name, "Production")
    assert resolved is not None and (resolved.version, resolved.via) == (v1, "alias")
    assert resolved.requested_uri == f"models:/{name}@production"


def test_gate_gives_a_per_algorithm_model_its_production_alias_and_stage(mlflow_server) -> None:  # type: ignore[no-untyped-def]
    """The gate the training job runs for each algorithm's own model: above the minimum it takes
    @production (mirrored onto stage Production); a worse later version does not."""
    from types import SimpleNamespace

    from mlflow.tracking import MlflowClient

    from sentiment_mlops.training import tracking

    client = MlflowClient(mlflow_server)
    name = "gate-twitter-sentiment-model-logisticregression"
    first, worse = _versions(client, mlflow_server, name, 2)
    args = SimpleNamespace(min_accuracy=0.75, force_promote=False)
    decision = tracking.gate_and_promote(
        client, SimpleNamespace(test={"accuracy": 0.80}), name, first, "production", None, args
    )
    assert decision.promote
    assert client.get_model_version_by_alias(name, "production").version == first
    assert registry.resolve_version(client, name, "Production").version == first  # type: ignore[union-attr]

    def measured(client_, name_, alias, test):  # type: ignore[no-untyped-def]
        return 0.80, registry.resolve_version(client, name_, alias).version  # type: ignore[union-attr]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tracking, "current_production_accuracy", measured)
        kept = tracking.gate_and_promote(
            client, SimpleNamespace(test={"accuracy": 0.78}), name, worse, "production", None, args
        )
    assert not kept.promote
    assert client.get_model_version_by_alias(name, "production").version == first
