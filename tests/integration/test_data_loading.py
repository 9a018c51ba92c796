"""Reading both Sentiment140 layouts, label mapping, drop counts, subsampling and splitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment_mlops.training import data_loading


def _write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_two_column_layout_maps_labels_and_counts_drops(spark, tmp_path: Path) -> None:
    csv = _write(
        tmp_path / "two.csv",
        '"0","so sad today"\n'
        '"4","what a lovely day"\n'
        '"2","neutral tweet"\n'
        '"7","bad polarity"\n'
        '"4",""\n'
        '"0","another sad one"\n',
    )
    df, report = data_loading.load_labelled(spark, csv)
    assert report.layout == "two"
    assert (report.rows_read, report.rows_usable, report.neutral_dropped, report.malformed_dropped) == (6, 3, 1, 2)
    rows = sorted((r.text, r.label) for r in df.collect())
    assert rows == [("another sad one", 0.0), ("so sad today", 0.0), ("what a lovely day", 1.0)]


def test_six_column_latin1_layout(spark, tmp_path: Path) -> None:
    csv = _write(
        tmp_path / "six.csv",
        '"0","1467810369","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","_TheSpecialOne_","caf\xe9 was awful"\n'
        '"4","1467810672","Mon Apr 06 22:19:49 PDT 2009","NO_QUERY","scotthamilton","loved it"\n'
        '"2","1467810917","Mon Apr 06 22:19:53 PDT 2009","NO_QUERY","mattycus","meh"\n'
        "this line is broken\n",
        encoding="latin-1",
    )
    df, report = data_loading.load_labelled(spark, csv)
    assert report.layout == "six"
    assert report.rows_usable == 2 and report.neutral_dropped == 1 and report.malformed_dropped == 1
    texts = {r.text: r.label for r in df.collect()}
    assert texts == {"café was awful": 0.0, "loved it": 1.0}


def test_nothing_usable_is_a_clear_error(spark, tmp_path: Path) -> None:
    csv = _write(tmp_path / "neutral.csv", '"2","meh"\n"2","fine I guess"\n')
    with pytest.raises(data_loading.InputDataError, match="no usable rows"):
        data_loading.load_labelled(spark, csv)


def test_empty_file_is_a_clear_error(spark, tmp_path: Path) -> None:
    csv = _write(tmp_path / "empty.csv", "")
    with pytest.raises(data_loading.InputDataError, match="empty"):
        data_loading.load_labelled(spark, csv)


def test_max_rows_takes_both_classes_from_the_sorted_sample(spark, sample_csv: Path) -> None:
    df, report = data_loading.load_labelled(spark, str(sample_csv))
    assert report.rows_read == 100_000 and report.layout == "two"
    subset = data_loading.subsample(df, 1.0, 1000, seed=7)
    counts = {r.label: r["count"] for r in subset.groupBy("label").count().collect()}
    assert sum(counts.values()) == 1000
    assert counts[0.0] > 350 and counts[1.0] > 350  # the file is 50k negatives then 50k positives


def test_split_is_seeded_and_complete(spark) -> None:
    df = spark.createDataFrame([(f"t{i}", float(i % 2)) for i in range(2000)], ["text", "label"])
    a = [s.count() for s in data_loading.split_dataset(df, 0.8, 0.1, seed=3)]
    b = [s.count() for s in data_loading.split_dataset(df, 0.8, 0.1, seed=3)]
    assert a == b and sum(a) == 2000
    assert 1500 < a[0] < 1700 and 120 < a[1] < 280 and 120 < a[2] < 280


@pytest.mark.parametrize("train,val", [(0.9, 0.1), (0.0, 0.1), (0.8, 0.0)])
def test_split_rejects_ratios_without_room(spark, train: float, val: float) -> None:
    df = spark.createDataFrame([("a", 0.0)], ["text", "label"])
    with pytest.raises(ValueError, match="train-ratio"):
        data_loading.split_dataset(df, train, val, seed=1)
