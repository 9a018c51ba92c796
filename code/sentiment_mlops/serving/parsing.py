"""Turning raw serving input (dropped CSV files, Kafka messages) into records or quarantine rows.

Parsing is plain Python run on the executors, one file or message at a time, so a bad row, a bad
file or bad bytes becomes a quarantine record with its reason instead of an exception that would
end the stream.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql.types import (
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

MAX_TEXT_CHARS = 10_000  # longer "tweets" are quarantined: they are not tweets and slow the regexes

PARSED_SCHEMA = StructType(
    [
        StructField("id", StringType(), True),
        StructField("text", StringType(), True),
        StructField("label", IntegerType(), True),
        StructField("event_timestamp", TimestampType(), True),
        StructField("source", StringType(), False),
        StructField("source_row", LongType(), False),
        StructField("raw", StringType(), True),
        StructField("error", StringType(), True),
    ]
)

Record = tuple[Any, ...]


def _record(
    source: str,
    row: int,
    *,
    id: str | None = None,
    text: str | None = None,
    label: int | None = None,
    ts: datetime | None = None,
    raw: str | None = None,
    error: str | None = None,
) -> Record:
    return (id, text, label, ts, source, row, raw, error)


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 strings, epoch seconds or milliseconds; anything else is None (not an error)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, tz=UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def parse_label(value: Any) -> int | None:
    """0/1, or Sentiment140's 0/4; anything else (including neutral 2) is no label."""
    if value is None or value == "":
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    return {0: 0, 1: 1, 4: 1}.get(number)


def _validate(source: str, row: int, fields: dict[str, Any], raw: str, default_ts: datetime | None) -> Record:
    text = fields.get("text")
    if not isinstance(text, str) or not text.strip():
        reason = "missing text" if text is None else ("empty text" if isinstance(text, str) else "text is not a string")
        return _record(source, row, raw=raw, error=reason)
    if len(text) > MAX_TEXT_CHARS:
        return _record(source, row, raw=raw[:2000], error=f"text longer than {MAX_TEXT_CHARS} characters")
    rid = fields.get("id")
    return _record(
        source,
        row,
        id=None if rid is None or rid == "" else str(rid),
        text=text,
        label=parse_label(fields.get("label")),
        ts=parse_timestamp(fields.get("timestamp")) or default_ts,
        raw=None,
    )


def parse_csv_file(path: str, content: bytes | None, modified: datetime | None) -> Iterator[Record]:
    """One dropped CSV file (header row with at least `text`) -> one record per data row."""
    name = path.rsplit("/", 1)[-1]
    if content is None:
        yield _record(name, 0, raw=path, error="unreadable file")
        return
    try:
        decoded = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield _record(
            name, 0, raw=content[:2000].decode("latin-1"), error=f"file is not UTF-8: {exc.reason} at {exc.start}"
        )
        return
    reader = csv.reader(io.StringIO(decoded, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        yield _record(name, 0, raw="", error="empty file")
        return
    except csv.Error as exc:
        yield _record(name, 0, raw=decoded[:2000], error=f"unparseable CSV header: {exc}")
        return
    if "text" not in header:
        yield _record(name, 1, raw=",".join(header), error="header has no 'text' column")
        return
    row_number = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row_number += 1
            yield _record(name, row_number, raw="", error=f"unparseable CSV row: {exc}")
            continue
        row_number += 1
        if not values or all(not v.strip() for v in values):
            continue  # blank lines are not data
        raw = _csv_line(values)
        if len(values) != len(header):
            yield _record(name, row_number, raw=raw, error=f"{len(values)} fields, header has {len(header)}")
            continue
        yield _validate(name, row_number, dict(zip(header, values, strict=True)), raw, modified)


def _csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue().rstrip("\r\n")


def parse_kafka_message(
    value: bytes | None, topic: str, partition: int, offset: int, timestamp: datetime | None
) -> Record:
    """One Kafka message `{"text": ..., "id": ..., "timestamp": ...}` -> one record."""
    source = f"{topic}/{partition}/{offset}"
    if value is None:
        return _record(source, offset, raw=None, error="empty message (null value)")
    try:
        decoded = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        return _record(source, offset, raw=bytes(value)[:2000].hex(), error=f"undecodable bytes: {exc.reason}")
    try:
        payload = json.loads(decoded)
    except json.JSONDecodeError as exc:
        return _record(source, offset, raw=decoded[:2000], error=f"unparseable JSON: {exc.msg}")
    if not isinstance(payload, dict):
        return _record(source, offset, raw=decoded[:2000], error="JSON is not an object")
    return _validate(source, offset, payload, decoded[:2000], timestamp)


@cache
def _arrow_schema():
    """PARSED_SCHEMA as Arrow (what mapInArrow must yield); built on first use on the executors."""
    import inspect

    from pyspark.sql.pandas.types import to_arrow_schema

    if "timezone" in inspect.signature(to_arrow_schema).parameters:  # Spark 4
        return to_arrow_schema(PARSED_SCHEMA, timezone="UTC")
    return to_arrow_schema(PARSED_SCHEMA)  # Spark 3.5: timestamps are always UTC there


def _utc_naive(ts: datetime | None) -> datetime | None:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts is not None and ts.tzinfo else ts


def records_to_arrow(records: list[Record]):
    """PARSED_SCHEMA records -> one Arrow batch (naive timestamps are UTC)."""
    import pyarrow as pa

    schema = _arrow_schema()
    columns: list[tuple[Any, ...]] = list(zip(*records, strict=True)) if records else [() for _ in schema]
    columns[3] = tuple(_utc_naive(ts) for ts in columns[3])
    return pa.RecordBatch.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)], schema=schema
    )


# mapInArrow, not rdd.map + createDataFrame: rows cross to Python and back in Arrow batches instead
# of one pickled Row at a time (several times faster on the Kafka path). The parsing stays per record.


def parse_file_batch(files: DataFrame) -> DataFrame:
    """binaryFile rows (path, modificationTime, content) -> PARSED_SCHEMA rows."""

    def parse(batches):
        for batch in batches:
            cols = batch.to_pydict()
            records = [
                record
                for path, modified, content in zip(cols["path"], cols["modificationTime"], cols["content"], strict=True)
                for record in parse_csv_file(path, content, _utc_naive(modified))
            ]
            yield records_to_arrow(records)

    return files.select("path", "modificationTime", "content").mapInArrow(parse, PARSED_SCHEMA)


def parse_kafka_batch(messages: DataFrame) -> DataFrame:
    """Kafka rows (value, topic, partition, offset, timestamp) -> PARSED_SCHEMA rows."""

    def parse(batches):
        for batch in batches:
            c = batch.to_pydict()
            rows = zip(c["value"], c["topic"], c["partition"], c["offset"], c["timestamp"], strict=True)
            yield records_to_arrow([parse_kafka_message(v, t, p, o, _utc_naive(ts)) for v, t, p, o, ts in rows])

    return messages.select("value", "topic", "partition", "offset", "timestamp").mapInArrow(parse, PARSED_SCHEMA)
