"""The file source: CSV files dropped into a folder, read by Spark's own CSV reader and parsed with
column expressions (see `parsing` for the rules).

Decisions:

* Spark's CSV reader in PERMISSIVE mode, multiLine (a quoted field may hold a newline), header off, a
  fixed schema of WIDTH string columns and `_raw` as the corrupt-record column. Every row has fewer tokens
  than WIDTH, so the reader treats it as "malformed" and hands over its raw text: that is the `raw` kept
  for quarantined rows. A row is never dropped by the reader; only blank lines are (they are not records).
* The header is decided per file from its first row, on the driver (`file_layout`): a first row naming a
  `text` column is a header (columns in any order: id, text, label, timestamp; others ignored); a first
  row of 6 fields starting with a polarity 0/2/4 is a headerless Sentiment140 file
  (polarity,id,date,query,user,text); 2 fields starting with a polarity and then non-numeric text is
  polarity,text; anything else is headerless text[,label] (the original project's `I love this!,1`). A
  first row of column-like names without `text` is a header without a text column: its rows are
  quarantined, each with that reason.
* Fewer fields than the header: the missing trailing fields are null (the label and timestamp are
  optional), the row is scored if it has text. More fields than the header: quarantined (an unquoted
  comma in the text would otherwise shift the label).
* `source_row` is the 1-based record number in the file (the header, when there is one, is record 1;
  blank lines do not count). It comes from `monotonically_increasing_id`, whose lower 33 bits are the row
  number within a Spark partition: the serving session sets `spark.sql.files.openCostInBytes` above the
  largest split, so each file is a partition of its own (multiLine files are never split).
* A zero-byte (or blank-only) file and a header-only file hold no record. They are counted in the batch
  metrics (`empty_files`) and named in a warning; the file list of the batch comes from the file
  source's own log in the checkpoint (`sources/0/<batch_id>`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.readwriter import DataFrameReader
from pyspark.sql.streaming import DataStreamReader

from sentiment_mlops.core.storage import join_uri
from sentiment_mlops.serving import parsing
from sentiment_mlops.serving.column_cache import once_per_jvm

log = logging.getLogger(__name__)
Reader = TypeVar("Reader", DataStreamReader, DataFrameReader)

WIDTH = 16  # most fields a row may have; a header with more columns is read as its first 16
TOKENS = [f"_c{i}" for i in range(WIDTH)]
CSV_SCHEMA = ", ".join(f"{c} string" for c in TOKENS) + ", _raw string"
ONE_FILE_PER_PARTITION = {"spark.sql.files.openCostInBytes": str(1 << 30)}  # see the module docstring
ROW_BITS = (1 << 33) - 1
POLARITIES = {"0", "2", "4"}
HEADER_NAME = re.compile(r"^[a-z_][a-z0-9_ .-]{0,40}$")
KNOWN_COLUMNS = {"id", "text", "label", "timestamp", "polarity", "sentiment", "target", "date", "user", "query"}


def csv_stream(reader: Reader, max_files_per_trigger: int | None = None) -> Reader:  # pragma: no mutate block
    """`spark.readStream` (or `spark.read`, for tests and backfills) set up to read dropped `*.csv`
    files as described in the module docstring."""
    reader = (
        reader.format("csv")
        .schema(CSV_SCHEMA)
        .option("header", "false")
        .option("mode", "PERMISSIVE")
        .option("multiLine", "true")
        .option("columnNameOfCorruptRecord", "_raw")
        .option("nullValue", "\u0000")  # keep a quoted "" as an empty string
        .option("escape", '"')  # RFC 4180: a quote inside a quoted field is doubled (Spark's default is \\)
        .option("encoding", "UTF-8")
        .option("pathGlobFilter", "*.csv")  # `x.csv.tmp` (a copy in progress) is not picked up
        .option("recursiveFileLookup", "true")
    )
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    return reader


def with_file_columns(df: DataFrame) -> DataFrame:  # pragma: no mutate block
    """The reader's rows plus the file they came from and its modification time (the arrival time)."""
    return df.select(
        *TOKENS,
        "_raw",
        F.col("_metadata.file_path").alias("path"),
        F.col("_metadata.file_modification_time").alias("modified"),
    )


