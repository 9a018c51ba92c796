"""The held-out-topic (grouped) split keeps about the same share of the rows whatever the sample size:
a small demo or test run must not lose half its training rows to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sentiment_mlops.training import data_loading, topic_split

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def labelled(spark: Any, sample_csv: Path) -> Any:
    df, _ = data_loading.load_labelled(spark, str(sample_csv))
    return df.cache()


@pytest.mark.parametrize(("rows", "low", "high"), [(4_000, 0.05, 0.25), (100_000, 0.18, 0.26)])
def test_grouped_share_is_at_most_a_fifth_on_any_sample(labelled: Any, rows: int, low: float, high: float) -> None:
    sample = data_loading.subsample(labelled, 1.0, rows, 42).cache()
    total = sample.count()
    rest, grouped = topic_split.split_by_topic(sample, topic_split.DEFAULT_EVERY)
    held, kept = grouped.count(), rest.count()
    assert held + kept == total  # every row on exactly one side
    assert low <= held / total <= high, f"{held} of {total} rows held out"
    # identical tweets never straddle the two sides
    assert grouped.join(rest, ["text", "label"], "left_semi").count() == 0


def test_off_holds_out_nothing(labelled: Any) -> None:
    sample = labelled.limit(500)
    rest, grouped = topic_split.split_by_topic(sample, 0)
    assert grouped.count() == 0 and rest.count() == 500
