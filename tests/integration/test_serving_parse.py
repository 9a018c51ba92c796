"""Parsing serving input: every bad file, row or message becomes a quarantine record with a reason."""

from __future__ import annotations

from datetime import datetime

from sentiment_mlops.serving.parsing import parse_csv_file, parse_kafka_message, parse_label, parse_timestamp

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


def test_serving_job_bad_arguments_are_one_line_errors(capsys) -> None:  # type: ignore[no-untyped-def]
    from sentiment_mlops.backends.local.mlflow_server import free_port
    from sentiment_mlops.serving import job as serving_job

    assert serving_job.main(["--output-path", "gs://o", "--checkpoint", "gs://c"]) == 2
    assert capsys.readouterr().err.strip() == "ERROR: --input-path is required with --source-type file"
    dead = f"http://127.0.0.1:{free_port()}"
    argv = ["--input-path", "gs://i", "--output-path", "gs://o", "--checkpoint", "gs://c", "--mlflow-uri", dead]
    assert serving_job.main(argv) == 2
    assert capsys.readouterr().err.strip().startswith(f"ERROR: MLflow tracking server unreachable at {dead}")
    assert serving_job.main([*argv[:6], "--batch-interval-seconds", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
