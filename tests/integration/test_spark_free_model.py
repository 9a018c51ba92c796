"""The Spark-free scorer gives Spark's numbers, stage by stage, for all three model types.

Models are trained once per session on 3,000 real tweets with the real training functions and
logged to the real MLflow server; the Spark-free side loads them back from MLflow. The helper
`trained_models` is shared with tests/test_online_server.py.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sentiment_mlops.features import lexicon
from sentiment_mlops.features.text_cleaning import cleaning_sql
from sentiment_mlops.online import model as sfm
from sentiment_mlops.training.model_catalog import DEFAULT_LEXICON, MODEL_SPECS

pytestmark = pytest.mark.integration

NUM_FEATURES = 32768  # the training job's default hashing space
# the classifier's input: the hashed terms, then one count per lexicon bucket when --lexicon is the default
INPUT_SIZE = NUM_FEATURES + (len(lexicon.BUCKETS) if DEFAULT_LEXICON else 0)
TRAIN_ROWS = 3000
EXPERIMENT = "spark-free-model-tests"

EDGE_CASES: list[str | None] = [
    "",
    None,
    "   \t\n  ",
    "I LOVE IT!!! Sooooo goooood &amp; happy #blessed @friend http://t.co/abc www.x.com/y",
    "good good good !!! ??? not bad, don't stop, can't wait",
    "&lt;3 &quot;quoted&quot; &#39;single&#39; &apos;apos&apos; &gt;:(",
    "İstanbul K ΣΑΣ ΟΔΟΣ straße ǅemal ﬁne café naïve",  # case-mapping corners (Turkish I, Kelvin sign, sigma)
    "emoji 😀😢 and astral 𝔘𝔫𝔦 text\u00a0nbsp\u200bzwsp\u3000ideographic",
    "tabs\tand\r\nnewlines\x0bvt\x0cff\x1cfs",
    "aaaaaa bbbbbb 1111111 !!!!!!!!! '''''' ???",
    "don't won't isn't it's i'm we're",
    "word " * 600,  # a long text: one term with a large count
]


@dataclass
class TrainedModels:
    tracking_uri: str
    run_ids: dict[str, str]  # model key -> run id; the Spark model is at runs:/ID/model
    spark_models: dict[str, Any]  # model key -> fitted PipelineModel
    texts: list[str | None]  # a few hundred real tweets plus the edge cases

    def runs_uri(self, key: str) -> str:
        return f"runs:/{self.run_ids[key]}/model"


_TRAINED: dict[str, TrainedModels] = {}


def real_tweets(sample_csv: Path, every: int = 250) -> list[str]:
    with sample_csv.open(encoding="utf-8", newline="") as fh:
        return [row[1] for i, row in enumerate(csv.reader(fh)) if i % every == 0 and len(row) == 2]


def trained_models(spark: Any, tracking_uri: str, sample_csv: Path) -> TrainedModels:
    """Train LR, RF and LinearSVC on 3,000 tweets once per session and log each to MLflow the way
    the training job does."""
    if tracking_uri in _TRAINED:
        return _TRAINED[tracking_uri]
    import mlflow
    import mlflow.spark

    from sentiment_mlops.training import data_loading, fitting, tracking

    labelled, _ = data_loading.load_labelled(spark, str(sample_csv))
    sample = data_loading.subsample(labelled, 1.0, TRAIN_ROWS, 42)
    train, val, test = data_loading.split_dataset(sample, 0.8, 0.1, 42)
    results = fitting.train_models(spark, train, val, test, list(MODEL_SPECS), NUM_FEATURES)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    run_ids: dict[str, str] = {}
    for result in results:
        with mlflow.start_run(run_name=f"spark-free-{result.key}") as run:
            mlflow.spark.log_model(
                result.model,
                "model",
                signature=tracking.model_signature(),
                pip_requirements=tracking.MODEL_PIP_REQUIREMENTS,
            )
        run_ids[result.key] = run.info.run_id
    trained = TrainedModels(
        tracking_uri=tracking_uri,
        run_ids=run_ids,
        spark_models={r.key: r.model for r in results},
        texts=real_tweets(sample_csv) + EDGE_CASES,
    )
    _TRAINED[tracking_uri] = trained
    return trained


@pytest.fixture(scope="session")
def trained(spark, mlflow_server: str, sample_csv: Path) -> TrainedModels:  # type: ignore[no-untyped-def]
    return trained_models(spark, mlflow_server, sample_csv)


@pytest.fixture(scope="module")
def downloaded(trained: TrainedModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The logged LinearSVC artifact on disk, for tampering with."""
    import mlflow.artifacts

    dst = tmp_path_factory.mktemp("downloaded")
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=trained.runs_uri("linearsvc"), dst_path=str(dst), tracking_uri=trained.tracking_uri
        )
    )


