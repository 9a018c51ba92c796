"""Cleaning is a pipeline stage, and its Python twin gives the same text as Spark."""

from __future__ import annotations

from pathlib import Path

from sentiment_mlops.features.text_cleaning import (
    CLEAN_TEXT_COL,
    CLEANING_RULES_V1,
    CLEANING_RULES_V2,
    clean_text,
    cleaner_for_sql,
    cleaning_sql,
)
from sentiment_mlops.training.model_catalog import cleaning_stage

# Rules v2, the training default (v3 adds marker tokens: V3_CASES below)
CASES = {
    "@bob I LOVE this &amp; that!!! http://t.co/xyz": "i love this and that!!!",
    "Sooooo haaappy #blessed www.example.com/page": "soo haappy blessed",
    "can't &lt;3 &quot;it&quot;": "can't 3 it",
    "  lots   of\tspace  ": "lots of space",
    "": "",
    # negation scope: up to three words, never across punctuation
    "I do NOT like this, at all": "i do not neg_like neg_this at all",
    "don't really like it much": "don't neg_really neg_like neg_it much",
    "not bad!! can't wait": "not neg_bad!! can't neg_wait",
    "nothing is good. but fine": "nothing neg_is neg_good but fine",
    "snot nothing_here know": "snot nothing neg_here neg_know",
}
# What the first rule version (no negation marking) made of the same texts: models saved with
# it stay servable by the Spark-free server.
V1_CASES = {"@bob I LOVE this &amp; that!!! http://t.co/xyz": "i love this and that!!!", "not good, no": "not good no"}


def test_python_cleaning_examples() -> None:
    for raw, expected in CASES.items():
        assert clean_text(raw, CLEANING_RULES_V2) == expected, raw


def test_spark_stage_matches_python_on_examples_and_real_tweets(spark, sample_csv: Path) -> None:
    real = [line.split('","', 1)[1].rstrip('"\n') for line in sample_csv.open(encoding="utf-8").readlines()[::400]]
    texts = list(CASES) + real
    df = spark.createDataFrame([(t,) for t in texts], ["text"])
    got = [r[CLEAN_TEXT_COL] for r in cleaning_stage(rules=CLEANING_RULES_V2).transform(df).collect()]
    assert got == [clean_text(t, CLEANING_RULES_V2) for t in texts]
    assert got[: len(CASES)] == list(CASES.values())


def test_null_text_becomes_empty(spark) -> None:
    df = spark.createDataFrame([(None,)], "text string")
    assert cleaning_stage().transform(df).first()[CLEAN_TEXT_COL] == ""


def test_first_rule_version_still_reproduced(spark) -> None:  # type: ignore[no-untyped-def]
    from pyspark.ml.feature import SQLTransformer

    statement = cleaning_sql(rules=CLEANING_RULES_V1)
    v1 = cleaner_for_sql(statement)
    assert v1 is not None and cleaner_for_sql(cleaning_sql()) is not None
    assert cleaner_for_sql(statement.replace("' and '", "' & '")) is None
    df = spark.createDataFrame([(t,) for t in V1_CASES], ["text"])
    got = [r[CLEAN_TEXT_COL] for r in SQLTransformer(statement=statement).transform(df).collect()]
    assert got == [v1(t) for t in V1_CASES] == list(V1_CASES.values())


# Rules v3: markers for shouting, emoticons, elongation and !! / ?!, which negation passes over.
V3_CASES = {
    "I LOVE this :) sooooo much!!! really?! @BOB http://t.co/X": (
        "i love zzcaps this zzemopos soo zzelong much ! zzexcl really ? zzinterro"
    ),
    "NOT good :( at all": "not zzcaps neg_good zzemoneg neg_at neg_all",
    "so sad :'( &lt;/3 ;-) xD": "so sad zzemoneg zzemoneg zzemopos xd",
    "@SOMEONE #AWESOME www.X.COM ok": "awesome ok",
    "re:design ^^ <3 <333": "re design zzemopos zzemopos zzemopos",
}


def test_rules_v3_markers_in_spark_and_python(spark, sample_csv: Path) -> None:  # type: ignore[no-untyped-def]
    from pyspark.ml.feature import SQLTransformer

    from sentiment_mlops.features.text_cleaning import CLEANING_RULES_V3

    real = [line.split('","', 1)[1].rstrip('"\n') for line in sample_csv.open(encoding="utf-8").readlines()[::200]]
    texts = list(V3_CASES) + list(CASES) + real
    statement = cleaning_sql(rules=CLEANING_RULES_V3)
    v3 = cleaner_for_sql(statement)
    assert v3 is not None
    df = spark.createDataFrame([(t,) for t in texts], ["text"])
    got = [r[CLEAN_TEXT_COL] for r in SQLTransformer(statement=statement).transform(df).collect()]
    assert got == [v3(t) for t in texts]
    assert got[: len(V3_CASES)] == list(V3_CASES.values())
    assert sum("zz" in g for g in got[len(V3_CASES) :]) > 5  # the markers occur in real tweets
