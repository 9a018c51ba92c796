"""The stage-word to alias mapping users rely on, and the gate against a real registry (the gate's
pure rules are in tests/unit/test_promotion_gate.py)."""

from __future__ import annotations

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