# --------------------------------------------------------------------------------------------


def test_murmur3_reference_vectors() -> None:
    # Published MurmurHash3_x86_32 values (as unsigned ints) for the reference implementation.
    cases = [
        (b"", 0, 0),
        (b"", 1, 0x514E28B7),
        (b"", 0xFFFFFFFF, 0x81F16F39),
        (b"\x00\x00\x00\x00", 0, 0x2362F9DE),
        (b"aaaa", 0x9747B28C, 0x5A97808A),
        (b"a", 0x9747B28C, 0x7FA09EA6),
        (b"abc", 0, 0xB3DD93FA),
        (b"Hello, world!", 0x9747B28C, 0x24884CBA),
        (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
    ]
    for data, seed, expected in cases:
        assert sfm.murmur3_x86_32(data, seed) & 0xFFFFFFFF == expected, data


def test_murmur3_matches_mmh3_when_available() -> None:
    mmh3 = pytest.importorskip("mmh3")
    import random

    rnd = random.Random(7)
    for _ in range(3000):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 24)))
        assert sfm.murmur3_x86_32(data, 42) == mmh3.hash(data, 42, signed=True)


def test_term_index_equals_spark_hashing_tf(spark) -> None:  # type: ignore[no-untyped-def]
    from pyspark.ml.feature import HashingTF

    terms = ["", "a", "ab", "abc", "abcd", "abcde", "don't", "!", "?", "héllo", "日本語", "😀", "straße", "x" * 50]
    for num_features in (NUM_FEATURES, 1000, 7):
        htf = HashingTF(numFeatures=num_features)
        assert [int(htf.indexOf(t)) for t in terms] == [sfm.term_index(t, num_features) for t in terms]


def _same_probabilities(got: tuple[float, ...] | None, spark_probs: list[float], text: str | None) -> None:
    """Equal, or 2 ulps apart for the logistic model: its probability goes through exp(), Java's
    Math.exp in Spark and the C library's here (the documented caveat of online.model). 1 ulp of
    exp becomes up to 2 ulps of 1 / (1 + exp(m)) after the addition and the division: 1 ulp was seen
    on one real tweet in 400, 2 ulps on a probability near 0.03. Labels and margins are compared
    exactly."""
    assert got is not None and len(got) == len(spark_probs), text
    for a, b in zip(got, spark_probs, strict=True):
        assert a == b or abs(a - b) <= 2 * math.ulp(b), (text, a, b)


@pytest.mark.parametrize("key", list(MODEL_SPECS))
def test_every_stage_and_prediction_equals_spark(spark, trained: TrainedModels, key: str) -> None:  # type: ignore[no-untyped-def]
    model = sfm.load_model(trained.runs_uri(key), trained.tracking_uri)
    assert model.model_type == MODEL_SPECS[key].display_name
    assert model.num_features == INPUT_SIZE and model.spark_version == spark.version  # 3.5 and 4.x alike
    assert model.bigrams is False and model.describe()["bigrams"] is False  # the default: --no-bigrams
    texts = trained.texts
    assert len(texts) >= 400
    df = spark.createDataFrame([(t,) for t in texts], "text string")
    rows = trained.spark_models[key].transform(df).collect()
    predictions = model.predict(texts)
    has_probability = MODEL_SPECS[key].has_probability
    for text, row, pred in zip(texts, rows, predictions, strict=True):
        assert model.clean(text) == row["clean_text"], text
        assert model.tokens(text) == list(row["tokens"]), text
        assert model.filtered_tokens(text) == list(row["filtered_tokens"]), text
        tf = row["raw_features"]
        assert model.term_frequencies(text) == dict(zip(tf.indices.tolist(), tf.values.tolist(), strict=True)), text
        indices, values = model.features(text)
        assert indices == row["features"].indices.tolist() and values == row["features"].values.tolist(), text
        # Same doubles, not merely close: Spark's summation order and formulas are reproduced.
        assert pred.label == int(row["prediction"]), text
        assert pred.raw_prediction == tuple(row["rawPrediction"].toArray().tolist()), text
        if has_probability:
            _same_probabilities(pred.probabilities, row["probability"].toArray().tolist(), text)
            assert _within_ulp(pred.probability, row["probability"][1]), text
        else:
            assert "probability" not in row.asDict() and pred.probability is None
    assert {p.label for p in predictions} == {0, 1}  # both classes occur, so both branches are compared


