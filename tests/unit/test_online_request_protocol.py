"""Request bodies of the online server's /invocations (MLflow scoring formats): which texts are read,
and the limits, at their boundaries, for every format: MAX_BATCH rows pass, one more is 413."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import HTTPException

from sentiment_mlops.online.protocol import extract_texts

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


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ([], 422, "body must be a JSON object with one of dataframe_split, dataframe_records, instances, inputs"),
        ({}, 422, "got keys none"),
        ({"instances": ["a"], "inputs": ["a"]}, 422, "exactly one of"),
        ({"dataframe_split": ["a"]}, 422, "dataframe_split must be an object with 'columns' and 'data', got array"),
        (
            {"dataframe_split": {"columns": ["body"], "data": [["a"]]}},
            422,
            "columns must be a list that contains 'text'",
        ),
        ({"dataframe_split": {"columns": "text", "data": [["a"]]}}, 422, "columns must be a list"),
        ({"dataframe_split": {"columns": ["text"], "data": "a"}}, 422, "data must be a list of rows, got string"),
        ({"dataframe_split": {"columns": ["id", "text"], "data": [[1]]}}, 422, "data[0] must be a list of 2 values"),
        ({"dataframe_split": {"columns": ["text"], "data": ["a"]}}, 422, "data[0] must be a list of 1 values"),
        (
            {"dataframe_split": {"columns": ["text"], "data": [[5]]}},
            422,
            "dataframe_split.data[0][0] must be a string, got number",
        ),
        ({"dataframe_records": [{"body": "a"}]}, 422, "dataframe_records[0] has no 'text' field"),
        ({"dataframe_records": [{"text": None}]}, 422, "dataframe_records[0].text must be a string, got null"),
        ({"instances": "a"}, 422, "instances must be a list, got string"),
        ({"instances": [True]}, 422, "instances[0] must be a string, got boolean"),
        ({"inputs": {"body": ["a"]}}, 422, "inputs as an object must map 'text' to a list of strings"),
        ({"inputs": {"text": "a"}}, 422, "inputs as an object must map 'text' to a list of strings"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(payload: Any, status: int, message: str) -> None:
    got_status, detail = _status(payload)
    assert got_status == status and message in detail, detail
