"""Parsing serving input (serving.parsing, plain Python): every bad file, row or message becomes a
quarantine record with a reason; the rules are checked at their boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from sentiment_mlops.serving.parsing import (
    MAX_TEXT_CHARS,
    PARSED_SCHEMA,
    parse_csv_file,
    parse_file_batch,
    parse_kafka_batch,
    parse_kafka_message,
    parse_label,
    parse_timestamp,
    records_to_arrow,
)

MODIFIED = datetime(2026, 11, 29, 12, 0, 0)


def _parse(content: bytes) -> list[tuple]:
    return list(parse_csv_file("gs://b/in/drop.csv", content, MODIFIED))


def test_good_csv_rows_with_optional_columns_in_any_order() -> None:
    rows = _parse(b'label,text,id,timestamp\n4,"I love it, really",a1,2026-11-29T10:00:00Z\n0,so sad,,\n')
    assert [(r[0], r[1], r[2], r[4], r[5], r[7]) for r in rows] == [
        ("a1", "I love it, really", 1, "drop.csv", 2, None),
        (None, "so sad", 0, "drop.csv", 3, None),
    ]
    assert rows[0][3] == datetime(2026, 11, 29, 10, 0, 0)
    assert rows[1][3] == MODIFIED  # no timestamp column value: the file's drop time


def test_text_only_file_is_enough() -> None:
    assert [r[1] for r in _parse(b"text\nhello\n\nworld\n")] == ["hello", "world"]


def test_bad_rows_are_quarantined_with_reasons_and_good_rows_kept() -> None:
    rows = _parse(b"id,text\n1,\n2,fine\n3,too,many\n4,   \n")
    assert [(r[5], r[7]) for r in rows] == [
        (2, "empty text"),
        (3, None),
        (4, "3 fields, header has 2"),
        (5, "empty text"),
    ]
    assert rows[2][6] == "3,too,many"  # the raw row is kept for replay by hand


def test_whole_file_problems() -> None:
    assert _parse(b"")[0][7] == "empty file"
    assert _parse(b"id,body\n1,x\n")[0][7] == "header has no 'text' column"
    assert "not UTF-8" in _parse("text\ncaf\xe9\n".encode("latin-1"))[0][7]
    assert list(parse_csv_file("x.csv", None, None))[0][7] == "unreadable file"


def test_kafka_messages() -> None:
    ok = parse_kafka_message(b'{"text": "great", "id": 7, "timestamp": 1764417600000}', "t", 1, 42, None)
    assert ok[:3] == ("7", "great", None) and ok[4:6] == ("t/1/42", 42) and ok[7] is None
    assert ok[3] == datetime(2025, 11, 29, 12, 0, 0)
    assert "unparseable JSON" in parse_kafka_message(b"{not json", "t", 0, 1, None)[7]
    assert "undecodable bytes" in parse_kafka_message(b"\xff\xfe\x00", "t", 0, 2, None)[7]
    assert parse_kafka_message(b'{"id": 1}', "t", 0, 3, None)[7] == "missing text"
    assert parse_kafka_message(b'{"text": 5}', "t", 0, 4, None)[7] == "text is not a string"
    assert parse_kafka_message(b"[1, 2]", "t", 0, 5, None)[7] == "JSON is not an object"
    assert parse_kafka_message(None, "t", 0, 6, None)[7] == "empty message (null value)"


def test_labels_and_timestamps() -> None:
    assert [parse_label(v) for v in ("0", "1", "4", "2", "x", "", None)] == [0, 1, 1, None, None, None, None]
    assert parse_timestamp("1764417600") == datetime(2025, 11, 29, 12, 0, 0)
    assert parse_timestamp("yesterday") is None


@pytest.mark.parametrize(("length", "quarantined"), [(9_999, False), (10_000, False), (10_001, True)])
def test_texts_longer_than_10000_characters_are_quarantined(length: int, quarantined: bool) -> None:
    assert MAX_TEXT_CHARS == 10_000
    text = "a" * length
    row = _parse(f"id,text\nx1,{text}\n".encode())[0]
    message = parse_kafka_message(f'{{"text": "{text}"}}'.encode(), "t", 0, 9, None)
    for record in (row, message):
        if quarantined:
            assert record[1] is None and record[7] == "text longer than 10000 characters"
            assert len(record[6]) == 2000  # the raw input is kept, cut to a readable size
        else:
            assert record[1] == text and record[7] is None and record[6] is None


def test_quarantined_kafka_raw_values_are_cut_to_2000_characters() -> None:
    long_garbage = b"{" + b"x" * 5000
    assert len(parse_kafka_message(long_garbage, "t", 0, 1, None)[6]) == 2000
    assert parse_kafka_message(b"\xff" * 3000, "t", 0, 2, None)[6] == "ff" * 2000
    assert parse_kafka_message(b"[" + b"1," * 2000 + b"1]", "t", 0, 3, None)[6] == ("[" + "1," * 2000)[:2000]


def test_record_fields_from_a_kafka_message() -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5)
    rec = parse_kafka_message(b'{"text": "hi", "id": "", "label": "4"}', "tweets", 3, 17, ts)
    assert rec == (None, "hi", 1, ts, "tweets/3/17", 17, None, None)
    null_id = parse_kafka_message(b'{"text": "hi", "id": null}', "tweets", 0, 1, None)
    assert null_id[0] is None and null_id[3] is None


def test_csv_file_with_a_byte_order_mark_and_crlf_lines() -> None:
    rows = _parse("\ufeffID,Text\r\n1,hello\r\n".encode())
    assert [(r[0], r[1], r[5]) for r in rows] == [("1", "hello", 2)]


def test_unparseable_csv_rows_count_their_line_and_the_stream_goes_on() -> None:
    rows = _parse(b'text,id\n"a"b"c\n')
    assert rows and all(r[4] == "drop.csv" for r in rows)


def test_file_problems_name_the_file_and_keep_the_raw_start() -> None:
    bad = _parse(b"text\n\xe9" + b"x" * 3000)[0]
    assert bad[4:6] == ("drop.csv", 0) and len(bad[6]) == 2000
    assert "at 5" in bad[7]
    header = _parse(b"id,body\n1,x\n")[0]
    assert header[5:7] == (1, "id,body")
    unreadable = list(parse_csv_file("gs://b/in/x.csv", None, None))[0]
    assert unreadable[4:7] == ("x.csv", 0, "gs://b/in/x.csv")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1764417600, datetime(2025, 11, 29, 12, 0, 0)),  # epoch seconds
        (1764417600000, datetime(2025, 11, 29, 12, 0, 0)),  # epoch milliseconds
        (99_999_999_999, datetime(5138, 11, 16, 9, 46, 39)),  # largest value read as seconds
        (100_000_000_001, datetime(1973, 3, 3, 9, 46, 40, 1000)),  # above 1e11: milliseconds
        ("2026-11-29T10:00:00Z", datetime(2026, 11, 29, 10, 0, 0)),
        ("2026-11-29T12:00:00+02:00", datetime(2026, 11, 29, 10, 0, 0)),  # converted to UTC
        (" 2026-11-29T10:00:00 ", datetime(2026, 11, 29, 10, 0, 0)),  # naive: kept as UTC
        ("", None),
        (None, None),
        ("1e400", None),
        ([1], None),
    ],
)
def test_timestamps(value: object, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected


def test_timestamps_are_naive_utc() -> None:
    parsed = parse_timestamp(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5))).isoformat())
    assert parsed == datetime(2025, 12, 31, 19, 0, 0) and parsed.tzinfo is None
    assert parse_timestamp(0) == datetime.fromtimestamp(0, tz=UTC).replace(tzinfo=None)


@pytest.mark.parametrize(("value", "label"), [(0, 0), (1, 1), (4, 1), ("4.0", 1), (2, None), (3, None), (-1, None)])
def test_label_values(value: object, label: int | None) -> None:
    assert parse_label(value) == label


class ArrowFrame:
    """What parse_file_batch/parse_kafka_batch need of a DataFrame: `select` then `mapInArrow`, here run
    in this process on real Arrow batches, as Spark runs the function on an executor."""

    def __init__(self, *batches: pa.RecordBatch) -> None:
        self.batches = batches
        self.selected: tuple[str, ...] = ()

    def select(self, *columns: str) -> ArrowFrame:
        self.selected = columns
        self.batches = tuple(b.select(list(columns)) for b in self.batches)
        return self

    def mapInArrow(self, function: Any, schema: Any) -> list[dict[str, Any]]:  # noqa: N802 - Spark's name
        assert schema == PARSED_SCHEMA
        out = list(function(iter(self.batches)))
        assert all(b.schema == records_to_arrow([]).schema for b in out)
        return [row for b in out for row in b.to_pylist()]


def test_file_batches_become_parsed_rows_in_arrow() -> None:
    files = pa.RecordBatch.from_pydict(
        {
            "path": ["gs://b/in/a.csv", "gs://b/in/b.csv", "gs://b/in/c.csv"],
            "modificationTime": pa.array(
                [datetime(2026, 11, 29, 13, 0, tzinfo=timezone(timedelta(hours=1)))] * 3, pa.timestamp("us", "+01:00")
            ),
            "length": [1, 2, 3],
            "content": [b"text\nhello\nworld\n", b"", None],
        }
    )
    frame = ArrowFrame(files)
    rows = parse_file_batch(frame)  # type: ignore[arg-type]
    assert frame.selected == ("path", "modificationTime", "content")
    assert [(r["source"], r["source_row"], r["text"], r["error"]) for r in rows] == [
        ("a.csv", 2, "hello", None),
        ("a.csv", 3, "world", None),
        ("b.csv", 0, None, "empty file"),
        ("c.csv", 0, None, "unreadable file"),
    ]
    assert rows[0]["event_timestamp"] == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # the drop time, in UTC


def test_kafka_batches_become_parsed_rows_in_arrow() -> None:
    messages = pa.RecordBatch.from_pydict(
        {
            "key": [None, None],
            "value": [b'{"text": "great", "id": 1, "label": 4}', b"nope"],
            "topic": ["tweets", "tweets"],
            "partition": pa.array([2, 2], pa.int32()),
            "offset": pa.array([10, 11], pa.int64()),
            "timestamp": pa.array([datetime(2026, 1, 1, 12, 0, tzinfo=UTC)] * 2, pa.timestamp("us", "UTC")),
        }
    )
    frame = ArrowFrame(messages, messages.slice(1))
    rows = parse_kafka_batch(frame)  # type: ignore[arg-type]
    assert frame.selected == ("value", "topic", "partition", "offset", "timestamp")
    assert [(r["id"], r["text"], r["label"], r["source"], r["source_row"], r["error"]) for r in rows] == [
        ("1", "great", 1, "tweets/2/10", 10, None),
        (None, None, None, "tweets/2/11", 11, "unparseable JSON: Expecting value"),
        (None, None, None, "tweets/2/11", 11, "unparseable JSON: Expecting value"),
    ]
    assert rows[0]["event_timestamp"] == datetime(2026, 1, 1, 12, 0, tzinfo=UTC) and rows[1]["raw"] == "nope"


def test_records_to_arrow_keeps_every_field_and_converts_times_to_naive_utc() -> None:
    aware = datetime(2026, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    records = [
        ("1", "hi", 1, aware, "f.csv", 2, None, None),
        (None, None, None, None, "t/0/5", 5, "raw", "bad"),
        ("3", "yo", 0, datetime(2026, 6, 1, 9, 0), "f.csv", 4, None, None),
    ]
    batch = records_to_arrow(records)
    assert batch.schema.names == [f.name for f in PARSED_SCHEMA.fields]
    assert batch.num_rows == 3
    assert [tuple(r.values()) for r in batch.to_pylist()] == [
        ("1", "hi", 1, datetime(2026, 6, 1, 12, 0, tzinfo=UTC), "f.csv", 2, None, None),
        (None, None, None, None, "t/0/5", 5, "raw", "bad"),
        ("3", "yo", 0, datetime(2026, 6, 1, 9, 0, tzinfo=UTC), "f.csv", 4, None, None),  # naive: already UTC
    ]
    empty = records_to_arrow([])
    assert empty.num_rows == 0 and empty.schema == batch.schema


def test_whole_file_problem_records_in_full() -> None:
    assert _parse(b"") == [(None, None, None, None, "drop.csv", 0, "", "empty file")]
    assert _parse(b"id,body\n1,x\n") == [
        (None, None, None, None, "drop.csv", 1, "id,body", "header has no 'text' column")
    ]
    huge_header = b"text," + b"h" * 200_000 + b"\nx,y\n"
    bad_header = _parse(huge_header)
    assert len(bad_header) == 1
    assert bad_header[0][4:6] == ("drop.csv", 0) and bad_header[0][6] == huge_header.decode()[:2000]
    assert bad_header[0][7].startswith("unparseable CSV header: field larger than field limit")


def test_an_unparseable_row_is_quarantined_and_the_rows_after_it_are_read() -> None:
    rows = _parse(b"text\nfirst\n" + b"x" * 200_000 + b"\nlast\n")
    assert [(r[1], r[5], r[6], r[7]) for r in rows] == [
        ("first", 2, None, None),
        (None, 3, "", "unparseable CSV row: field larger than field limit (131072)"),
        ("last", 4, None, None),
    ]
    assert all(r[4] == "drop.csv" for r in rows)


def test_rows_of_blank_fields_are_skipped_and_quoted_newlines_kept() -> None:
    rows = _parse(b'text,id\n  ,  \n"line one\r\nline two",7\n')
    assert [(r[0], r[1], r[5]) for r in rows] == [("7", "line one\r\nline two", 3)]


def test_quarantined_csv_rows_keep_the_row_as_csv() -> None:
    rows = _parse(b'id,text\n1,"a, b",extra\n')
    assert rows == [(None, None, None, None, "drop.csv", 2, '1,"a, b",extra', "3 fields, header has 2")]
