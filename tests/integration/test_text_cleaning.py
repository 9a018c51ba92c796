"""Cleaning is a pipeline stage, and its Python twin gives the same text as Spark."""

from __future__ import annotations

from pathlib import Path

from sentiment_mlops.features.text_cleaning import CLEAN_TEXT_COL, clean_text
from sentiment_mlops.training.model_catalog import cleaning_stage

CASES = {
    "@bob I LOVE this &amp; that!!! http://t.co/xyz": "i love this and that!!!",
    "Sooooo haaappy #blessed www.example.com/page": "soo haappy blessed",
    "can't &lt;3 &quot;it&quot;": "can't 3 it",
    "  lots   of\tspace  ": "lots of space",
    "": "",
}


def test_python_cleaning_examples() -> None:
    for raw, expected in CASES.items():
        assert clean_text(raw) == expected, raw


def test_spark_stage_matches_python_on_examples_and_real_tweets(spark, sample_csv: Path) -> None:
    real = [line.split('","', 1)[1].rstrip('"\n') for line in sample_csv.open(encoding="utf-8").readlines()[::400]]
    texts = list(CASES) + real
    df = spark.createDataFrame([(t,) for t in texts], ["text"])
    got = [r[CLEAN_TEXT_COL] for r in cleaning_stage().transform(df).collect()]
    assert got == [clean_text(t) for t in texts]
    assert got[: len(CASES)] == list(CASES.values())


def test_null_text_becomes_empty(spark) -> None:
    df = spark.createDataFrame([(None,)], "text string")
    assert cleaning_stage().transform(df).first()[CLEAN_TEXT_COL] == ""