def test_registered_uri_resolves_on_the_given_server_not_the_process_default(
    trained: TrainedModels, tmp_path: Path
) -> None:
    """The online server loads `models:/NAME@alias` from its --tracking-uri even when the process's
    own MLflow default (MLFLOW_TRACKING_URI, `mlflow.set_tracking_uri`) names another store."""
    import mlflow
    from mlflow import MlflowClient

    from sentiment_mlops.online.model import load_model

    name = f"spark-free-resolve-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(trained.tracking_uri, trained.tracking_uri)
    client.create_registered_model(name)
    version = client.create_model_version(
        name, f"runs:/{trained.run_ids['logisticregression']}/model", trained.run_ids["logisticregression"]
    )
    client.set_registered_model_alias(name, "production", version.version)

    elsewhere = f"sqlite:///{tmp_path / 'other-mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(elsewhere)
    try:
        model = load_model(f"models:/{name}@production", trained.tracking_uri)
        by_number = load_model(f"models:/{name}/{version.version}", trained.tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    texts = ["what a lovely day", "worst day ever"]
    expected = [
        p.label for p in load_model(trained.runs_uri("logisticregression"), trained.tracking_uri).predict(texts)
    ]
    assert [p.label for p in model.predict(texts)] == expected
    assert [p.label for p in by_number.predict(texts)] == expected


def test_loads_and_predicts_without_a_jvm(trained: TrainedModels) -> None:
    """In a fresh interpreter: no SparkContext, no Java gateway, no child process."""
    code = f"""
import json, os, sys
from sentiment_mlops.online.model import load_model
model = load_model({trained.runs_uri("logisticregression")!r}, {trained.tracking_uri!r})
preds = model.predict(["what a lovely day", "worst day ever"])
from pyspark import SparkContext
def parent_of(pid):
    try:
        return open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[1]
    except OSError:  # the process ended while /proc was being listed
        return None
children = [p for p in os.listdir("/proc") if p.isdigit() and parent_of(p) == str(os.getpid())]
print(json.dumps({{"gateway": SparkContext._gateway is None, "children": children,
                  "labels": [p.label for p in preds]}}))
"""
    env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"gateway": True, "children": [], "labels": result["labels"]}
    assert set(result["labels"]) <= {0, 1}


def _within_ulp(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) <= math.ulp(b)


def test_linear_svc_outputs_no_probability(trained: TrainedModels) -> None:
    model = sfm.load_model(trained.runs_uri("linearsvc"), trained.tracking_uri)
    pred = model.predict_one("love it")
    assert pred.probability is None and pred.probabilities is None and len(pred.raw_prediction) == 2
    assert model.describe()["has_probability"] is False


def _stage_meta(root: Path, class_suffix: str) -> Path:
    for meta in sorted((root / "sparkml" / "stages").glob("*/metadata/part-*")):  # the first of its class
        if json.loads(meta.read_text())["class"].endswith(class_suffix):
            return meta
    raise AssertionError(f"no {class_suffix} stage under {root}")


