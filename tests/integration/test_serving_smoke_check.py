"""The serving job's swap smoke check against real registered models that load but predict badly.

Each candidate is a real Spark pipeline logged to a real MLflow registry; the serving job's own watcher
(serving.job.build_state) loads it, and must refuse a version whose predictions are not 0/1 labels
while the current version keeps serving. At today's boundary a constant but valid label passes: the
check guards the output's shape, not the model's accuracy (the promotion gate does that)."""

from __future__ import annotations

import pytest

from sentiment_mlops.serving import job as serving_job

pytestmark = pytest.mark.integration
NAME = "smoke-itest"


def _register(spark, client, prediction_sql: str) -> str:  # type: ignore[no-untyped-def]
    """Log and register a pipeline that answers `prediction_sql` AS prediction for every text."""
    import mlflow
    import mlflow.spark
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer

    from sentiment_mlops.training.tracking import MODEL_PIP_REQUIREMENTS, model_signature

    stage = SQLTransformer(statement=f"SELECT *, {prediction_sql} AS prediction FROM __THIS__")
    model = Pipeline(stages=[stage]).fit(spark.createDataFrame([("x",)], "text string"))
    with mlflow.start_run(run_name=f"smoke {prediction_sql}") as run:
        mlflow.spark.log_model(model, "model", signature=model_signature(), pip_requirements=MODEL_PIP_REQUIREMENTS)
    return str(mlflow.register_model(f"runs:/{run.info.run_id}/model", NAME, await_registration_for=120).version)


@pytest.mark.timeout(600)
def test_versions_that_load_but_predict_badly_are_refused(spark, mlflow_server) -> None:  # type: ignore[no-untyped-def]
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(mlflow_server)
    client = MlflowClient(mlflow_server)
    constant_label = _register(spark, client, "CAST(1.0 AS DOUBLE)")
    out_of_range = _register(spark, client, "CAST(2.0 AS DOUBLE)")
    no_label = _register(spark, client, "CAST(NULL AS DOUBLE)")
    negative = _register(spark, client, "CAST(-1.0 AS DOUBLE)")

    args = serving_job.build_arg_parser().parse_args(
        [
            "--input-path", "gs://smoke-in", "--output-path", "gs://smoke-out", "--checkpoint", "gs://smoke-ckpt/s",
            "--mlflow-uri", mlflow_server, "--model-name", NAME, "--model-stage", "production",
        ]
    )  # fmt: skip
    watcher = serving_job.build_state(spark, args).watcher

    client.set_registered_model_alias(NAME, "production", constant_label)
    assert watcher.load_initial(retries=1, delay=0).version == constant_label  # 0/1 labels: at the boundary, passes

    for bad in (out_of_range, no_label, negative):
        client.set_registered_model_alias(NAME, "production", bad)
        assert watcher.check_once() == (constant_label, constant_label, False)
        assert watcher.current is not None and watcher.current.version == constant_label
        assert "smoke" in watcher.stats.rejected_versions[bad]
    assert set(watcher.stats.rejected_versions) == {out_of_range, no_label, negative}

    # A broken version is refused as the first model too: the job does not start serving it.
    fresh = serving_job.build_state(spark, args).watcher
    with pytest.raises(RuntimeError, match="could not load"):
        fresh.load_initial(retries=1, delay=0)
    assert fresh.current is None