@dataclass(frozen=True)
class FileLayout:
    """Where each field is in the rows of one file (-1: absent)."""

    kind: str  # header | no_text_header | sentiment140 | polarity_text | text_label
    text: int
    label: int = -1
    id: int = -1
    timestamp: int = -1
    width: int = 2
    has_header: bool = False


def file_layout(first_row: list[str | None]) -> FileLayout:
    """Classify a file by its first row (the reader's tokens, null for an empty trailing field)."""
    tokens = list(first_row)
    while tokens and tokens[-1] is None:
        tokens.pop()
    names = [(t or "").strip().lstrip("\ufeff").strip().lower() for t in tokens]
    width = max(len(tokens), 1)
    if "text" in names:
        pos = {name: names.index(name) for name in ("text", "label", "id", "timestamp") if name in names}
        return FileLayout(
            "header", pos["text"], pos.get("label", -1), pos.get("id", -1), pos.get("timestamp", -1), width, True
        )
    if len(names) == 6 and names[0] in POLARITIES:
        return FileLayout("sentiment140", text=5, label=0, id=1, width=6)
    if len(names) == 2 and names[0] in POLARITIES and not _is_number(names[1]):
        return FileLayout("polarity_text", text=1, label=0, width=2)
    if len(names) > 1 and all(HEADER_NAME.match(n) for n in names) and KNOWN_COLUMNS & set(names):
        return FileLayout("no_text_header", text=-1, width=width, has_header=True)
    return FileLayout("text_label", text=0, label=1, width=2)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _row_number(df: DataFrame) -> DataFrame:  # pragma: no mutate block
    return df.withColumn("_idx", F.monotonically_increasing_id().bitwiseAND(F.lit(ROW_BITS)))


def file_summaries(rows: DataFrame) -> list[tuple[str, int, list[str | None]]]:  # pragma: no mutate block
    """(path, rows, first row tokens) of each file with at least one row; one small job."""
    first = F.min_by(F.array(*TOKENS), F.col("_idx"))
    out = rows.groupBy("path").agg(F.count(F.lit(1)).alias("n"), first.alias("first")).collect()
    return [(r["path"], int(r["n"]), list(r["first"])) for r in out]


def _layout_map(layouts: dict[str, FileLayout]) -> Column:  # pragma: no mutate block
    entries: list[Column] = []
    for path, layout in layouts.items():
        entries += [F.lit(path), _layout_struct(layout)]
    return F.create_map(*entries)


@once_per_jvm
def _layout_struct(layout: FileLayout) -> Column:  # pragma: no mutate block
    return F.struct(
        F.lit(layout.kind).alias("kind"), F.lit(layout.text).alias("text"), F.lit(layout.label).alias("label"),
        F.lit(layout.id).alias("id"), F.lit(layout.timestamp).alias("timestamp"),
        F.lit(layout.width).alias("width"), F.lit(layout.has_header).alias("has_header"),
    )  # fmt: skip


def parse_file_rows(rows: DataFrame, layouts: dict[str, FileLayout]) -> DataFrame:  # pragma: no mutate block
    """Reader rows with `_idx` -> PARSED_COLUMNS, one row per record (header rows dropped)."""
    if not layouts:  # typed like a parse, so a batch of empty files goes through the same write
        none = F.lit(None).cast("string")
        return parsing.finish(
            rows.limit(0), id=none, text=none, label=none, timestamp=none, arrival=F.lit(None).cast("timestamp"),
            source=none, source_row=F.lit(None).cast("bigint"), raw=none, error=none,
        )  # fmt: skip
    not_a_header, tokens, fields, selects = _file_row_columns()
    df = (
        rows.withColumn("_layout", _layout_map(layouts)[F.col("path")])
        .filter(not_a_header)
        .withColumn("_tokens", tokens)
        .withColumn("_fields", fields)
    )
    for columns in selects:
        df = df.select(*columns)
    return df


