"""A held-out-topic evaluation split: tweets about words the model never saw in training.

The random test split shares topics with training (same days, same hashtags, same people), so it
flatters a model that memorises topic words. The hidden hand-labelled set the project is judged
on has topics absent from the sample. This split imitates it: among the mid-frequency words of
the corpus (in at least MIN_DF tweets and at most MAX_DF_FRACTION of them: topic words, not function
words nor one-off typos), one word in `every` is picked by a stable hash (crc32) and declared a held-out
topic; every tweet that contains one of them leaves training and forms the grouped split.

On the 100k sample (every=9, ~21% of rows) the baseline LinearSVC scored 0.765 on the random
split, 0.739 on this split, and 0.75 on the hidden out-of-domain set: the grouped split is the
closer predictor, so the training job picks `best` and gates promotion on it (README, "Model
quality"). Words are read with the cleaning v1 rules and a plain word regex, independent of the
feature pipeline under test, so changing features does not move the split.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sentiment_mlops.features.text_cleaning import CLEANING_RULES_V1, RAW_TEXT_COL, cleaning_expr

MIN_DF = 3
# Relative, so the split keeps its size on any sample: 200 tweets of the 100k sample. A fixed 200
# made nearly every word of a 4,000-row run a "topic" and held out 47% of its rows (12% now).
MAX_DF_FRACTION = 0.002
DEFAULT_EVERY = 9  # about 21% of the 100k sample lands in the grouped split
_ROW_ID = "_topic_row_id"


def _words(df: DataFrame) -> DataFrame:
    """(row id, distinct word) pairs: words of 3+ letters from the v1-cleaned text."""
    text = F.expr(cleaning_expr(RAW_TEXT_COL, CLEANING_RULES_V1))
    words = F.array_distinct(F.regexp_extract_all(text, F.lit("([a-z]{3,})"), 1))
    return df.select(_ROW_ID, F.explode(words).alias("word"))


def split_by_topic(df: DataFrame, every: int) -> tuple[DataFrame, DataFrame]:
    """(rest, grouped): `grouped` holds the tweets with a held-out topic word, `rest` the others.

    `every` <= 0 disables the split (grouped is empty). Identical tweets share a row id (a hash of
    label and text), so duplicates never straddle the two sides.
    """
    if every <= 0:
        return df, df.limit(0)
    with_id = df.withColumn(_ROW_ID, F.xxhash64(F.col(RAW_TEXT_COL), F.col("label")))
    words = _words(with_id)
    max_df = with_id.agg(F.greatest(F.lit(MIN_DF), F.round(F.count(F.lit(1)) * MAX_DF_FRACTION)).alias("max_df"))
    held = (
        words.groupBy("word")
        .agg(F.countDistinct(_ROW_ID).alias("df"))
        .crossJoin(F.broadcast(max_df))
        .where((F.col("df") >= MIN_DF) & (F.col("df") <= F.col("max_df")) & (F.crc32(F.col("word")) % every == 0))
        .select("word")
    )
    grouped_ids = words.join(F.broadcast(held), "word").select(_ROW_ID).distinct()
    grouped = with_id.join(grouped_ids, _ROW_ID, "left_semi").drop(_ROW_ID)
    rest = with_id.join(grouped_ids, _ROW_ID, "left_anti").drop(_ROW_ID)
    return rest, grouped
