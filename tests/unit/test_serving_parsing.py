"""The file source's per-file header rule (serving.file_source.file_layout, plain Python): which field of
a dropped CSV file's rows is the text, label, id and timestamp, decided from the file's first row. The
row-level rules (labels, timestamps, text, bytes) are Spark column expressions, tested with a real
session in tests/integration/test_serving_parse.py."""

from __future__ import annotations

import pytest

from sentiment_mlops.serving.file_source import FileLayout, _is_number, _norm, file_layout


def test_a_header_names_the_columns_in_any_order() -> None:
    assert file_layout(["label", "text", "id", "timestamp"]) == FileLayout(
        "header", text=1, label=0, id=2, timestamp=3, width=4, has_header=True
    )
    assert file_layout(["\ufeff Text ", "LABEL"]) == FileLayout("header", text=0, label=1, width=2, has_header=True)
    assert file_layout(["text"]) == FileLayout("header", text=0, width=1, has_header=True)
    # empty trailing header fields (`text,label,`) do not widen the header
    assert file_layout(["text", "label", None, None]).width == 2


def test_the_reference_projects_headerless_row_is_text_then_label() -> None:
    assert file_layout(["I love this!", "1"]) == FileLayout("text_label", text=0, label=1, width=2)
    assert file_layout(["just text", None]) == FileLayout("text_label", text=0, label=1, width=2)
    assert file_layout(["0", "1"]).kind == "text_label"  # polarity then a number: not polarity,text


def test_sentiment140_rows_start_with_a_polarity() -> None:
    row = ["4", "1467810369", "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", "user", "so happy"]
    assert file_layout(row) == FileLayout("sentiment140", text=5, label=0, id=1, width=6)
    assert file_layout(["2", *row[1:]]).kind == "sentiment140"
    # 3 is no polarity: text[,label], so its 6-field rows are quarantined as too wide
    assert file_layout(["3", *row[1:]]) == FileLayout("text_label", text=0, label=1, width=2)
    assert file_layout(["4", "what a day"]) == FileLayout("polarity_text", text=1, label=0, width=2)
    assert file_layout(["0", "meh"]).kind == "polarity_text"
    assert file_layout(["1", "meh"]).kind == "text_label"  # 1 is no Sentiment140 polarity


@pytest.mark.parametrize(
    ("first_row", "kind"),
    [
        (["id", "body"], "no_text_header"),
        (["user", "date", "tweet"], "no_text_header"),
        (["hello", "world"], "text_label"),  # no known column name: data
        (["id"], "text_label"),  # one field: data
        (["id", "Hello World!"], "text_label"),  # not a column name
    ],
)
def test_a_header_without_text_is_told_from_data(first_row: list[str | None], kind: str) -> None:
    layout = file_layout(first_row)
    assert layout.kind == kind
    assert layout.has_header is (kind == "no_text_header")
    if kind == "no_text_header":
        assert layout.text == -1 and layout.width == len(first_row)


def test_numbers_and_paths() -> None:
    assert [_is_number(v) for v in ("1", "-2.5", "1e400", "inf", "x", "")] == [True, True, True, True, False, False]
    assert _norm("file:///tmp/a%20b.csv") == _norm("file:/tmp/a b.csv") == "file:/tmp/a b.csv"
    assert _norm("gs://b/x.csv") == "gs://b/x.csv"
