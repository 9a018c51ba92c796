"""The timestamps the stream writes are the moment of the batch whatever the driver's time zone: a
laptop outside UTC must not shift `prediction_timestamp` or `quarantined_at` by its offset."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sentiment_mlops.registry.model_watcher import LoadedModel
from sentiment_mlops.serving import job as serving_job

pytestmark = pytest.mark.integration


@pytest.fixture
def driver_in_new_york(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _positive(df: DataFrame) -> DataFrame:
    return df.withColumn("prediction", F.lit(1.0)).withColumn("probability", F.lit(0.9))


def _epoch_seconds(df: DataFrame, column: str) -> int:
    return int(df.select(F.unix_timestamp(column).alias("s")).first()["s"])


@pytest.mark.parametrize("aware", [True, False], ids=["aware-utc", "naive-utc"])
def test_prediction_and_quarantine_times_are_the_batch_instant_outside_utc(
    spark: Any, driver_in_new_york: Any, aware: bool
) -> None:
    moment = datetime(2026, 11, 30, 23, 30, 5, tzinfo=UTC)
    now = moment if aware else moment.replace(tzinfo=None)
    parsed = spark.createDataFrame(
        [("r0", "good day", None, None, "drop.csv", 2, None, None, None)],
        "id string, text string, label int, event_timestamp timestamp, source string, source_row bigint, "
        "raw string, error string, arrival_timestamp timestamp",
    )
    served = LoadedModel(_positive, "m", "1", "production", None, "models:/m/1")
    scored = serving_job.score_batch(parsed, served, 0, now, False)
    assert _epoch_seconds(scored, "prediction_timestamp") == int(moment.timestamp())
    # What a user reads back: the UTC wall time of the batch (the session time zone is UTC).
    assert scored.select(F.date_format("prediction_timestamp", "yyyy-MM-dd HH:mm:ss")).first()[0] == (
        "2026-11-30 23:30:05"
    )
    quarantined = spark.range(1).select(serving_job.utc_timestamp(now).alias("quarantined_at"))
    assert _epoch_seconds(quarantined, "quarantined_at") == int(moment.timestamp())
