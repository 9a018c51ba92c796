"""Parsing serving input: every record ends as exactly one prediction row or one quarantine row with
its reason, whatever the bytes (Spark's CSV reader and from_json, the rules of serving.parsing)."""

from __future__ import annotations

import json
import string
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sentiment_mlops.serving.file_source import (
    ONE_FILE_PER_PARTITION,
    csv_stream,
    file_layout,
    parse_file_batch,
    with_file_columns,
)
from sentiment_mlops.serving.parsing import parse_kafka_batch

pytestmark = pytest.mark.integration
MESSAGE_TIME = datetime(2026, 11, 29, 12, 0, 0)


@pytest.fixture(scope="module")
def one_file_spark(spark):  # type: ignore[no-untyped-def]
    for key, value in ONE_FILE_PER_PARTITION.items():
        spark.conf.set(key, value)
    return spark


def parse_folder(spark, folder: Path) -> tuple[dict[tuple[str, int], dict], list[str]]:  # type: ignore[no-untyped-def]
    """Every *.csv file of `folder` as one batch -> ({(file, row): record}, files with no record)."""
    files = sorted(p.resolve().as_uri() for p in folder.glob("*.csv"))
    raw = with_file_columns(csv_stream(spark.read).load(str(folder)))
    batch = parse_file_batch(raw, files)
    try:
        rows = [r.asDict() for r in batch.parsed.collect()]
    finally:
        batch.cached.unpersist()
    keyed = {(r["source"], r["source_row"]): r for r in rows}
    assert len(keyed) == len(rows), "one row per (file, record)"
    return keyed, [f.rsplit("/", 1)[-1] for f in batch.empty_files]


def write(folder: Path, name: str, content: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)


def test_the_reference_projects_files_are_read_as_written(one_file_spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, "reference.csv", b"text,label\nI love this product!,\nThis is terrible,\nNot bad\n")
    write(tmp_path, "headerless.csv", b"I love this!,1\nawful,0\n")
    s140 = b'"4","1467810369","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","user","so happy today"\n'
    write(tmp_path, "s140.csv", s140 + b'"0","2","Mon Apr 06 22:19:49 PDT 2009","NO_QUERY","u2","sad"\n')
    write(tmp_path, "polarity.csv", b"4,what a day\n0,meh\n")
    rows, empty = parse_folder(one_file_spark, tmp_path)
    assert not empty and all(r["error"] is None for r in rows.values())
    texts = {k: (r["text"], r["label"]) for k, r in rows.items()}
    assert texts == {
        ("reference.csv", 2): ("I love this product!", None),
        ("reference.csv", 3): ("This is terrible", None),
        ("reference.csv", 4): ("Not bad", None),  # a missing optional trailing field is not an error
        ("headerless.csv", 1): ("I love this!", 1),
        ("headerless.csv", 2): ("awful", 0),
        ("s140.csv", 1): ("so happy today", 1),
        ("s140.csv", 2): ("sad", 0),
        ("polarity.csv", 1): ("what a day", 1),
        ("polarity.csv", 2): ("meh", 0),
    }
    assert rows[("s140.csv", 1)]["id"] == "1467810369"


POISON_FILE = (
    b"id,text,label,timestamp\n"
    b"a,label inf,inf,\n"
    b"b,label 1e400,1e400,\n"
    b"c,label -inf,-inf,\n"
    b"d,year one,1,0001-01-01T00:00:00+05:00\n"
    b"e,epoch 1e300,4,1e300\n"
    b"f,good row,4,2026-11-29T10:00:00Z\n"
    b"g,too,many,fields,here\n"
    b"h,\n"
    b'"i","quoted, with comma and ""quotes""",0,1764417600000\n'
    b'"j","multi\nline",1,\n'
) + "k,caf\xe9 latin-1,1,\nl,after the bad byte,0,\n".encode("latin-1")


def test_poison_rows_affect_only_themselves(one_file_spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, "poison.csv", POISON_FILE)
    write(tmp_path, "zero.csv", b"")
    write(tmp_path, "header-only.csv", b"id,text,label\n")
    write(tmp_path, "no-text.csv", b"id,body\n1,x\n")
    write(tmp_path, "long.csv", b"text\n" + b"x" * 10_001 + b"\nshort\n")
    rows, empty = parse_folder(one_file_spark, tmp_path)
    by_id = {r["id"]: r for r in rows.values() if r["id"]}
    assert [by_id[i]["label"] for i in "abc"] == [None, None, None]  # non-finite labels: no label
    assert all(by_id[i]["error"] is None for i in "abcdefijl")
    modified = datetime.fromtimestamp((tmp_path / "poison.csv").stat().st_mtime).replace(microsecond=0)
    assert by_id["d"]["event_timestamp"].replace(microsecond=0) == modified  # out of range: file time
    assert by_id["e"]["event_timestamp"].replace(microsecond=0) == modified
    assert by_id["f"]["event_timestamp"] == datetime(2026, 11, 29, 10, 0, 0)
    assert by_id["i"]["text"] == 'quoted, with comma and "quotes"' and by_id["j"]["text"] == "multi\nline"
    errors = {k: r["error"] for k, r in rows.items() if r["error"]}
    assert errors[("poison.csv", 8)] == "5 fields, header has 4"
    assert errors[("poison.csv", 9)] == "empty text"
    assert errors[("poison.csv", 12)].startswith("not UTF-8")  # only the row with the bad byte
    assert rows[("poison.csv", 12)]["raw"].startswith("k,caf")
    assert errors[("no-text.csv", 2)] == "header has no 'text' column"
    assert errors[("long.csv", 2)] == "text longer than 10000 characters" and ("long.csv", 3) not in errors
    assert sorted(empty) == ["header-only.csv", "zero.csv"]
    assert len(rows) == 12 + 1 + 2


