"""The online server's wire protocol, called directly (tests/integration/test_online_server.py goes
through HTTP): which texts the /invocations formats (MLflow scoring) and /predict read; the limits at
their boundaries (MAX_BATCH rows pass, one more is 413; MAX_BODY_BYTES declared or streamed; the body
timeout; MAX_TEXT_CHARS); the 4xx status, message and Connection header a client gets for each bad
body; and the response bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import HTTPException, Request

from sentiment_mlops.online import protocol
from sentiment_mlops.online.model.stages import Prediction
from sentiment_mlops.online.protocol import (
    check_texts,
    confidence,
    extract_text,
    extract_texts,
    invocations_body,
    json_body,
    json_type,
    predict_body,
    read_body,
)

MAX = 5


def _bodies(texts: list[str]) -> dict[str, dict[str, Any]]:
    """The same texts in each accepted format."""
    return {
        "dataframe_split": {
            "dataframe_split": {"columns": ["id", "text"], "data": [[i, t] for i, t in enumerate(texts)]}
        },
        "dataframe_records": {"dataframe_records": [{"text": t} for t in texts]},
        "instances": {"instances": texts},
        "inputs": {"inputs": texts},
        "inputs_columns": {"inputs": {"text": texts}},
    }


def _status(payload: Any, max_batch: int = MAX) -> tuple[int, str]:
    with pytest.raises(HTTPException) as info:
        extract_texts(payload, max_batch)
    return info.value.status_code, str(info.value.detail)


@pytest.mark.parametrize("fmt", list(_bodies([])))
def test_every_format_reads_its_texts_in_order(fmt: str) -> None:
    texts = ["good day", "bad day", "meh"]
    assert extract_texts(_bodies(texts)[fmt], MAX) == texts


@pytest.mark.parametrize("fmt", list(_bodies([])))
def test_batch_size_limit_at_its_boundary_in_every_format(fmt: str) -> None:
    at_limit = [f"t{i}" for i in range(MAX)]
    assert extract_texts(_bodies(at_limit)[fmt], MAX) == at_limit
    status, detail = _status(_bodies([*at_limit, "one more"])[fmt])
    assert status == 413
    assert detail == f"batch of {MAX + 1} texts is larger than MAX_BATCH={MAX}; split it into smaller requests"
    assert _status(_bodies([])[fmt]) == (422, "no texts to score: the batch is empty")


KEYS = "dataframe_split, dataframe_records, instances, inputs"


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ([], 422, f"body must be a JSON object with one of {KEYS}, got array"),
        ({}, 422, f"body must have exactly one of {KEYS}; got keys none"),
        (
            {"instances": ["a"], "inputs": ["a"]},
            422,
            f"body must have exactly one of {KEYS}; got keys inputs, instances",
        ),
        (
            {f"k{i:02d}": 1 for i in range(12)},  # only the first ten keys are echoed back
            422,
            f"body must have exactly one of {KEYS}; got keys " + ", ".join(f"k{i:02d}" for i in range(10)),
        ),
        ({"dataframe_split": ["a"]}, 422, "dataframe_split must be an object with 'columns' and 'data', got array"),
        (
            {"dataframe_split": {"columns": ["body"], "data": [["a"]]}},
            422,
            "dataframe_split.columns must be a list that contains 'text'",
        ),
        (
            {"dataframe_split": {"columns": "text", "data": [["a"]]}},
            422,
            "dataframe_split.columns must be a list that contains 'text'",
        ),
        (
            {"dataframe_split": {"columns": ["text"], "data": "a"}},
            422,
            "dataframe_split.data must be a list of rows, got string",
        ),
        (
            {"dataframe_split": {"columns": ["id", "text"], "data": [[1]]}},
            422,
            "dataframe_split.data[0] must be a list of 2 values (one per column)",
        ),
        (
            {"dataframe_split": {"columns": ["text"], "data": ["a"]}},
            422,
            "dataframe_split.data[0] must be a list of 1 values (one per column)",
        ),
        (
            {"dataframe_split": {"columns": ["text"], "data": [[5]]}},
            422,
            "dataframe_split.data[0][0] must be a string, got number",
        ),
        ({"dataframe_records": [{"body": "a"}]}, 422, "dataframe_records[0] has no 'text' field"),
        ({"dataframe_records": [{"text": None}]}, 422, "dataframe_records[0].text must be a string, got null"),
        ({"dataframe_records": ["a", {"text": {}}]}, 422, "dataframe_records[1].text must be a string, got object"),
        ({"instances": "a"}, 422, "instances must be a list, got string"),
        ({"instances": [True]}, 422, "instances[0] must be a string, got boolean"),
        ({"instances": [[]]}, 422, "instances[0] must be a string, got array"),
        ({"inputs": {"body": ["a"]}}, 422, "inputs as an object must map 'text' to a list of strings"),
        ({"inputs": {"text": "a"}}, 422, "inputs as an object must map 'text' to a list of strings"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(payload: Any, status: int, message: str) -> None:
    assert _status(payload) == (status, message)


def test_refusals_of_a_body_keep_the_connection_open() -> None:
    with pytest.raises(HTTPException) as info:
        extract_texts({"instances": "a"}, MAX)
    assert info.value.headers is None


def test_types_are_named_as_json_names_them() -> None:
    values = [None, True, 1, 1.5, "a", [], {}, ()]
    assert [json_type(v) for v in values] == [
        "null",
        "boolean",
        "number",
        "number",
        "string",
        "array",
        "object",
        "tuple",
    ]


# --------------------------------------------------------------------------------------------
# Reading bodies: what a client sees for a body too big, too slow, not JSON or not acceptable JSON.


def _request(chunks: list[bytes], headers: dict[str, str] | None = None, delay: float = 0.0) -> Request:
    """An ASGI request whose body arrives in `chunks` (each after `delay` seconds)."""
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if delay:
            await asyncio.sleep(delay)
        chunk = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/invocations", "headers": raw}, receive)


def _read(chunks: list[bytes], headers: dict[str, str] | None = None, max_bytes: int = 10, **kw: Any) -> bytes:
    return asyncio.run(read_body(_request(chunks, headers, kw.pop("delay", 0.0)), max_bytes, kw.get("timeout", 5.0)))


def _refusal(call: Callable[[], Any]) -> tuple[int, str, dict[str, str] | None]:
    with pytest.raises(HTTPException) as info:
        call()
    return info.value.status_code, str(info.value.detail), info.value.headers


CLOSE = {"Connection": "close"}


def test_streamed_body_is_read_whole_up_to_the_size_cap() -> None:
    assert _read([b"12345", b"", b"67890"]) == b"1234567890"  # exactly max_bytes
    assert _read([b"1234567890"], {"Content-Length": "10"}) == b"1234567890"
    assert _read([]) == b""


def test_declared_length_over_the_cap_is_refused_before_reading_and_closes_the_connection() -> None:
    read: list[bytes] = []
    assert _refusal(lambda: _read(read, {"Content-Length": "11"})) == (
        413,
        "body of 11 bytes is larger than MAX_BODY_BYTES=10",
        CLOSE,
    )


def test_streamed_body_over_the_cap_is_refused_once_it_passes_it() -> None:
    # A chunked body (no Content-Length) or a Content-Length that is not a number: counted as it arrives.
    for headers in (None, {"Content-Length": "small"}):
        assert _refusal(lambda h=headers: _read([b"123456", b"78901"], h)) == (
            413,
            "body passed MAX_BODY_BYTES=10 bytes; send smaller requests",
            CLOSE,
        )


def test_slow_body_is_refused_with_408_and_closes_the_connection() -> None:
    assert _refusal(lambda: _read([b"1", b"2"], delay=0.2, timeout=0.05)) == (
        408,
        "body not received within 0.05s",
        CLOSE,
    )


def _json(body: bytes, content_type: str | None = "application/json") -> Any:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return asyncio.run(json_body(_request([body], headers), 1_000_000, 5.0))


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json"]
)
def test_json_content_types_are_accepted(content_type: str | None) -> None:
    assert _json(b'{"instances": ["good"]}', content_type) == {"instances": ["good"]}


def test_other_content_types_are_refused_with_415() -> None:
    assert _refusal(lambda: _json(b"text=good", "application/x-www-form-urlencoded; charset=utf-8")) == (
        415,
        "content type 'application/x-www-form-urlencoded' is not supported; send application/json",
        None,
    )


def test_body_over_the_cap_is_413_before_json_parsing() -> None:
    request = _request([b"[" + b"1," * 20 + b"1]"])
    assert _refusal(lambda: asyncio.run(json_body(request, 10, 5.0)))[:2] == (
        413,
        "body passed MAX_BODY_BYTES=10 bytes; send smaller requests",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body: send a JSON object"),
        (b" \n\t", "empty body: send a JSON object"),
        (b'{"instances": [', "body is not valid JSON: Expecting value: line 1 column 16 (char 15)"),
        (
            b"{'instances': []}",
            "body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (b'"\xff"', "body is not valid JSON: 'utf-8' codec can't decode byte 0xff in position 1: invalid start byte"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not acceptable JSON: nested too deeply"),
        (
            b'{"n": ' + b"9" * 5000 + b"}",
            "body is not acceptable JSON: Exceeds the limit (4300 digits) for integer string conversion: "
            "value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit",
        ),
    ],
    ids=["empty", "blank", "truncated", "single-quotes", "not-utf8", "deep", "huge-int"],
)
def test_bodies_that_are_not_acceptable_json_are_400_with_the_reason(body: bytes, message: str) -> None:
    assert _refusal(lambda: _json(body)) == (400, message, None)


def test_parser_error_text_is_cut_to_its_first_200_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    def long_error(_body: bytes) -> Any:
        raise ValueError("v" * 300 + "\nsecond line")

    monkeypatch.setattr(protocol.json, "loads", long_error)
    assert _refusal(lambda: _json(b"{}")) == (400, "body is not acceptable JSON: " + "v" * 200, None)


# --------------------------------------------------------------------------------------------
# /predict bodies and the text rules shared with the stream's quarantine.


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (["good"], 'body must be a JSON object {"text": "..."}, got array'),
        ({"texts": "good"}, 'missing field "text": send {"text": "..."}'),
        ({"text": 5}, "text must be a string, got number"),
        ({"text": None}, "text must be a string, got null"),
    ],
)
def test_predict_body_without_a_text_string_is_422(payload: Any, message: str) -> None:
    assert _refusal(lambda: extract_text(payload)) == (422, message, None)


def test_predict_body_text_is_read_as_sent() -> None:
    assert extract_text({"text": "  good day  ", "id": 3}) == "  good day  "


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([""], "text is empty: there is nothing to score (the stream quarantines such rows)"),
        ([" \t\n"], "text is whitespace only: there is nothing to score (the stream quarantines such rows)"),
        (["good", "", "bad"], "text 1 is empty: there is nothing to score (the stream quarantines such rows)"),
        (["good", "  "], "text 1 is whitespace only: there is nothing to score (the stream quarantines such rows)"),
    ],
)
def test_empty_or_blank_texts_are_422_naming_the_text(texts: list[str], message: str) -> None:
    assert _refusal(lambda: check_texts(texts, 20)) == (422, message, None)


def test_text_length_limit_at_its_boundary() -> None:
    check_texts(["x" * 20, " y "], 20)  # at the limit: accepted
    assert _refusal(lambda: check_texts(["ok", "x" * 21], 20)) == (
        413,
        "text 1 has 21 characters, more than MAX_TEXT_CHARS=20",
        None,
    )
    assert _refusal(lambda: check_texts(["x" * 21], 20))[1] == "text 0 has 21 characters, more than MAX_TEXT_CHARS=20"


# --------------------------------------------------------------------------------------------
# Response bodies.

POSITIVE = Prediction(label=1, probabilities=(0.25, 0.75), raw_prediction=(-1.0, 1.0))
NEGATIVE = Prediction(label=0, probabilities=(0.875, 0.125), raw_prediction=(2.0, -2.0))
NO_PROBABILITY = Prediction(label=1, probabilities=None, raw_prediction=(-0.5, 0.5))  # LinearSVC


def test_confidence_is_the_probability_of_the_predicted_class() -> None:
    assert [confidence(p) for p in (POSITIVE, NEGATIVE, NO_PROBABILITY)] == [0.75, 0.875, None]


def test_invocations_answer_labels_as_mlflow_does_with_details_and_version() -> None:
    assert invocations_body([POSITIVE, NEGATIVE, NO_PROBABILITY], "7") == {
        "predictions": ["positive", "negative", "positive"],
        "details": [
            {"label": 1, "sentiment": "positive", "probability": 0.75, "confidence": 0.75},
            {"label": 0, "sentiment": "negative", "probability": 0.125, "confidence": 0.875},
            {"label": 1, "sentiment": "positive", "probability": None, "confidence": None},
        ],
        "model_version": "7",
    }


def test_predict_answer_names_the_model() -> None:
    assert predict_body(NEGATIVE, "sentiment", "3") == {
        "label": 0,
        "sentiment": "negative",
        "probability": 0.125,
        "confidence": 0.875,
        "model_name": "sentiment",
        "model_version": "3",
    }
