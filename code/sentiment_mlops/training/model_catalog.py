"""The feature pipeline and the three classifiers, with their defaults and CV grids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.ml import Estimator, Pipeline, Transformer
from pyspark.ml.classification import LinearSVC, LogisticRegression, RandomForestClassifier
from pyspark.ml.feature import (
    IDF,
    HashingTF,
    NGram,
    RegexTokenizer,
    SQLTransformer,
    StopWordsRemover,
    VectorAssembler,
)
from pyspark.ml.param import Param
from pyspark.ml.tuning import ParamGridBuilder

from sentiment_mlops.features import lexicon
from sentiment_mlops.features.terms import BIGRAMS_COL, FILTERED_TOKENS_COL, NGRAM_N, TERMS_COL, terms_sql
from sentiment_mlops.features.text_cleaning import (
    CLEAN_TEXT_COL,
    CLEANING_RULES,
    DEFAULT_RULE_VERSION,
    NEGATION_PREFIX,
    RAW_TEXT_COL,
    TOKEN_PATTERN,
    Rules,
    cleaning_sql,
)

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


def cleaning_stage(
    input_col: str = RAW_TEXT_COL, output_col: str = CLEAN_TEXT_COL, rules: Rules = CLEANING_RULES
) -> SQLTransformer:
    """The cleaning rules of features.text_cleaning as the pipeline's first stage."""
    return SQLTransformer(statement=cleaning_sql(input_col, output_col, rules))


def stop_words() -> list[str]:
    """Spark's English stop words minus KEPT_STOP_WORDS and every contraction (`can't`, `isn't`...),
    each also in its negated form: the negation scope of the cleaning rules marks the words after a
    negator whatever they are, and "neg_the", "neg_for", "neg_it" carry no more sentiment than "the"
    ("i can't wait for the weekend" keeps "can't neg_wait", and reads as positive; README "Model quality").
    The list is saved in the stage, so models saved with the shorter list are served unchanged."""
    words = [w for w in StopWordsRemover.loadDefaultStopWords("english") if w not in KEPT_STOP_WORDS and "'" not in w]
    return [*words, *(f"{NEGATION_PREFIX}{w}" for w in words)]


# The levers as bench/levers.py measured them on the sample (README "Model quality"). Best: the lexicon
# counts with rules v3 (+0.8 to +1.1 points on the held-out-topic split, +7 to +8 on the sanity set),
# recommended as `--cleaning-rules v3 --lexicon`; not the default yet, because its 14-stage pipeline makes
# training about 40% slower. Worse: bigrams (hashed into the default 32,768 features they collide with
# words: -1.1 to -2.5 points on that split) and NB scaling (-1.3 to -3.1).
DEFAULT_BIGRAMS = False
DEFAULT_LEXICON = False
DEFAULT_RULES = DEFAULT_RULE_VERSION  # a key of text_cleaning.RULE_VERSIONS
DEFAULT_NB_SCALING = False
UNSCALED_FEATURES_COL = "unscaled_features"  # with NB scaling, the features before it


def lexicon_stages(features_col: str = FEATURES_COL) -> list[Transformer]:
    """features.lexicon: one StopWordsRemover per strength bucket, the counts, and the assembler that
    appends them to the TF-IDF vector."""
    buckets = lexicon.bucket_words()
    removers = [
        StopWordsRemover(
            inputCol=FILTERED_TOKENS_COL, outputCol=lexicon.rest_col(i), stopWords=list(words), caseSensitive=True
        )
        for i, (_name, words) in enumerate(buckets)
    ]
    rest_cols = [lexicon.rest_col(i) for i in range(len(buckets))]
    count_cols = [lexicon.count_col(i) for i in range(len(buckets))]
    return [
        *removers,
        SQLTransformer(statement=lexicon.counts_sql(FILTERED_TOKENS_COL, rest_cols, count_cols)),
        VectorAssembler(inputCols=[lexicon.TFIDF_COL, *count_cols], outputCol=features_col),
    ]


def feature_pipeline(
    num_features: int,
    bigrams: bool = DEFAULT_BIGRAMS,
    lexicon_counts: bool = DEFAULT_LEXICON,
    rules: Rules = CLEANING_RULES,
    features_col: str = FEATURES_COL,
) -> Pipeline:
    """cleaning -> RegexTokenizer -> StopWordsRemover [-> NGram(2) -> concat(unigrams, bigrams)]
    -> HashingTF -> IDF [-> lexicon removers -> counts -> VectorAssembler]. Every stage has a
    pure-Python twin in the Spark-free model."""
    terms = (
        [
            NGram(n=NGRAM_N, inputCol=FILTERED_TOKENS_COL, outputCol=BIGRAMS_COL),
            SQLTransformer(statement=terms_sql(FILTERED_TOKENS_COL, BIGRAMS_COL, TERMS_COL)),
        ]
        if bigrams
        else []
    )
    hashed = TERMS_COL if bigrams else FILTERED_TOKENS_COL
    return Pipeline(
        stages=[
            cleaning_stage(RAW_TEXT_COL, CLEAN_TEXT_COL, rules),
            RegexTokenizer(inputCol=CLEAN_TEXT_COL, outputCol="tokens", pattern=TOKEN_PATTERN, gaps=False),
            StopWordsRemover(inputCol="tokens", outputCol=FILTERED_TOKENS_COL, stopWords=stop_words()),
            *terms,
            HashingTF(inputCol=hashed, outputCol="raw_features", numFeatures=num_features),
            IDF(inputCol="raw_features", outputCol=lexicon.TFIDF_COL if lexicon_counts else features_col, minDocFreq=2),
            *(lexicon_stages(features_col) if lexicon_counts else []),
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
# regParam 0.01 rather than 0.1: +1 to 2 points on both the random and the held-out-topic split.
def _lr(seed: int) -> Estimator:
    return LogisticRegression(
        featuresCol=FEATURES_COL, labelCol=LABEL_COL, maxIter=20, regParam=0.01, standardization=False
    )


def _rf(seed: int) -> Estimator:
    return RandomForestClassifier(
        featuresCol=FEATURES_COL, labelCol=LABEL_COL, numTrees=10, maxDepth=5, maxBins=32, seed=seed
    )


def _svc(seed: int) -> Estimator:
    return LinearSVC(featuresCol=FEATURES_COL, labelCol=LABEL_COL, maxIter=30, regParam=0.01, standardization=False)


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            "logisticregression",
            "LogisticRegression",
            _lr,
            lambda est: (
                ParamGridBuilder().addGrid(est.regParam, [0.003, 0.01]).addGrid(est.elasticNetParam, [0.0, 0.5]).build()
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
            lambda est: ParamGridBuilder().addGrid(est.regParam, [0.003, 0.01]).addGrid(est.maxIter, [20, 30]).build(),
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
