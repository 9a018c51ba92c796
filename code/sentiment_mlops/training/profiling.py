"""The reference profile each model is logged with (see monitoring.profile): a sample of the test
split scored by the model, against the training split's vocabulary. The monitoring DAG compares live
predictions with it.

The samples are small (PROFILE_ROWS rows) and collected to the driver once per training run; each
model only scores the test sample again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

from sentiment_mlops.monitoring import profile

log = logging.getLogger("sentiment_mlops.training")

PROFILE_ROWS = 20000


@dataclass(frozen=True)
class ProfileInputs:
    """What every model's profile is built from: the test sample (a cached Spark DataFrame of
    `text`) and the training split's vocabulary."""

    test_sample: DataFrame
    vocabulary: list[str]
    rules_version: str


def _sample(df: DataFrame, rows: int, seed: int) -> DataFrame:
    total = df.count()
    if total > rows:
        df = df.sample(False, min(1.0, 1.2 * rows / total), seed).limit(rows)
    return df


def profile_inputs(
    train: DataFrame, test: DataFrame, seed: int, rules_version: str, rows: int = PROFILE_ROWS
) -> ProfileInputs:
    """Sample both splits; the vocabulary comes from the training sample's most frequent terms,
    tokenized with the models' cleaning rules."""
    train_texts: pd.DataFrame = _sample(train.select("text"), rows, seed).toPandas()
    test_sample = _sample(test.select("text"), rows, seed).cache()
    vocabulary = profile.build_vocabulary(train_texts["text"], rules_version=rules_version)
    return ProfileInputs(test_sample=test_sample, vocabulary=vocabulary, rules_version=rules_version)


def model_profile(model: PipelineModel, inputs: ProfileInputs, describe: dict[str, Any]) -> dict[str, Any]:
    """The reference profile of `model` (its predictions on the test sample); `describe` says which
    model it is (stored in the profile)."""
    scored: pd.DataFrame = model.transform(inputs.test_sample).select("text", "prediction").toPandas()
    return profile.reference_profile(scored, inputs.vocabulary, model=describe, rules_version=inputs.rules_version)
