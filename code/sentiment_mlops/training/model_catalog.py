"""The feature pipeline and the three classifiers, with their defaults and CV grids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.ml import Estimator, Pipeline
from pyspark.ml.classification import LinearSVC, LogisticRegression, RandomForestClassifier
from pyspark.ml.feature import IDF, HashingTF, RegexTokenizer, SQLTransformer, StopWordsRemover
from pyspark.ml.param import Param
from pyspark.ml.tuning import ParamGridBuilder

from sentiment_mlops.features.text_cleaning import CLEAN_TEXT_COL, RAW_TEXT_COL, TOKEN_PATTERN, cleaning_sql

FEATURES_COL = "features"
LABEL_COL = "label"
# Words that carry sentiment or its target in tweets stay in: negations ("not good"), pronouns
# ("i hate", "miss you"), intensifiers ("so", "very", "too"). Dropping them from Spark's English
# list was worth +0.5 points of test accuracy on the 100k sample (bench/train.py).
KEPT_STOP_WORDS = frozenset(
    {"no", "not", "nor", "i", "me", "my", "myself", "you", "your", "we", "our", "very", "too", "so", "more",
     "most", "only", "again", "against", "off", "out", "up", "down", "over", "under", "all", "can", "will",
     "just", "should", "now", "don", "t", "but", "what", "why", "how"}
)  # fmt: skip


def cleaning_stage(input_col: str = RAW_TEXT_COL, output_col: str = CLEAN_TEXT_COL) -> SQLTransformer:
    """The cleaning rules of features.text_cleaning as the pipeline's first stage."""
    return SQLTransformer(statement=cleaning_sql(input_col, output_col))


def stop_words() -> list[str]:
    """Spark's English stop words minus KEPT_STOP_WORDS and every contraction (`can't`, `isn't`...)."""
    return [w for w in StopWordsRemover.loadDefaultStopWords("english") if w not in KEPT_STOP_WORDS and "'" not in w]


def feature_pipeline(num_features: int) -> Pipeline:
    """cleaning -> RegexTokenizer -> StopWordsRemover -> HashingTF -> IDF."""
    return Pipeline(
        stages=[
            cleaning_stage(RAW_TEXT_COL, CLEAN_TEXT_COL),
            RegexTokenizer(inputCol=CLEAN_TEXT_COL, outputCol="tokens", pattern=TOKEN_PATTERN, gaps=False),
            StopWordsRemover(inputCol="tokens", outputCol="filtered_tokens", stopWords=stop_words()),
            HashingTF(inputCol="filtered_tokens", outputCol="raw_features", numFeatures=num_features),
            IDF(inputCol="raw_features", outputCol=FEATURES_COL, minDocFreq=2),
        ]
    )


@dataclass(frozen=True)
class ModelSpec:
    key: str  # suffix of the registered model name
    display_name: str
    build: Callable[[int], Estimator]  # seed -> estimator with the default params
    grid: Callable[[Any], list[dict[Param, object]]]  # the estimator build() made: its own params
    has_probability: bool


# standardization=False for the linear models: IDF already scales the sparse counts, and
# standardising them again inflates rare terms (LinearSVC +0.7 points, LR +0.5 on the 100k sample).
def _lr(seed: int) -> Estimator:
    return LogisticRegression(
        featuresCol=FEATURES_COL, labelCol=LABEL_COL, maxIter=20, regParam=0.1, standardization=False
    )


def _rf(seed: int) -> Estimator:
    return RandomForestClassifier(
        featuresCol=FEATURES_COL, labelCol=LABEL_COL, numTrees=10, maxDepth=5, maxBins=32, seed=seed
    )


def _svc(seed: int) -> Estimator:
    return LinearSVC(featuresCol=FEATURES_COL, labelCol=LABEL_COL, maxIter=30, regParam=0.1, standardization=False)


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            "logisticregression",
            "LogisticRegression",
            _lr,
            lambda est: (
                ParamGridBuilder().addGrid(est.regParam, [0.01, 0.1]).addGrid(est.elasticNetParam, [0.0, 0.5]).build()
            ),
            True,
        ),
        ModelSpec(
            "randomforest",
            "RandomForest",
            _rf,
            lambda est: ParamGridBuilder().addGrid(est.numTrees, [5, 10]).addGrid(est.maxDepth, [3, 5]).build(),
            True,
        ),
        ModelSpec(
            "linearsvc",
            "LinearSVC",
            _svc,
            lambda est: ParamGridBuilder().addGrid(est.regParam, [0.01, 0.1]).addGrid(est.maxIter, [20, 30]).build(),
            False,
        ),
    )
}

MODEL_ALIASES = {"lr": "logisticregression", "rf": "randomforest", "svc": "linearsvc", "svm": "linearsvc"}


def parse_model_keys(value: str) -> list[str]:
    """`--models lr,rf` or `logisticregression,linearsvc` or `all` -> catalogue keys, in order."""
    if value.strip().lower() in ("", "all"):
        return list(MODEL_SPECS)
    keys: list[str] = []
    for raw in value.split(","):
        name = raw.strip().lower().replace("_", "").replace("-", "")
        key = MODEL_ALIASES.get(name, name)
        if key not in MODEL_SPECS:
            allowed = ", ".join([*MODEL_SPECS, *MODEL_ALIASES])
            raise ValueError(f"unknown model {raw.strip()!r} in --models; allowed: {allowed}")
        if key not in keys:
            keys.append(key)
    return keys