def kafka_rows(spark, values: list[bytes | None]) -> dict[int, dict]:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame(
        [(v, "t", 0, i, MESSAGE_TIME) for i, v in enumerate(values)],
        "value binary, topic string, partition int, offset long, timestamp timestamp",
    )
    out = [r.asDict() for r in parse_kafka_batch(df).collect()]
    assert sorted(r["source_row"] for r in out) == list(range(len(values))), "one row per message"
    return {r["source_row"]: r for r in out}


POISON_MESSAGES: list[tuple[bytes | None, str | None]] = [
    (b'{"text": "great", "id": 7, "timestamp": 1764417600000, "label": 4}', None),
    (b'{"text": "x", "label": 1e999}', None),
    (b'{"text": "y", "label": ' + b"9" * 5000 + b"}", "unparseable JSON"),
    (b'{"text": "z", "deep": ' + b"[" * 2000 + b"]" * 2000 + b"}", "unparseable JSON"),
    (b'{"text": "\\ud800 lone surrogate"}', None),
    (b'{"text": "ok", "timestamp": "0001-01-01T00:00:00+05:00"}', None),
    (b"{not json", "unparseable JSON"),
    (b"\xff\xfe\xfa", "undecodable bytes"),
    (b'{"id": 1}', "missing text"),
    (b'{"text": ""}', "empty text"),
    (b"[1, 2]", "unparseable JSON"),
    (b"null", "unparseable JSON"),
    (None, "empty message (null value)"),
]


def test_poison_kafka_messages(spark) -> None:  # type: ignore[no-untyped-def]
    rows = kafka_rows(spark, [v for v, _ in POISON_MESSAGES])
    for offset, (_, reason) in enumerate(POISON_MESSAGES):
        error = rows[offset]["error"]
        assert error is None if reason is None else (error or "").startswith(reason), (offset, error)
    assert (rows[0]["id"], rows[0]["label"], rows[0]["source"]) == ("7", 1, "t/0/0")
    assert rows[0]["event_timestamp"] == datetime(2025, 11, 29, 12, 0, 0)
    assert rows[1]["label"] is None and rows[5]["event_timestamp"] == MESSAGE_TIME


def test_file_layouts() -> None:
    assert file_layout(["\ufeffText", "Label"]).has_header
    assert file_layout(["hello world", None]).kind == "text_label"
    assert file_layout(["0", "1", "d", "q", "u", "t"]).kind == "sentiment140"
    assert file_layout(["id", "body"]).kind == "no_text_header"


# --- fuzz: random bytes, CSV and JSON ------------------------------------------------------------

FIELD = st.text(alphabet=string.printable + "éü\u2603\ufffd\"',", max_size=30)
CSV_ROWS = st.lists(st.lists(FIELD, min_size=1, max_size=5), min_size=1, max_size=8)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["text", "id", "label", "x"]), inner),
    max_leaves=8,
)
# Each example is a Spark job: few examples, and no shrinking (minutes per step on a 2-core machine).
FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


@FUZZ
@given(blobs=st.lists(st.binary(max_size=200), min_size=1, max_size=4), tables=st.lists(CSV_ROWS, max_size=3))
def test_fuzz_files_one_row_per_record(one_file_spark, tmp_path_factory, blobs, tables) -> None:  # type: ignore[no-untyped-def]
    import csv
    import io

    folder = tmp_path_factory.mktemp("fuzz")
    for i, blob in enumerate(blobs):
        write(folder, f"bytes-{i}.csv", blob)
    for i, table in enumerate(tables):
        out = io.StringIO()
        csv.writer(out).writerows([["id", "text", "label"], *table])
        write(folder, f"table-{i}.csv", out.getvalue().encode())
    rows, empty = parse_folder(one_file_spark, folder)
    for r in rows.values():
        assert (r["error"] is None) == (r["text"] is not None), r  # scored xor quarantined with a reason
    for i, table in enumerate(tables):
        # every written row is a record (csv.writer writes [""] as `""`, not a blank line): rows 2..n+1
        got = sorted(k[1] for k in rows if k[0] == f"table-{i}.csv")
        assert got == list(range(2, len(table) + 2))
    seen = {k[0] for k in rows} | set(empty)
    assert {f"bytes-{i}.csv" for i, b in enumerate(blobs) if not b.strip()} <= seen


