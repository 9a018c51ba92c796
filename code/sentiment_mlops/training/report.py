"""What the training job leaves in its output folder: the best model (`best-model-STAMP/`) and
`training_summary.json`, which the pipeline's report task and the serving tests read."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from sentiment_mlops.core.spark_session import write_text
from sentiment_mlops.core.storage import join_uri
from sentiment_mlops.training.fitting import ModelResult

SUMMARY_FILE = "training_summary.json"


@dataclass
class TrainingSummary:
    """Everything one training run did; written as training_summary.json."""

    started_at: str
    input: str
    output: str
    load_report: dict[str, Any]
    split_counts: dict[str, int]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    best_model: str = ""
    parent_run_id: str = ""
    promotion: dict[str, object] = field(default_factory=dict)
    best_model_path: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)


def new_summary(input_path: str, output_path: str) -> TrainingSummary:
    """An empty summary stamped with the current UTC time."""
    return TrainingSummary(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        input=input_path,
        output=output_path,
        load_report={},
        split_counts={},
    )


def summary_dict(summary: TrainingSummary) -> dict[str, object]:
    """The summary as plain JSON-able values."""
    return asdict(summary)


def model_entries(results: list[ModelResult]) -> dict[str, dict[str, object]]:
    """The summary's `models` entry: metrics, parameters, run and registry version per model key."""
    return {
        result.key: {
            "display_name": result.display_name,
            "validation": result.val,
            "test": result.test,
            "grouped": result.grouped,
            "test_confusion_matrix": result.test_confusion,
            "fit_seconds": round(result.fit_seconds, 2),
            "params": result.best_params,
            "run_id": result.run_id,
            "registered_model": result.registered_name,
            "version": result.registered_version,
            "promotion": result.promotion,
        }
        for result in results
    }


def save_best_model(best: ModelResult, output: str, output_uri: str) -> str:
    """Save the best pipeline to `best-model-STAMP` under the output; returns its path as the user gave
    the output (`output`), while writing to the resolved `output_uri`."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    best.model.write().overwrite().save(join_uri(output_uri, f"best-model-{stamp}"))
    return join_uri(output, f"best-model-{stamp}")


def write_summary(spark: SparkSession, summary: TrainingSummary, output_uri: str) -> str:
    """Write training_summary.json under `output_uri`; returns the JSON text."""
    text = json.dumps(summary_dict(summary), indent=2, default=str)
    write_text(spark, join_uri(output_uri, SUMMARY_FILE), text)
    return text
