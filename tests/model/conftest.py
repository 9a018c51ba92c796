"""One model trained on the whole 100k sample per session, served by the Spark-free scorer.

The behavioural checks ask what a user asks of the served model, so the model is trained with
the training job's own functions and read back the way the online server reads it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment_mlops.online.model import SparkFreeModel, load_spark_ml_dir

# The algorithm the training job picked as best on the sample (bench/train.py, README "Model quality").
BEHAVIOUR_MODEL = "logisticregression"
SANITY_SET = Path(__file__).parent / "data" / "ood_sanity.tsv"


def sanity_rows() -> list[tuple[int, str]]:
    """(label, text) of the hand-written out-of-domain set; '#' lines are comments."""
    rows = []
    for line in SANITY_SET.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            label, text = line.split("\t", 1)
            rows.append((int(label), text))
    return rows


@pytest.fixture(scope="session")
def sample_model(spark, sample_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> SparkFreeModel:  # type: ignore[no-untyped-def]
    from sentiment_mlops.training import data_loading, fitting, topic_split
    from sentiment_mlops.training import job as training_job

    labelled, _ = data_loading.load_labelled(spark, str(sample_csv))
    rest, _grouped = topic_split.split_by_topic(labelled, 0)  # train on everything, like the checks' users
    train, val, test = data_loading.split_dataset(rest, 0.98, 0.01, 42)
    defaults = training_job.build_arg_parser().parse_args(["--input", "x", "--output", "y"])
    # the recommended features (README "Model quality"), not the job's defaults
    (result,) = fitting.train_models(
        spark, train, val, test, [BEHAVIOUR_MODEL], defaults.num_features, lexicon=True, cleaning_rules="v3"
    )
    path = tmp_path_factory.mktemp("behaviour-model") / "model"
    result.model.write().overwrite().save(str(path))
    return load_spark_ml_dir(path)