@FUZZ
@given(values=st.lists(st.one_of(st.binary(max_size=60), JSONISH.map(lambda v: json.dumps(v).encode())), max_size=12))
def test_fuzz_kafka_one_row_per_message(spark, values) -> None:  # type: ignore[no-untyped-def]
    rows = kafka_rows(spark, values)
    for r in rows.values():
        assert (r["error"] is None) == (r["text"] is not None), r


# --- the rules at their boundaries (one Spark job each) ------------------------------------------


def test_labels_and_timestamps_at_their_boundaries(spark) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    from sentiment_mlops.serving.parsing import label_from, timestamp_from

    labels = ["0", "1", "4", "4.0", " 1 ", "2", "3", "-1", "x", "", "inf", "NaN", "1e400", None]
    expected_labels = [0, 1, 1, 1, 1, None, None, None, None, None, None, None, None, None]
    df = spark.createDataFrame([(v,) for v in labels], "v string")
    assert [r[0] for r in df.select(label_from(F.col("v"))).collect()] == expected_labels

    fallback = datetime(2000, 1, 1)
    stamps = [
        ("1764417600", datetime(2025, 11, 29, 12, 0, 0)),  # epoch seconds
        ("1764417600000", datetime(2025, 11, 29, 12, 0, 0)),  # epoch milliseconds
        ("99999999999", fallback),  # read as seconds: year 5138, out of range
        ("100000000001", datetime(1973, 3, 3, 9, 46, 40, 1000)),  # above 1e11: milliseconds
        ("2026-11-29T10:00:00Z", datetime(2026, 11, 29, 10, 0, 0)),
        ("2026-11-29T12:00:00+02:00", datetime(2026, 11, 29, 10, 0, 0)),  # converted to UTC
        (" 2026-11-29T10:00:00 ", datetime(2026, 11, 29, 10, 0, 0)),  # naive: kept as UTC
        ("1900-01-01T00:00:00Z", datetime(1900, 1, 1)),  # the first accepted instant
        ("1899-12-31T23:59:59Z", fallback),
        ("2199-12-31T23:59:59Z", datetime(2199, 12, 31, 23, 59, 59)),
        ("2200-01-01T00:00:01Z", fallback),
        ("0001-01-01T00:00:00+05:00", fallback),
        ("yesterday", fallback),
        ("1e400", fallback),
        ("", fallback),
        (None, fallback),
    ]
    df = spark.createDataFrame([(v, fallback) for v, _ in stamps], "v string, f timestamp")
    got = [r[0] for r in df.select(timestamp_from(F.col("v"), F.col("f"))).collect()]
    assert got == [want for _, want in stamps]


@pytest.mark.parametrize(("length", "quarantined"), [(9_999, False), (10_000, False), (10_001, True)])
def test_texts_longer_than_10000_characters_are_quarantined(spark, length: int, quarantined: bool) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    from sentiment_mlops.serving.parsing import MAX_TEXT_CHARS, RAW_CHARS, finish

    assert (MAX_TEXT_CHARS, RAW_CHARS) == (10_000, 2_000)
    text = "a" * length
    message = kafka_rows(spark, [json.dumps({"text": text}).encode()])[0]
    row = finish(
        spark.createDataFrame([(text,)], "t string"), id=F.lit(None), text=F.col("t"), label=F.lit(None),
        timestamp=F.lit(None), arrival=F.lit(MESSAGE_TIME), source=F.lit("f.csv"), source_row=F.lit(2),
        raw=F.col("t"), error=F.lit(None),
    ).first().asDict()  # fmt: skip
    for record in (row, message):
        if quarantined:
            assert record["text"] is None and record["error"] == "text longer than 10000 characters"
            assert len(record["raw"]) == 2000  # the raw input is kept, cut to a readable size
        else:
            assert record["text"] == text and record["error"] is None and record["raw"] is None


def test_quarantined_kafka_raw_values_are_cut_to_2000_characters(spark) -> None:  # type: ignore[no-untyped-def]
    rows = kafka_rows(spark, [b"{" + b"x" * 5000, b"\xff" * 3000])
    assert len(rows[0]["raw"]) == 2000
    assert rows[1]["raw"] == "FF" * 1000  # not UTF-8: the first 1,000 bytes as hex


def test_csv_details(one_file_spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A byte-order mark and CRLF lines; blank lines skipped; quoted newlines kept; a quarantined row
    keeps its CSV text; an empty id is no id."""
    write(tmp_path, "bom.csv", "\ufeffID,Text\r\n1,hello\r\n\r\n,no id\r\n".encode())
    write(tmp_path, "quoted.csv", b'text,id\n"line one\r\nline two",7\n1,"a, b",extra\n')
    rows, _ = parse_folder(one_file_spark, tmp_path)
    assert [(k, r["id"], r["text"], r["error"]) for k, r in sorted(rows.items())] == [
        (("bom.csv", 2), "1", "hello", None),
        (("bom.csv", 3), None, "no id", None),
        (("quoted.csv", 2), "7", "line one\r\nline two", None),
        (("quoted.csv", 3), None, None, "3 fields, header has 2"),
    ]
    assert rows[("quoted.csv", 3)]["raw"] == '1,"a, b",extra'


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
