"""Turning raw serving input into records or quarantine rows, in the JVM, one rule set for both sources.

Decisions:

* Total: every input record ends as exactly one row of PARSED_COLUMNS, either with `error` null (it is
  scored) or with the reason it is quarantined. Every rule is a Spark column expression built from
  `try_cast`-style conversions, so no value (a label of `1e400`, a timestamp in year 1, a number of
  5,000 digits, JSON nested 2,000 deep) can raise and fail a batch. The per-file header rule of the file
  source is the one piece of Python: it runs on the driver, on the first row of each file only
  (`file_source.file_layout`).
* Labels: 0/1, or Sentiment140's 0/4 (4 -> 1). Anything else, including neutral 2, `inf`, `NaN`, `1e400`
  and text, is "no label" (null), not an error: the label is optional.
* Timestamps: ISO-8601 (with or without an offset) or epoch seconds / milliseconds (a number above 1e11 is
  milliseconds). Anything unparseable or outside years 1900-2199 falls back to the arrival time (the
  file's modification time or the Kafka message time): a row is never lost for its timestamp.
* Text: missing or blank -> quarantined ("empty text", or "missing text" for a JSON message without the
  key); longer than MAX_TEXT_CHARS -> quarantined (not a tweet, and slow for the regexes).
* Bytes: CSV files are decoded as UTF-8 with replacement; a row that holds U+FFFD (an invalid byte
  sequence, or a literal replacement character) is quarantined on its own, the other rows of the file are
  scored. A Kafka message that is not valid UTF-8 is quarantined whole (its raw value kept as hex). A lone
  surrogate escape in JSON (`"\\ud800"`) is decoded by Spark's JSON reader as `?`.
* A JSON `text` that is a number or an object is read as its JSON text (Spark's JSON reader does so for a
  string field); JSON that is malformed, not an object, nested too deep or holds a number too long for the
  parser is quarantined as "unparseable JSON".
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sentiment_mlops.serving.column_cache import once_per_jvm
from sentiment_mlops.serving.spark_compat import is_valid_utf8, try_cast

MAX_TEXT_CHARS = 10_000
RAW_CHARS = 2_000  # quarantined raw input is cut to this length
EARLIEST_TS = "1900-01-01 00:00:00"
LATEST_TS = "2200-01-01 00:00:00"
REPLACEMENT_CHAR = "\ufffd"

# What the parsers return: the record, where it came from, and why it is quarantined (null: it is scored).
# `arrival_timestamp` (file modification time, message time) measures serving latency; it is not written.
PARSED_COLUMNS = ("id", "text", "label", "event_timestamp", "source", "source_row", "raw", "error", "arrival_timestamp")

KAFKA_JSON_SCHEMA = "id string, text string, label string, timestamp string, _corrupt string"
KAFKA_JSON_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"}


def label_from(value: Column) -> Column:
    """A string column -> int label 0/1, or null (no label) for anything but 0, 1 and 4."""
    number = try_cast(value, "double")
    return F.when(number == 0, F.lit(0)).when((number == 1) | (number == 4), F.lit(1)).cast("int")


def timestamp_from(value: Column, fallback: Column) -> Column:
    """A string column (ISO-8601, epoch seconds or milliseconds) -> timestamp within years 1900-2199,
    else `fallback`."""
    number = try_cast(value, "double")
    seconds = F.when(number > 1e11, number / 1000).otherwise(number)
    in_range = seconds.between(-2_208_988_800, 7_258_118_400)  # 1900-01-01 .. 2200-01-01
    from_number = F.when(in_range, F.timestamp_micros(try_cast(seconds * 1_000_000, "long")))
    from_text = F.when(number.isNull(), try_cast(F.trim(value), "timestamp"))
    parsed = F.coalesce(from_number, from_text)
    sane = parsed.between(F.lit(EARLIEST_TS).cast("timestamp"), F.lit(LATEST_TS).cast("timestamp"))
    return F.when(sane, parsed).otherwise(fallback)


def text_error(text: Column, missing: str = "empty text") -> Column:
    """Why a text cannot be scored (null when it can): missing, blank, too long or with bad bytes."""
    return (
        F.when(text.isNull(), F.lit(missing))
        .when(F.trim(text) == "", F.lit("empty text"))
        .when(F.length(text) > MAX_TEXT_CHARS, F.lit(f"text longer than {MAX_TEXT_CHARS} characters"))
        .when(F.instr(text, REPLACEMENT_CHAR) > 0, F.lit("not UTF-8: invalid bytes decoded as U+FFFD"))
    )


FIELDS = ("id", "text", "label", "timestamp", "arrival", "source", "source_row", "raw", "error")


def finish(df: DataFrame, **fields: Column) -> DataFrame:
    """The common tail of both parsers: string fields and a first error -> PARSED_COLUMNS. The fields
    are those of `finish_selects`; `error` is the source-specific reason (null when none), and the
    text rules apply after it."""
    for columns in finish_selects(**fields):
        df = df.select(*columns)
    return df


def finish_selects(
    *,
    id: Column,
    text: Column,
    label: Column,
    timestamp: Column,
    arrival: Column,
    source: Column,
    source_row: Column,
    raw: Column,
    error: Column,
) -> list[list[Column]]:
    """`finish` as the selects to apply in turn, for parsers that build them once. Each field and the
    reason get a name first, so every expression appears once in the plan: nested copies of the
    reason in each column made analysing the plan cost a fifth of a second per batch."""
    given = dict(
        id=id, text=text, label=label, timestamp=timestamp, arrival=arrival, source=source,
        source_row=source_row, raw=raw, error=error,
    )  # fmt: skip
    named = [given[name].alias(f"_p_{name}") for name in FIELDS]
    f = {name: F.col(f"_p_{name}") for name in FIELDS}
    with_reason = [*f.values(), F.coalesce(f["error"], text_error(f["text"])).alias("_p_reason")]
    reason = F.col("_p_reason")
    ok = reason.isNull()
    parsed = [
        F.when(ok & (F.trim(f["id"]) != ""), f["id"]).alias("id"),
        F.when(ok, f["text"]).alias("text"),
        F.when(ok, label_from(f["label"])).alias("label"),
        F.when(ok, timestamp_from(f["timestamp"], f["arrival"])).alias("event_timestamp"),
        f["source"].cast("string").alias("source"),
        f["source_row"].cast("bigint").alias("source_row"),
        F.when(~ok, F.substring(f["raw"], 1, RAW_CHARS)).alias("raw"),
        reason.alias("error"),
        f["arrival"].cast("timestamp").alias("arrival_timestamp"),
    ]
    return [named, with_reason, parsed]


def parse_kafka_batch(messages: DataFrame) -> DataFrame:
    """Kafka rows (value, topic, partition, offset, timestamp) -> PARSED_COLUMNS, one row per message.

    `source` is `topic/partition/offset` and `source_row` the offset; JSON goes through `from_json` with
    a fixed schema (no Python)."""
    df = messages
    for columns in _kafka_selects():
        df = df.select(*columns)
    return df


@once_per_jvm
def _kafka_selects() -> list[list[Column]]:
    """The selects of parse_kafka_batch, in turn: decoding, then finish_selects."""
    as_text = F.col("value").cast("string")
    valid = is_valid_utf8("value")
    decoded = [
        F.col(c) for c in ("value", "topic", "partition", "offset", "timestamp")
    ] + [
        F.when(valid, F.from_json(as_text, KAFKA_JSON_SCHEMA, KAFKA_JSON_OPTIONS)).alias("j"),
        valid.alias("valid"),
    ]  # fmt: skip
    j = F.col("j")
    error = (
        F.when(F.col("value").isNull(), F.lit("empty message (null value)"))
        .when(~F.col("valid"), F.lit("undecodable bytes: not UTF-8"))
        .when(
            j["_corrupt"].isNotNull() | j.isNull(),
            F.lit("unparseable JSON: malformed, not an object, nested too deep or a number too long"),
        )
        .when(j["text"].isNull(), F.lit("missing text"))
    )
    raw = F.when(F.col("valid"), as_text).otherwise(F.hex(F.substring(F.col("value"), 1, RAW_CHARS // 2)))
    return [decoded] + finish_selects(
        id=j["id"],
        text=j["text"],
        label=j["label"],
        timestamp=j["timestamp"],
        arrival=F.col("timestamp"),
        source=F.concat_ws("/", "topic", F.col("partition").cast("string"), F.col("offset").cast("string")),
        source_row=F.col("offset"),
        raw=raw,
        error=error,
    )
