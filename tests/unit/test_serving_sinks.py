"""Where the serving job writes each micro-batch: the folder and file names that make a replayed batch
land on its own earlier output (serving.sinks). Writing and deleting run against real Spark in
tests/integration/test_serving_job.py."""

from __future__ import annotations

from typing import Any

import pytest

from sentiment_mlops.serving import sinks


def test_batch_files_are_named_after_stream_and_zero_padded_batch() -> None:
    # `gsutil cp gs://B-predictions/predictions/date=D/part-*.parquet` picks them up, a replay rewrites the
    # same names, and batch ids sort as numbers.
    assert sinks.batch_prefix("20261130120000-ab12cd34", 7) == "part-20261130120000-ab12cd34-0000000007-"
    assert sinks.batch_prefix("s", 0) == "part-s-0000000000-"
    names = sorted(sinks.batch_prefix("s", b) for b in (10, 9, 100))
    assert names == ["part-s-0000000009-", "part-s-0000000010-", "part-s-0000000100-"]


def test_output_folder_names() -> None:
    assert sinks.PREDICTIONS_DIR == "predictions"
    assert sinks.METRICS_DIR == "_metrics/batches"


def test_batch_metrics_go_to_one_file_per_stream_and_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict[str, str] = {}

    def write_text(spark: Any, uri: str, text: str) -> None:
        written[uri] = text

    monkeypatch.setattr(sinks, "write_text", write_text)
    uri = sinks.write_batch_metrics(None, "gs://p/_metrics/batches", "s1", 42, {"rows": 3, "at": object()})  # type: ignore[arg-type]
    assert uri == "gs://p/_metrics/batches/batch-s1-0000000042.json"
    assert written[uri].startswith('{"rows": 3, "at": "<object object at') and written[uri].endswith("}\n")
    # Zero-padded batch ids sort as numbers, and a replay overwrites its own file.
    second = sinks.write_batch_metrics(None, "gs://p/_metrics/batches", "s1", 42, {"rows": 4})  # type: ignore[arg-type]
    assert second == uri and written[uri] == '{"rows": 4}\n'
    assert sorted([sinks.write_batch_metrics(None, "m", "s", b, {}) for b in (10, 9, 100)]) == [  # type: ignore[arg-type]
        "m/batch-s-0000000009.json",
        "m/batch-s-0000000010.json",
        "m/batch-s-0000000100.json",
    ]
