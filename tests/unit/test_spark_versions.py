"""The Spark-version rule for serving a model: never one saved by a newer Spark than the job runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment_mlops.registry.spark_versions import SparkVersionMismatch, check_servable, major_minor


@pytest.mark.parametrize(
    ("version", "expected"),
    [("4.0.1", (4, 0)), ("3.5.6-dataproc", (3, 5)), ("4.1.0.dev1", (4, 1)), (" 10.12 ", (10, 12))],
)
def test_major_minor_reads_the_release_line(version: str, expected: tuple[int, int]) -> None:
    assert major_minor(version) == expected


@pytest.mark.parametrize("bad", ["", "four", "4", "v4.0"])
def test_major_minor_rejects_what_is_not_a_version(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Spark version"):
        major_minor(bad)


def test_a_model_from_a_newer_spark_is_refused_with_what_to_do() -> None:
    with pytest.raises(SparkVersionMismatch) as caught:
        check_servable("models:/m/3", "4.0.1", "3.5.6")
    message = str(caught.value)
    assert "models:/m/3 was saved by Spark 4.0.1, newer than this job's Spark 3.5.6" in message
    assert "Spark >= 4.0" in message and "retrain it on Spark 3.5" in message
    with pytest.raises(SparkVersionMismatch):
        check_servable("models:/m/3", "4.1.0", "4.0.9")  # a newer minor line


@pytest.mark.parametrize(
    ("saved", "running"),
    [
        ("3.5.1", "4.0.1"),  # older: Spark reads models of earlier releases
        ("4.0.1", "4.0.1"),
        ("3.5.7", "3.5.6"),  # a newer patch of the same line: same persistence format
        (None, "3.5.6"),  # saved before versions were recorded: the smoke check decides
        ("", "3.5.6"),
        ("garbage", "3.5.6"),
    ],
)
def test_same_older_or_unknown_versions_are_served(saved: str | None, running: str) -> None:
    check_servable("models:/m/1", saved, running)


@pytest.mark.parametrize("version", ["3.5.7", "3.5.1", "3.4.0"])
def test_on_spark_3_the_kafka_job_asks_for_the_native_connector(version: str) -> None:
    from sentiment_mlops.serving.kafka.source_choice import python_source_missing

    message = python_source_missing(version)
    assert message is not None and f"on Spark {version} needs Spark's native connector" in message
    assert f"--packages org.apache.spark:spark-sql-kafka-0-10_2.12:{version}" in message


@pytest.mark.parametrize("version", ["4.0.1", "4.3.0", "5.0.0"])
def test_on_spark_4_the_python_kafka_reader_may_run(version: str) -> None:
    from sentiment_mlops.serving.kafka.source_choice import python_source_missing

    assert python_source_missing(version) is None


def _pins(path: Path) -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {name.lower(): version for name, _, version in (line.partition("==") for line in lines if "==" in line)}


def test_the_spark35_virtualenv_pins_the_main_ones_versions_except_pyspark() -> None:
    """.venv-spark35 runs the same jobs with the same libraries; only Spark differs. A package the jobs
    import (vaderSentiment for --lexicon, kafka-python, MLflow) pinned apart would test another setup."""
    root = Path(__file__).resolve().parents[2]
    main = _pins(root / "requirements.txt") | _pins(root / "requirements-dev.txt")
    spark35 = _pins(root / "requirements-spark35.txt")
    assert spark35.pop("pyspark").startswith("3.5.")
    assert {name: version for name, version in spark35.items() if main.get(name) != version} == {}
    assert {"mlflow", "vadersentiment", "kafka-python", "pyarrow", "pandas"} <= set(spark35)
