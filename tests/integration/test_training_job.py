"""The training job end to end against a real MLflow server, its gate, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sentiment_mlops.core.storage import local_path
from sentiment_mlops.training import job as training_job

pytestmark = pytest.mark.integration
BASE = "itest-sentiment"


def _args(sample_csv: Path, mlflow_server: str, output: str, *extra: str) -> list[str]:
    return [
        "--input", str(sample_csv), "--output", output, "--mlflow-uri", mlflow_server,
        "--registered-model-name", BASE, "--mlflow-experiment", "itest", "--max-rows", "4000",
        "--num-features", "8192", "--enable-caching", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def first_run(spark, sample_csv: Path, mlflow_server: str, sentiment_home: Path):  # type: ignore[no-untyped-def]
    """All three models on 4,000 tweets, promoted with a gate low enough for so few rows."""
    args = training_job.build_arg_parser().parse_args(
        _args(sample_csv, mlflow_server, "gs://itest-models/run1", "--min-accuracy", "0.6")
    )
    training_job.validate_args(args)
    summary = training_job.run_training(args, spark)
    # Read right away: other tests of this module (in random order) train and move the aliases again.
    client = MlflowClient(mlflow_server)
    summary.candidate_versions = {  # type: ignore[attr-defined]
        key: client.get_model_version_by_alias(info["registered_model"], "candidate").version
        for key, info in summary.models.items()
    }
    summary.production_versions = {  # type: ignore[attr-defined]
        key: _alias_version(client, info["registered_model"], "production") for key, info in summary.models.items()
    }
    summary.best_production_run_id = client.get_model_version_by_alias(f"{BASE}-best", "production").run_id  # type: ignore[attr-defined]
    return summary


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _assert_reference_profile(mlflow_server: str, run_id: str, test_accuracy: float) -> None:
    """The model's run holds the reference profile the monitoring DAG reads: its test predictions'
    class balance, the text statistics and a vocabulary-based OOV rate of a few percent."""
    from sentiment_mlops.monitoring.profile import FEATURES, PROFILE_ARTIFACT

    mlflow.set_tracking_uri(mlflow_server)
    ref = mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILE_ARTIFACT}")
    assert set(ref["features"]) == set(FEATURES) and ref["model"]["run_id"] == run_id
    # The test split of 4,000 rows at 80/10/10, less the held-out-topic rows the grouped split takes out.
    assert 100 <= ref["rows"] <= 500
    for feature in ref["features"].values():
        assert abs(sum(feature["fractions"]) - 1.0) < 1e-3
    negatives, positives = ref["features"]["prediction_class"]["fractions"]
    assert 0.05 < positives < 0.95 and test_accuracy > 0.5  # both classes (RandomForest leans negative)
    assert 20 < ref["features"]["text_length"]["stats"]["mean"] < 140  # tweets
    assert 0.0 < ref["oov_rate"] < 0.3 and len(ref["vocabulary"]) > 1000


def test_trains_registers_and_promotes_all_three(first_run, mlflow_server: str) -> None:
    client = MlflowClient(mlflow_server)
    assert set(first_run.models) == {"logisticregression", "randomforest", "linearsvc"}
    for key, info in first_run.models.items():
        assert info["registered_model"] == f"{BASE}-{key}"
        assert client.get_model_version(info["registered_model"], info["version"]).run_id == info["run_id"]
        assert 0.5 < info["test"]["accuracy"] <= 1.0 and 0.5 < info["test"]["auc"] <= 1.0
        assert set(info["validation"]) == {"accuracy", "precision", "recall", "f1", "auc"}
        artifacts = {a.path for a in client.list_artifacts(info["run_id"], "plots")}
        assert artifacts == {f"plots/confusion_matrix_{key}.png", f"plots/roc_{key}.png"}
        _assert_reference_profile(mlflow_server, info["run_id"], info["test"]["accuracy"])
        # each algorithm's own model goes through the gate too, so the reference's custom model
        # selection (serving_model_name=<base>-logisticregression, stage Production) finds a version
        assert first_run.candidate_versions[key] == info["version"]
        gate_accuracy = (info.get("grouped") or info["test"])["accuracy"]  # what the gate reads (grouped split)
        if gate_accuracy >= 0.6:
            assert info["promotion"]["promote"] is True
            assert first_run.production_versions[key] == info["version"]
        else:  # on 4,000 tweets a model can stay below the gate's minimum: then it gets no alias
            assert "below the minimum" in info["promotion"]["reason"]
            assert first_run.production_versions[key] is None
    assert first_run.models[first_run.best_model]["promotion"]["promote"] is True
    assert first_run.promotion["promote"] is True
    assert first_run.best_production_run_id == first_run.models[first_run.best_model]["run_id"]
    parent = client.get_run(first_run.parent_run_id)
    child_parents = {client.get_run(i["run_id"]).data.tags.get("mlflow.parentRunId") for i in first_run.models.values()}
    assert child_parents == {first_run.parent_run_id}
    assert parent.data.metrics["promoted"] == 1.0


def test_best_model_loads_from_registry_and_predicts_new_text(first_run, spark, mlflow_server: str) -> None:
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.spark.load_model(f"models:/{BASE}-best@production")
    df = spark.createDataFrame(
        [("I love this, what a wonderful happy day",), ("this is awful, I hate it and feel sad",)], ["text"]
    )
    predictions = [r.prediction for r in model.transform(df).collect()]
    assert predictions == [1.0, 0.0]


def test_best_model_and_summary_written_to_output(first_run) -> None:
    out = local_path("gs://itest-models/run1")
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["best_model"] == first_run.best_model
    assert set(summary["models"]) == {"logisticregression", "randomforest", "linearsvc"}
    assert summary["load_report"]["rows_read"] == 100_000
    best_dirs = list(out.glob("best-model-*"))
    assert len(best_dirs) == 1 and (best_dirs[0] / "stages").is_dir()


def test_gate_keeps_production_when_new_best_is_worse(first_run, spark, sample_csv, mlflow_server) -> None:
    client = MlflowClient(mlflow_server)
    before = client.get_model_version_by_alias(f"{BASE}-best", "production").version
    # Random forest alone (10 shallow trees) is clearly worse than the promoted model on this split.
    args = training_job.build_arg_parser().parse_args(
        _args(sample_csv, mlflow_server, "gs://itest-models/run2", "--models", "rf", "--min-accuracy", "0.5")
    )
    training_job.validate_args(args)
    summary = training_job.run_training(args, spark)
    assert summary.promotion["promote"] is False
    assert "worse than production" in summary.promotion["reason"]
    assert client.get_model_version_by_alias(f"{BASE}-best", "production").version == before
    assert int(summary.promotion["candidate_version"]) > int(before)  # registered, just not promoted


def test_force_promote_moves_the_alias(first_run, spark, sample_csv, mlflow_server) -> None:
    client = MlflowClient(mlflow_server)
    args = training_job.build_arg_parser().parse_args(
        _args(sample_csv, mlflow_server, "gs://itest-models/run3", "--models", "svc", "--force-promote")
    )
    training_job.validate_args(args)
    summary = training_job.run_training(args, spark)
    assert summary.promotion["promote"] is True and summary.promotion["forced"] is True
    now = client.get_model_version_by_alias(f"{BASE}-best", "production")
    assert now.version == summary.promotion["candidate_version"]


def _main_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert training_job.main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert len(err) == 1
    return err[0]


def test_missing_input_is_one_line_error(spark, mlflow_server, tmp_path, capsys) -> None:
    msg = _main_error(capsys, _args(tmp_path / "nope.csv", mlflow_server, str(tmp_path / "out")))
    assert "input not found" in msg


def test_empty_input_is_one_line_error(spark, mlflow_server, tmp_path, capsys) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "empty" in _main_error(capsys, _args(empty, mlflow_server, str(tmp_path / "out")))


def test_unreachable_mlflow_fails_before_training(tmp_path, sample_csv, capsys) -> None:
    from sentiment_mlops.backends.local.mlflow_server import free_port

    msg = _main_error(capsys, _args(sample_csv, f"http://127.0.0.1:{free_port()}", str(tmp_path / "out")))
    assert "MLflow tracking server unreachable" in msg


def test_unwritable_output_is_one_line_error(spark, mlflow_server, sample_csv, tmp_path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert "not writable" in _main_error(capsys, _args(sample_csv, mlflow_server, str(blocker / "out")))


def test_unknown_model_name_is_rejected(capsys, sample_csv, tmp_path) -> None:
    msg = _main_error(capsys, _args(sample_csv, "http://127.0.0.1:1", str(tmp_path), "--models", "xgboost"))
    assert "unknown model 'xgboost'" in msg