@once_per_jvm
def _file_row_columns() -> tuple[Column, Column, Column, list[list[Column]]]:  # pragma: no mutate block
    """The expressions of parse_file_rows over the reader's rows and `_layout` (the file's FileLayout):
    (the header-row filter, `_tokens`, `_fields`, the selects that give PARSED_COLUMNS)."""
    not_a_header = ~((F.col("_idx") == 0) & F.col("_layout.has_header"))
    tokens = F.array(*TOKENS)
    fields = F.greatest(F.lit(0), *[F.when(F.col(c).isNotNull(), F.lit(i + 1)) for i, c in enumerate(TOKENS)])
    lay = F.col("_layout")
    expected = F.when(lay["has_header"], F.lit("header has ")).otherwise(F.lit("expected at most "))
    error = F.when(lay["kind"] == "no_text_header", F.lit("header has no 'text' column")).when(
        F.col("_fields") > lay["width"],
        F.concat(F.col("_fields").cast("string"), F.lit(" fields, "), expected, lay["width"].cast("string")),
    )
    text = F.get(F.col("_tokens"), lay["text"])
    first_row = F.col("_idx") == 0
    text = F.when(first_row, F.regexp_replace(text, "^\ufeff", "")).otherwise(text)  # a byte-order mark
    raw = F.coalesce(F.col("_raw"), F.concat_ws(",", F.col("_tokens")))
    selects = parsing.finish_selects(
        id=F.get(F.col("_tokens"), lay["id"]),
        text=text,
        label=F.get(F.col("_tokens"), lay["label"]),
        timestamp=F.get(F.col("_tokens"), lay["timestamp"]),
        arrival=F.col("modified"),
        source=F.substring_index(F.col("path"), "/", -1),
        source_row=F.col("_idx") + 1,
        raw=F.regexp_replace(raw, "[\r\n]+$", ""),
        error=error,
    )
    return not_a_header, tokens, fields, selects


@dataclass
class FileBatch:
    """A micro-batch of files: its parsed rows and the files that held no record."""

    parsed: DataFrame
    empty_files: list[str]
    cached: DataFrame


def parse_file_batch(raw: DataFrame, batch_files: list[str] | None = None) -> FileBatch:  # pragma: no mutate block
    """The reader's rows of one micro-batch (`with_file_columns`) -> FileBatch. `batch_files`, the paths
    the source planned for the batch, lets zero-byte files be reported; None skips that check. The rows
    are cached (`FileBatch.cached`; the caller unpersists it): read once for the per-file summary, then
    by the predictions and the quarantine."""
    rows = _row_number(raw).cache()
    summaries = file_summaries(rows)
    layouts = {path: file_layout(first) for path, _, first in summaries}
    header_only = [p for p, n, _ in summaries if n == 1 and layouts[p].has_header]
    seen = {_norm(p) for p, _, _ in summaries}
    zero = [p for p in batch_files or [] if _norm(p) not in seen]
    empty = sorted(header_only + zero)
    for path in empty:
        log.warning("file %s holds no record (%s)", path, "header only" if path in header_only else "empty")
    return FileBatch(parse_file_rows(rows, layouts), empty, rows)


def _norm(path: str) -> str:
    return unquote(re.sub(r"^file:/+", "file:/", path))


def planned_files(spark: SparkSession, checkpoint: str, batch_id: int) -> list[str] | None:  # pragma: no mutate block
    """The files the file source planned for `batch_id`, from its log in the checkpoint; None when the
    log cannot be read (the empty-file count is then skipped, never the batch)."""
    from sentiment_mlops.core.spark_session import _fs_and_path

    try:
        for name in (str(batch_id), f"{batch_id}.compact"):
            fs, path = _fs_and_path(spark, join_uri(checkpoint, "sources", "0", name))
            if fs.exists(path):
                return [e["path"] for e in _log_entries(spark, fs, path) if int(e.get("batchId", -1)) == batch_id]
    except Exception as exc:  # noqa: BLE001 - a report, not a reason to fail the batch
        log.warning("could not read the file source log for batch %d: %s", batch_id, exc)
    return None


def _log_entries(spark: SparkSession, fs: Any, path: Any) -> list[dict[str, Any]]:  # pragma: no mutate block
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    stream = fs.open(path)
    try:
        text = str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()
    return [json.loads(line) for line in text.splitlines()[1:] if line.strip()]  # line 0: the log version
