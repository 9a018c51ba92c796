"""A registered model to serve, trained once per test session with the real training job."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment_mlops.training import job as training_job

SERVING_BASE = "serving-itest"
SERVING_MODEL = f"{SERVING_BASE}-best"


def train_serving_model(spark, sample_csv: Path, mlflow_server: str, model: str) -> str:  # type: ignore[no-untyped-def]
    """Train `model` (lr/rf/svc) on 3,000 tweets, force it onto @production; returns its version."""
    args = training_job.build_arg_parser().parse_args(
        [
            "--input", str(sample_csv), "--output", f"gs://serving-itest-models/{model}", "--mlflow-uri", mlflow_server,
            "--registered-model-name", SERVING_BASE, "--mlflow-experiment", "serving-itest", "--max-rows", "3000",
            "--num-features", "4096", "--models", model, "--force-promote",
        ]
    )  # fmt: skip
    training_job.validate_args(args)
    return str(training_job.run_training(args, spark).promotion["candidate_version"])


@pytest.fixture(scope="session", name="served_version")
def served_version_fixture(spark, sample_csv: Path, mlflow_server: str) -> str:  # type: ignore[no-untyped-def]
    """Version number of a logistic-regression model of SERVING_MODEL (pin it: tests move the alias)."""
    return train_serving_model(spark, sample_csv, mlflow_server, "lr")
