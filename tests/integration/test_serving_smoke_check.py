"""The serving job's swap smoke check against real registered models that load but predict badly.

Each candidate is a real Spark pipeline logged to a real MLflow registry; the serving job's own watcher
(serving.job.build_state) loads it, and must refuse a version that is inverted, constant, answers labels
other than 0/1, or gets fewer than 75% of the clear smoke tweets right, while the current version keeps
serving. Exactly 75% passes."""

from __future__ import annotations

import pytest

from sentiment_mlops.serving import job as serving_job

pytestmark = pytest.mark.integration
NAME = "smoke-itest"


def _labels_sql(right: int, invert: bool = False) -> str:
    """A prediction that gets the first `right` smoke tweets right and the others wrong."""
    from sentiment_mlops.registry.smoke_check import SMOKE_SET

    cases = []
    for i, (text, label) in enumerate(SMOKE_SET):
        predicted = label if (i < right) != invert else 1 - label
        cases.append(f"WHEN '{text.replace(chr(39), chr(39) * 2)}' THEN CAST({predicted} AS DOUBLE)")
    return f"CASE text {' '.join(cases)} ELSE CAST(0 AS DOUBLE) END"


def _register(spark, client, prediction_sql: str, name: str = NAME) -> str:  # type: ignore[no-untyped-def]
    """Log and register (as a version of `name`) a pipeline that answers `prediction_sql` AS prediction
    for every text."""
    import mlflow
    import mlflow.spark
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer

    from sentiment_mlops.training.tracking import MODEL_PIP_REQUIREMENTS, model_signature

    stage = SQLTransformer(statement=f"SELECT *, {prediction_sql} AS prediction FROM __THIS__")
    model = Pipeline(stages=[stage]).fit(spark.createDataFrame([("x",)], "text string"))
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_experiment("smoke-itest")  # not the active experiment id an earlier test set on its server
    with mlflow.start_run(run_name=f"smoke {prediction_sql}") as run:
        mlflow.spark.log_model(model, "model", signature=model_signature(), pip_requirements=MODEL_PIP_REQUIREMENTS)
    return str(mlflow.register_model(f"runs:/{run.info.run_id}/model", name, await_registration_for=120).version)


@pytest.mark.timeout(600)
def test_versions_that_load_but_predict_badly_are_refused(spark, mlflow_server) -> None:  # type: ignore[no-untyped-def]
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(mlflow_server)
    client = MlflowClient(mlflow_server)
    from sentiment_mlops.registry.smoke_check import SMOKE_SET

    at_floor = _register(spark, client, _labels_sql(right=len(SMOKE_SET) * 3 // 4))  # 12 of 16: 0.75
    below_floor = _register(spark, client, _labels_sql(right=len(SMOKE_SET) * 3 // 4 - 1))
    inverted = _register(spark, client, _labels_sql(right=len(SMOKE_SET), invert=True))
    constant = _register(spark, client, "CAST(1.0 AS DOUBLE)")
    out_of_range = _register(spark, client, "CAST(2.0 AS DOUBLE)")
    no_label = _register(spark, client, "CAST(NULL AS DOUBLE)")

    args = serving_job.build_arg_parser().parse_args(
        [
            "--input-path", "gs://smoke-in", "--output-path", "gs://smoke-out", "--checkpoint", "gs://smoke-ckpt/s",
            "--mlflow-uri", mlflow_server, "--model-name", NAME, "--model-stage", "production",
        ]
    )  # fmt: skip
    serving_job.validate_args(args)  # fills the default quarantine and metrics paths, as main() does
    watcher = serving_job.build_state(spark, args).watcher

    client.set_registered_model_alias(NAME, "production", at_floor)
    assert watcher.load_initial(retries=1, delay=0).version == at_floor  # exactly at the floor: serves

    bad_versions = (below_floor, inverted, constant, out_of_range, no_label)
    for bad in bad_versions:
        client.set_registered_model_alias(NAME, "production", bad)
        assert watcher.check_once() == (at_floor, at_floor, False)
        assert watcher.current is not None and watcher.current.version == at_floor
        assert "smoke check" in watcher.stats.rejected_versions[bad]
    assert set(watcher.stats.rejected_versions) == set(bad_versions)
    assert "accuracy 0.69" in watcher.stats.rejected_versions[below_floor]
    assert "accuracy 0.00" in watcher.stats.rejected_versions[inverted]
    assert "accuracy 0.50" in watcher.stats.rejected_versions[constant]

    # A broken version is refused as the first model too: the job does not start serving it.
    fresh = serving_job.build_state(spark, args).watcher
    with pytest.raises(RuntimeError, match="could not load"):
        fresh.load_initial(retries=1, delay=0)
    assert fresh.current is None
