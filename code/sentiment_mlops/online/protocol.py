"""The wire protocol: request bodies read and validated, response bodies shaped.

Bodies are read as a stream with a running size cap, so a chunked body without Content-Length is
refused once it passes MAX_BODY_BYTES instead of being buffered whole. Every malformed input
(bad JSON, nesting deep enough to exhaust the parser's recursion, an integer of more than Python's
4,300-digit conversion limit, a wrong type, an empty text) answers 4xx with a reason, never 500.
Response shapes follow the reference model server (`status`, `predictions` as labels, ...);
richer fields are additions next to them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import HTTPException, Request

from sentiment_mlops.online.model import Prediction

INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def bad(status: int, message: str, close: bool = False) -> HTTPException:
    """The 4xx/5xx answer `{"detail": message}`; `close` also ends the connection (uvicorn closes
    it after a `Connection: close` response instead of reading the rest of an unwanted body)."""
    return HTTPException(status_code=status, detail=message, headers={"Connection": "close"} if close else None)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


# --------------------------------------------------------------------------------------------
# Reading bodies.


async def read_body(request: Request, max_bytes: int, timeout_seconds: float) -> bytes:
    """The request body, refused with 413 as soon as it passes `max_bytes` (declared or streamed)
    and with 408 when it takes longer than `timeout_seconds` to arrive."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise bad(413, f"body of {declared} bytes is larger than MAX_BODY_BYTES={max_bytes}", close=True)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise bad(413, f"body passed MAX_BODY_BYTES={max_bytes} bytes; send smaller requests", close=True)
                chunks.append(chunk)
    except TimeoutError as exc:
        raise bad(408, f"body not received within {timeout_seconds:g}s", close=True) from exc
    return b"".join(chunks)


async def json_body(request: Request, max_bytes: int, timeout_seconds: float) -> Any:
    """The parsed JSON body, or a 4xx saying what is wrong with it."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise bad(415, f"content type {content_type!r} is not supported; send application/json")
    body = await read_body(request, max_bytes, timeout_seconds)
    if not body.strip():
        raise bad(400, "empty body: send a JSON object")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad(400, f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise bad(400, "body is not acceptable JSON: nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer beyond sys.get_int_max_str_digits() (4,300 digits)
        raise bad(400, f"body is not acceptable JSON: {str(exc).splitlines()[0][:200]}") from exc


# --------------------------------------------------------------------------------------------
# Texts out of bodies.


def _text_item(value: Any, where: str) -> str:
    if isinstance(value, dict):
        if "text" not in value:
            raise bad(422, f"{where} has no 'text' field")
        value = value["text"]
        where = f"{where}.text"
    if not isinstance(value, str):
        raise bad(422, f"{where} must be a string, got {json_type(value)}")
    return value


def _check_size(n: int, max_batch: int) -> None:
    if n == 0:
        raise bad(422, "no texts to score: the batch is empty")
    if n > max_batch:
        raise bad(413, f"batch of {n} texts is larger than MAX_BATCH={max_batch}; split it into smaller requests")


def _split_texts(value: Any, max_batch: int) -> list[str]:
    if not isinstance(value, dict):
        raise bad(422, f"dataframe_split must be an object with 'columns' and 'data', got {json_type(value)}")
    columns, data = value.get("columns"), value.get("data")
    if not isinstance(columns, list) or "text" not in columns:
        raise bad(422, "dataframe_split.columns must be a list that contains 'text'")
    if not isinstance(data, list):
        raise bad(422, f"dataframe_split.data must be a list of rows, got {json_type(data)}")
    _check_size(len(data), max_batch)
    col = columns.index("text")
    texts = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise bad(422, f"dataframe_split.data[{i}] must be a list of {len(columns)} values (one per column)")
        texts.append(_text_item(row[col], f"dataframe_split.data[{i}][{col}]"))
    return texts


def extract_texts(payload: Any, max_batch: int) -> list[str]:
    """The texts of an MLflow-style scoring body, or an HTTPException (4xx) saying what is wrong."""
    if not isinstance(payload, dict):
        raise bad(422, f"body must be a JSON object with one of {', '.join(INPUT_KEYS)}, got {json_type(payload)}")
    present = [k for k in INPUT_KEYS if k in payload]
    if len(present) != 1:
        got = ", ".join(sorted(payload)[:10]) or "none"
        raise bad(422, f"body must have exactly one of {', '.join(INPUT_KEYS)}; got keys {got}")
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split_texts(value, max_batch)
    if key == "inputs" and isinstance(value, dict):  # MLflow's column form: {"inputs": {"text": [...]}}
        if "text" not in value or not isinstance(value["text"], list):
            raise bad(422, "inputs as an object must map 'text' to a list of strings")
        value = value["text"]
    if not isinstance(value, list):
        raise bad(422, f"{key} must be a list, got {json_type(value)}")
    _check_size(len(value), max_batch)
    return [_text_item(item, f"{key}[{i}]") for i, item in enumerate(value)]


def extract_text(payload: Any) -> str:
    """The text of a /predict body `{"text": "..."}`, or a 4xx."""
    if not isinstance(payload, dict):
        raise bad(422, f'body must be a JSON object {{"text": "..."}}, got {json_type(payload)}')
    if "text" not in payload:
        raise bad(422, 'missing field "text": send {"text": "..."}')
    return _text_item(payload["text"], "text")


def check_texts(texts: list[str], max_chars: int) -> None:
    """Refuse texts the streaming job would quarantine (empty or blank) or that are too long."""
    for i, text in enumerate(texts):
        if not text.strip():
            what = "empty" if not text else "whitespace only"
            where = "text" if len(texts) == 1 else f"text {i}"
            raise bad(422, f"{where} is {what}: there is nothing to score (the stream quarantines such rows)")
        if len(text) > max_chars:
            raise bad(413, f"text {i} has {len(text)} characters, more than MAX_TEXT_CHARS={max_chars}")


# --------------------------------------------------------------------------------------------
# Response bodies.


def confidence(pred: Prediction) -> float | None:
    """Probability of the predicted class (None for models without probabilities)."""
    p = pred.probability
    return None if p is None else (p if pred.label == 1 else 1.0 - p)


def prediction_detail(pred: Prediction) -> dict[str, Any]:
    return {
        "label": pred.label,
        "sentiment": pred.sentiment,
        "probability": pred.probability,
        "confidence": confidence(pred),
    }


def invocations_body(predictions: list[Prediction], version: str) -> dict[str, Any]:
    """`{"predictions": ["positive", ...]}` as MLflow's scoring server answers, with the per-text
    label/probability in `details`."""
    return {
        "predictions": [p.sentiment for p in predictions],
        "details": [prediction_detail(p) for p in predictions],
        "model_version": version,
    }


def predict_body(pred: Prediction, model_name: str, version: str) -> dict[str, Any]:
    return {**prediction_detail(pred), "model_name": model_name, "model_version": version}