def _tampered(downloaded: Path, tmp_path: Path, class_suffix: str, change: dict[str, Any]) -> Path:
    copy = tmp_path / f"model-{uuid.uuid4().hex[:6]}"
    shutil.copytree(downloaded, copy)
    meta_file = _stage_meta(copy, class_suffix)
    meta = json.loads(meta_file.read_text())
    for key, value in change.items():
        if key.startswith("param:"):
            meta["paramMap"][key.removeprefix("param:")] = value
        else:
            meta[key] = value
    meta_file.write_text(json.dumps(meta))
    return copy


def test_untampered_download_loads(downloaded: Path) -> None:
    assert sfm.load_local(downloaded).model_type == "LinearSVC"


def test_refuses_a_different_cleaning_statement(downloaded: Path, tmp_path: Path) -> None:
    statement = cleaning_sql().replace("' and '", "' & '")
    model_dir = _tampered(downloaded, tmp_path, "SQLTransformer", {"param:statement": statement})
    with pytest.raises(sfm.UnsupportedModelError, match=r"not text_cleaning\.cleaning_sql\(\)"):
        sfm.load_local(model_dir)


def test_refuses_an_unknown_stage_type(downloaded: Path, tmp_path: Path) -> None:
    gbt = "org.apache.spark.ml.classification.GBTClassificationModel"
    model_dir = _tampered(downloaded, tmp_path, "LinearSVCModel", {"class": gbt})
    with pytest.raises(sfm.UnsupportedModelError, match="unknown stage types: classification.GBTClassificationModel"):
        sfm.load_local(model_dir)


def test_refuses_a_broken_column_chain(downloaded: Path, tmp_path: Path) -> None:
    model_dir = _tampered(downloaded, tmp_path, "HashingTF", {"param:inputCol": "tokens"})
    with pytest.raises(sfm.UnsupportedModelError, match="not a linear text pipeline"):
        sfm.load_local(model_dir)


def test_refuses_pre_spark3_hashing(downloaded: Path, tmp_path: Path) -> None:
    model_dir = _tampered(downloaded, tmp_path, "HashingTF", {"sparkVersion": "2.4.8"})
    with pytest.raises(sfm.UnsupportedModelError, match="only Spark 3\\+ hashing"):
        sfm.load_local(model_dir)


def test_refuses_artifacts_that_are_not_spark_models(tmp_path: Path) -> None:
    (tmp_path / "pyfunc").mkdir()
    (tmp_path / "pyfunc" / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: x\n")
    with pytest.raises(sfm.UnsupportedModelError, match="not an MLflow Spark model .*python_function"):
        sfm.load_local(tmp_path / "pyfunc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(sfm.UnsupportedModelError, match="neither an MLflow model"):
        sfm.load_local(tmp_path / "empty")


def test_tokenizer_gaps_follow_java_split() -> None:
    tok = sfm.RegexTokenizerStage(pattern="(\\s)+", gaps=True, min_token_length=0, to_lowercase=True)
    # Java drops trailing empty strings and never returns the capture groups.
    assert tok(" A b  c  ") == ["", "a", "b", "c"]
    assert tok("") == [""]
    tok1 = sfm.RegexTokenizerStage(pattern="\\s+", gaps=True, min_token_length=2, to_lowercase=False)
    assert tok1(" Ab b  cd ") == ["Ab", "cd"]


def test_bigram_pipeline_equals_spark(spark, sample_csv: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The optional NGram + concat stages (`--bigrams`) have exact Python twins too."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression

    from sentiment_mlops.training.model_catalog import FEATURES_COL, feature_pipeline

    texts = real_tweets(sample_csv, every=100)
    labelled = spark.createDataFrame([(t, float(i % 2)) for i, t in enumerate(texts)], "text string, label double")
    classifier = LogisticRegression(featuresCol=FEATURES_COL, maxIter=5)
    stages = [*feature_pipeline(4096, bigrams=True).getStages(), classifier]
    fitted = Pipeline(stages=stages).fit(labelled)
    fitted.write().overwrite().save(str(tmp_path / "bigrams"))
    model = sfm.load_spark_ml_dir(tmp_path / "bigrams")
    assert model.bigrams
    probe = [*texts[:300], *EDGE_CASES]
    rows = fitted.transform(spark.createDataFrame([(t,) for t in probe], "text string")).collect()
    for text, row in zip(probe, rows, strict=True):
        assert model.terms(text) == list(row["terms"]), text
        tf = row["raw_features"]
        assert model.term_frequencies(text) == dict(zip(tf.indices.tolist(), tf.values.tolist(), strict=True)), text
        pred = model.predict_one(text)
        assert pred.raw_prediction == tuple(row["rawPrediction"].toArray().tolist()), text
        _same_probabilities(pred.probabilities, row["probability"].toArray().tolist(), text)


LEXICON_PROBES = [
    "i am so happy, what a wonderful and delicious dinner",
    "this is not good at all and i hate waiting",
    "worst day ever, terrible awful horrible",
    "meh it's fine i guess",
    "no no no never again",
    "love love love",
]


@pytest.mark.parametrize(
    ("lexicon_on", "nb", "rules", "bigrams"),
    [(True, False, "v2", False), (False, True, "v2", False), (True, True, "v3", True)],
    ids=["lexicon", "nb-scaling", "v3-lexicon-nb-bigrams"],
)
def test_optional_feature_stages_equal_spark(  # type: ignore[no-untyped-def]
    spark, sample_csv: Path, tmp_path: Path, lexicon_on: bool, nb: bool, rules: str, bigrams: bool
) -> None:
    """The optional stages (`--lexicon`: removers, counts, VectorAssembler; `--nb-scaling`:
    ElementwiseProduct; `--cleaning-rules v3`) have exact Python twins: the same counts, the same
    classifier input (assembled without zeros, scaled), the same predictions."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.classification import LogisticRegression

    from sentiment_mlops.features import lexicon
    from sentiment_mlops.features.text_cleaning import RULE_VERSIONS
    from sentiment_mlops.training.fitting import fit_feature_model
    from sentiment_mlops.training.model_catalog import FEATURES_COL

    texts = real_tweets(sample_csv, every=100)
    labelled = spark.createDataFrame([(t, float(i % 2)) for i, t in enumerate(texts)], "text string, label double")
    features = fit_feature_model(labelled, 4096, bigrams, lexicon_on, RULE_VERSIONS[rules], nb)
    classifier = LogisticRegression(featuresCol=FEATURES_COL, maxIter=5).fit(features.transform(labelled))
    fitted = PipelineModel(stages=[*features.stages, classifier])
    fitted.write().overwrite().save(str(tmp_path / "model"))
    model = sfm.load_spark_ml_dir(tmp_path / "model")
    described = model.describe()
    assert (described["lexicon"], described["nb_scaling"], described["bigrams"]) == (lexicon_on, nb, bigrams)
    assert model.num_features == 4096 + (len(lexicon.BUCKETS) if lexicon_on else 0)
    probe = [*LEXICON_PROBES, *texts[:300], *EDGE_CASES]
    rows = fitted.transform(spark.createDataFrame([(t,) for t in probe], "text string")).collect()
    count_cols = [lexicon.count_col(i) for i in range(len(lexicon.BUCKETS))] if lexicon_on else []
    for text, row in zip(probe, rows, strict=True):
        assert model.clean(text) == row["clean_text"], text
        assert model.lexicon_features(text) == [row[c] for c in count_cols], text
        vector = row[FEATURES_COL]
        assert model.features(text) == (vector.indices.tolist(), vector.values.tolist()), text
        pred = model.predict_one(text)
        assert pred.label == int(row["prediction"]), text
        assert pred.raw_prediction == tuple(row["rawPrediction"].toArray().tolist()), text
        _same_probabilities(pred.probabilities, row["probability"].toArray().tolist(), text)
    if lexicon_on:  # the words a user reads as positive or negative land in the matching buckets
        happy, hate = model.lexicon_features(LEXICON_PROBES[0]), model.lexicon_features(LEXICON_PROBES[1])
        assert sum(happy[:3]) >= 3 and sum(happy[3:]) == 0
        assert sum(hate[3:]) >= 2  # "neg_good" (negated) and "hate"
        assert sum(any(row[c] for c in count_cols) for row in rows) > len(rows) // 2
